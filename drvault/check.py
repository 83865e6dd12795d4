"""Check: prove the repository is whole, and name every object that is not.

Structure (always): every key slot, the config, every index file and snapshot verified against
its name and decrypted; every tree of every snapshot read and decoded; every blob a tree refers
to indexed; every indexed pack present; each snapshot's keyless pack list, closed over the
forwarding records, covers the packs its trees need (a blob stored twice is covered by either
copy); every forwarding record verified against its name; every pack read once, its SHA-256
compared with its name and its own blob table compared with the index. ``read_data`` (or a
subset ``n/m`` of the data packs) also decrypts and verifies every blob in those packs.
Tree packs are always read in full.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from drvault.errors import (
    ArchivedError,
    DrvaultError,
    IntegrityError,
    TransientError,
    UsageError,
)
from drvault.repository import forward, layout
from drvault.repository.fanout import fan_out
from drvault.repository.index import PackRef
from drvault.repository.keys import MalformedKeySlot, parse_slot
from drvault.repository.repository import Repository
from drvault.snapshot import NodeType, decode_tree
from drvault.snapshots import load_all


@dataclass
class CheckStats:
    snapshots: int = 0
    trees: int = 0
    blobs_referenced: int = 0
    packs: int = 0
    packs_read: int = 0
    blobs_verified: int = 0
    bytes_read: int = 0
    unreferenced_packs: int = 0


@dataclass
class CheckResult:
    stats: CheckStats = field(default_factory=CheckStats)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


Progress = Callable[[CheckStats], None]


def parse_subset(text: str) -> tuple[int, int]:
    """``"n/m"`` -> (n, m) with 1 <= n <= m."""
    try:
        n_text, m_text = text.split("/")
        n, m = int(n_text), int(m_text)
    except ValueError:
        raise UsageError(f"--read-data-subset wants N/M (e.g. 2/5), not {text!r}") from None
    if not 1 <= n <= m:
        raise UsageError(f"--read-data-subset {text}: need 1 <= N <= M")
    return n, m


def _in_subset(name: bytes, subset: tuple[int, int] | None, read_data: bool) -> bool:
    if read_data:
        return True
    if subset is None:
        return False
    n, m = subset
    return int.from_bytes(name[:4], "big") % m == n - 1


def check(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: tuple[int, int] | None = None,
    progress: Progress | None = None,
) -> CheckResult:
    result = CheckResult()
    errors = result.errors
    stats = result.stats

    def fail(exc: DrvaultError) -> None:
        errors.append(str(exc))

    for info in repo.backend.list(layout.KEYS):
        try:
            parse_slot(info.name, repo.backend.get(info.name))
        except MalformedKeySlot as exc:
            errors.append(f"{info.name}: {exc}")

    index_errors: list[IntegrityError] = []
    repo.load_index(index_errors)
    for problem in index_errors:
        fail(problem)

    snapshot_errors: list[IntegrityError] = []
    snapshots = load_all(repo, snapshot_errors)
    for problem in snapshot_errors:
        fail(problem)
    stats.snapshots = len(snapshots)

    forward_errors: list[IntegrityError] = []
    forwards = forward.read_all(repo.backend, repo.parallel_reads, forward_errors)
    for problem in forward_errors:
        fail(problem)

    # Per tree (memoised across snapshots): the packs it and everything below it need, and for
    # blobs stored in more than one pack, the alternatives (any one of them serves).
    closure: dict[bytes, tuple[frozenset[bytes], frozenset[tuple[bytes, ...]]]] = {}

    def need(blob_id: bytes, own: set[bytes], alternatives: set[tuple[bytes, ...]]) -> bool:
        copies = repo.index.copies_of(blob_id)
        if len(copies) == 1:
            own.add(copies[0])
        elif copies:
            alternatives.add(tuple(sorted(copies)))
        return bool(copies)

    def packs_of_tree(
        tree_id: bytes, snap_id: bytes
    ) -> tuple[frozenset[bytes], frozenset[tuple[bytes, ...]]]:
        known = closure.get(tree_id)
        if known is not None:
            return known
        own: set[bytes] = set()
        alternatives: set[tuple[bytes, ...]] = set()
        need(tree_id, own, alternatives)
        # guards against cycles in a hostile repository
        closure[tree_id] = (frozenset(own), frozenset(alternatives))
        try:
            nodes = decode_tree(repo.get_blob(tree_id), f"tree {tree_id.hex()[:16]}")
        except (TransientError, ArchivedError):
            raise  # an outage or a cold object is not damage: stop with the backend's error
        except DrvaultError as exc:
            fail(exc)
            return closure[tree_id]
        stats.trees += 1
        for node in nodes:
            if node.type == NodeType.DIR and node.subtree is not None:
                below, below_alternatives = packs_of_tree(node.subtree, snap_id)
                own |= below
                alternatives |= below_alternatives
            for blob_id in node.content:
                stats.blobs_referenced += 1
                if not need(blob_id, own, alternatives):
                    errors.append(
                        f"blob {blob_id.hex()[:16]} of snapshot {snap_id.hex()[:8]}"
                        " is not in any index"
                    )
        closure[tree_id] = (frozenset(own), frozenset(alternatives))
        return closure[tree_id]

    for snap in snapshots:
        listed = forwards.closure(snap.packs)
        own, alternatives = packs_of_tree(snap.tree, snap.id)
        missing = set(own - listed)
        missing.update(a[0] for a in alternatives if listed.isdisjoint(a))
        if missing:
            errors.append(
                f"snapshots/{snap.id.hex()}: pack list lacks {len(missing)} pack(s) its trees need"
            )

    stored: dict[str, int] = {}
    for kind in layout.PACK_KINDS:
        for info in repo.backend.list(kind + "/"):
            stored[info.name] = info.size
    indexed = {layout.pack_path(ref.kind, ref.name): ref for ref in repo.index.packs}
    stats.packs = len(stored)
    for path in sorted(set(indexed) - set(stored)):
        errors.append(f"{path}: missing (indexed, not in storage)")
    unreferenced = sorted(set(stored) - set(indexed))
    stats.unreferenced_packs = len(unreferenced)
    if unreferenced:
        result.notes.append(
            f"{len(unreferenced)} pack(s) in no index: left by interrupted runs, removed by prune"
        )
    entries_by_pack: dict[bytes, list] = {}
    for entry in repo.index.entries():
        entries_by_pack.setdefault(entry.pack.name, []).append(entry)

    to_read = [(path, indexed[path]) for path in sorted(stored) if path in indexed]

    def one(item: tuple[str, PackRef]) -> _PackCheck:
        path, ref = item
        entries = entries_by_pack.get(ref.name, [])
        return _check_pack(repo, path, ref, entries, read_data, subset)

    # Each pack is read and verified (blobs decrypted) in the fetching threads: all cores.
    for _item, checked, failure in fan_out(one, to_read, repo.parallel_pack_reads):
        try:
            if failure is not None:
                raise failure
            assert checked is not None
            stats.packs_read += 1
            stats.bytes_read += checked.size
            stats.blobs_verified += checked.blobs
            if checked.error is not None:
                raise checked.error
        except (TransientError, ArchivedError):
            raise
        except DrvaultError as exc:
            fail(exc)
        if progress is not None:
            progress(stats)
    return result


@dataclass
class _PackCheck:
    size: int
    blobs: int = 0  # verified before any error
    error: DrvaultError | None = None


def _check_pack(
    repo: Repository,
    path: str,
    ref: PackRef,
    entries: list,
    read_data: bool,
    subset: tuple[int, int] | None,
) -> _PackCheck:
    """Read one pack (verified against its SHA-256 name by ``repo.read_pack``, which raises
    when it is not), compare its own blob table with the index, and open its blobs when asked.
    Runs in a fetching thread; the first damage found is returned, an outage raised."""
    data = repo.read_pack(ref)
    out = _PackCheck(len(data))
    try:
        _kind, own = repo.pack_entries(path, data)
        own_by_id = {e.blob_id: e for e in own}
        for entry in entries:
            mine = own_by_id.get(entry.blob_id)
            if mine is None or (mine.offset, mine.length) != (entry.offset, entry.length):
                raise IntegrityError(
                    path,
                    f"index entry for blob {entry.blob_id.hex()[:16]} disagrees with the pack",
                )
        if ref.kind == "tree" or _in_subset(ref.name, subset, read_data):
            view = memoryview(data)
            for e in own:
                repo.open_blob(e, view[e.offset : e.offset + e.length], pack=ref)
                out.blobs += 1
    except (TransientError, ArchivedError):
        raise
    except DrvaultError as exc:
        out.error = exc
    return out
