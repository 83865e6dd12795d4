"""Restore: recreate a snapshot (or parts of it) under a target directory.

Plan first, then fetch by pack: every pack is read once, each of its blobs is verified and
written to every file offset that needs it (a deduplicated chunk used by many files costs one
read). All-zero blocks stay holes. Symlinks are created only after every file was written and
files are opened with O_NOFOLLOW, so no entry of the snapshot, however hostile, can steer a
write outside the target; names were already checked when the trees were decoded.
Metadata goes on last: files, then directories deepest first (their times would otherwise
change as children are created).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from drvault.errors import IntegrityError, UnsafePathError, UsageError
from drvault.filesystem.apply import apply_metadata, create_entry
from drvault.filesystem.sparse import SparseWriter
from drvault.repository.index import IndexEntry, PackRef
from drvault.repository.layout import pack_path
from drvault.repository.repository import Repository
from drvault.snapshot import Node, NodeType, decode_tree, display_name
from drvault.snapshot.document import Snapshot
from drvault.snapshots import split_path

# A partial restore (--include) reads a pack whole when at least this share of it is needed,
# else blob by blob. A full restore always reads whole packs: each is fetched once and checked
# against its SHA-256 name, so a restore also proves every pack it touched intact.
WHOLE_PACK_SHARE = 0.5


@dataclass
class RestoreStats:
    files: int = 0
    dirs: int = 0
    others: int = 0
    hardlinks: int = 0
    bytes_written: int = 0
    packs_read: int = 0
    bytes_fetched: int = 0
    blobs_verified: int = 0


@dataclass(frozen=True)
class RestoreResult:
    stats: RestoreStats
    warnings: tuple[str, ...]
    mismatches: tuple[str, ...] = ()


@dataclass
class _Plan:
    dirs: list[tuple[bytes, Node]] = field(default_factory=list)
    files: list[tuple[bytes, Node]] = field(default_factory=list)
    links: list[tuple[bytes, bytes, Node]] = field(default_factory=list)  # (path, first, node)
    specials: list[tuple[bytes, Node]] = field(default_factory=list)
    # pack name -> blob id -> [(file number, offset)]
    uses: dict[bytes, dict[bytes, list[tuple[int, int]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    packs: dict[bytes, PackRef] = field(default_factory=dict)
    partial: bool = False  # only --include parts of the snapshot


Progress = Callable[[RestoreStats], None]


class _Planner:
    def __init__(self, repo: Repository, target: bytes, includes: list[list[bytes]]) -> None:
        self.repo = repo
        self.target = target
        self.includes = includes
        self.plan = _Plan()
        self.matched = False  # whether an entry matched an include (ancestors do not count)
        self._first_link: dict[tuple[int, int], bytes] = {}

    def selected(self, parts: list[bytes]) -> tuple[bool, bool]:
        """(restore this entry, descend into it)."""
        if not self.includes:
            return True, True
        take = any(parts[: len(inc)] == inc for inc in self.includes)
        ancestor = any(
            inc[: len(parts)] == parts and len(inc) > len(parts) for inc in self.includes
        )
        return take, take or ancestor

    def visit(self, tree: bytes, parts: list[bytes]) -> None:
        for node in decode_tree(self.repo.get_blob(tree), f"tree {tree.hex()[:16]}"):
            child = [*parts, node.name]
            take, descend = self.selected(child)
            if not descend:
                continue
            self.matched |= take
            path = os.path.join(self.target, *child)
            if node.type == NodeType.DIR:
                self.plan.dirs.append((path, node))
                if node.subtree is not None:
                    self.visit(node.subtree, child)
            elif take:
                self.add_leaf(path, node)

    def add_leaf(self, path: bytes, node: Node) -> None:
        key = node.hardlink_key
        if key is not None:
            first = self._first_link.get(key)
            if first is not None:
                self.plan.links.append((path, first, node))
                return
            self._first_link[key] = path
        if node.type != NodeType.FILE:
            self.plan.specials.append((path, node))
            return
        number = len(self.plan.files)
        self.plan.files.append((path, node))
        offset = 0
        for blob_id in node.content:
            entry = self.repo.index.get(blob_id)
            if entry is None:
                raise IntegrityError(
                    f"blob {blob_id.hex()}", f"needed by {display_name(path)}, not in any index"
                )
            self.plan.packs[entry.pack.name] = entry.pack
            self.plan.uses[entry.pack.name][blob_id].append((number, offset))
            offset += entry.raw_length
        if offset != node.size:
            raise IntegrityError(
                f"file {display_name(path)}",
                f"chunks add up to {offset} bytes, snapshot says {node.size}",
            )


def _ensure_dir(path: bytes) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePathError(
                f"{display_name(path)}: exists and is not a directory (refusing to follow)"
            ) from None


def _clear_leaf(path: bytes) -> None:
    """Make room for a symlink, FIFO, device or hard link restored over an earlier restore.

    Unlinking never follows a symlink; a directory in the way is refused, never removed.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{display_name(path)}: exists as a directory")
    os.unlink(path)


def restore(
    repo: Repository,
    snapshot: Snapshot,
    target: bytes,
    *,
    includes: tuple[bytes, ...] = (),
    verify: bool = False,
    restore_owner: bool | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    target = os.path.abspath(target)
    if os.path.lexists(target) and not os.path.isdir(target):
        raise UsageError(f"{display_name(target)}: target exists and is not a directory")
    os.makedirs(target, exist_ok=True)
    owner = os.geteuid() == 0 if restore_owner is None else restore_owner
    planner = _Planner(repo, target, [split_path(i) for i in includes])
    planner.visit(snapshot.tree, [])
    plan = planner.plan
    plan.partial = bool(includes)
    if includes and not planner.matched:
        raise UsageError("nothing in the snapshot matches the --include paths")
    stats = RestoreStats()
    warnings: list[str] = []

    for path, _node in plan.dirs:
        _ensure_dir(path)
        stats.dirs += 1
    for path, _node in plan.files:
        try:
            SparseWriter(path).close()  # create empty (O_TRUNC, O_NOFOLLOW); filled by pack below
        except OSError as exc:
            if exc.errno == errno.EISDIR:
                raise UsageError(f"{display_name(path)}: exists as a directory") from None
            if exc.errno != errno.ELOOP:
                raise
            raise UnsafePathError(
                f"{display_name(path)}: exists and is a symlink (refusing to follow)"
            ) from None
    _write_contents(repo, plan, stats, progress)
    for path, node in plan.files:
        os.truncate(path, node.size)
        stats.files += 1
    for path, node in plan.specials:
        _clear_leaf(path)
        warning = create_entry(path, node)
        if warning:
            warnings.append(warning)
        else:
            stats.others += 1
    for path, first, _node in plan.links:  # after specials: a FIFO or symlink can be linked too
        if not os.path.lexists(first):  # its first name was skipped (a socket, a device)
            continue
        _clear_leaf(path)
        os.link(first, path, follow_symlinks=False)
        stats.hardlinks += 1
    for path, node in [*plan.files, *plan.specials]:
        if os.path.lexists(path):
            warnings.extend(apply_metadata(path, node, restore_owner=owner))
    for path, node in reversed(plan.dirs):
        warnings.extend(apply_metadata(path, node, restore_owner=owner))
    mismatches = _verify(repo, plan) if verify else []
    return RestoreResult(stats, tuple(warnings), tuple(mismatches))


def _write_contents(
    repo: Repository, plan: _Plan, stats: RestoreStats, progress: Progress | None
) -> None:
    files = plan.files
    writers: dict[int, SparseWriter] = {}
    try:
        for pack_name in sorted(plan.uses):
            uses = plan.uses[pack_name]
            ref = plan.packs[pack_name]
            entries = {b: repo.index.get(b) for b in uses}
            needed = sum(e.length for e in entries.values() if e is not None)
            ranged = (
                plan.partial
                and needed
                < WHOLE_PACK_SHARE * repo.backend.stat(pack_path(ref.kind, ref.name)).size
            )
            whole = None if ranged else repo.read_pack(ref)
            stats.packs_read += 1
            stats.bytes_fetched += len(whole) if whole is not None else needed
            for blob_id, targets in uses.items():
                entry = entries[blob_id]
                assert isinstance(entry, IndexEntry)
                if whole is not None:
                    sealed: bytes | memoryview = memoryview(whole)[
                        entry.offset : entry.offset + entry.length
                    ]
                    data = repo.open_blob(entry, sealed)
                else:
                    data = repo.get_blob(blob_id)
                stats.blobs_verified += 1
                for number, offset in targets:
                    writer = writers.get(number)
                    if writer is None:
                        if len(writers) > 256:
                            for w in writers.values():
                                w.close()
                            writers.clear()
                        writer = writers[number] = SparseWriter(files[number][0], create=False)
                    writer.write(offset, data)
                    stats.bytes_written += len(data)
            if progress is not None:
                progress(stats)
    finally:
        for w in writers.values():
            w.close()


def _verify(repo: Repository, plan: _Plan) -> list[str]:
    """Re-read every restored file and compare each chunk with its blob ID."""
    problems: list[str] = []
    for path, node in plan.files:
        try:
            with open(path, "rb") as f:
                for blob_id in node.content:
                    entry = repo.index.get(blob_id)
                    assert entry is not None
                    if repo.blob_id(f.read(entry.raw_length)) != blob_id:
                        problems.append(f"{display_name(path)}: content differs from the snapshot")
                        break
                else:
                    if f.read(1):
                        problems.append(f"{display_name(path)}: longer than in the snapshot")
        except OSError as exc:
            problems.append(f"{display_name(path)}: cannot re-read: {exc.strerror}")
    return problems
