"""Backup: walk paths, store changed file contents and every directory tree, commit a snapshot.

The snapshot's root tree mirrors the absolute paths given (``/srv/db`` is stored as ``srv`` ->
``db``), like restic. An unchanged file (same size, mtime, ctime and inode as in the parent
snapshot, all its blobs indexed) costs an ``lstat``, not a read. The parent's trees are loaded
one directory at a time along the walk, and a directory's tree is written at most PENDING_TREES
directories behind the walk, so memory follows the depth of the tree, not its size.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import getpass
import mmap
import os
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from drvault.chunker import Chunker, ChunkerParams
from drvault.directio import (
    DirectReader,
    ReadAhead,
    aligned_buffer,
    round_up,
)
from drvault.errors import IntegrityError, UsageError
from drvault.filesystem.capture import capture, open_file, scan_dir
from drvault.filesystem.prefetch import FileBatch, drop, read_ahead
from drvault.repository.config import ChunkerSettings
from drvault.repository.pack import BLOB_DATA, BLOB_TREE
from drvault.repository.repository import ProbeHint, Repository
from drvault.snapshot import Node, NodeType, ParentTree, display_name, encode_tree
from drvault.snapshot.document import Snapshot
from drvault.snapshots import load_all
from drvault.version import __version__

READ_BUFFER = 1 << 20  # per-file read buffer of the chunker
SMALL_FILE = 1 << 20  # files up to this size are read and stored whole by one worker
SMALL_BATCH_BYTES = 1 << 20  # small files go to a worker together, up to this many bytes ...
SMALL_BATCH_FILES = 256  # ... or this many files
BATCH_BYTES = 1 << 20  # a large file's chunks go to the workers in batches of this size
CHANGED_WHILE_READ = "changed while being read; the snapshot holds what was read"
INFLIGHT_BYTES = 4 << 20  # chunks read but not yet hashed, compressed and packed
PENDING_TREES = 64  # directories walked whose tree waits for their files' data


@dataclass(frozen=True)
class BackupRequest:
    paths: tuple[bytes, ...]
    excludes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    backup_set: str | None = None
    parent: bytes | None = None  # explicit parent snapshot; None: the latest with the same paths
    force_read: bool = False  # read every file even when the parent says it is unchanged
    hostname: str = field(default_factory=socket.gethostname)
    workers: int | None = None  # threads hashing and compressing chunks (default: one per CPU)
    time_ns: int | None = None  # the snapshot's time (default: when the backup starts)


@dataclass
class BackupStats:
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs: int = 0
    others: int = 0
    bytes_total: int = 0  # sum of file sizes in the snapshot
    bytes_read: int = 0  # file content actually read
    errors: int = 0


@dataclass(frozen=True)
class BackupResult:
    snapshot: Snapshot
    stats: BackupStats
    warnings: tuple[str, ...]

    @property
    def partial(self) -> bool:
        return bool(self.warnings)


Progress = Callable[[BackupStats, bytes], None]


def normalize_paths(paths: Iterable[bytes]) -> tuple[bytes, ...]:
    """Absolute, normalised, without duplicates or paths inside another given path."""
    out: list[bytes] = []
    for p in sorted({os.path.normpath(os.path.abspath(p)) for p in paths}):
        if not os.path.lexists(p):
            raise UsageError(f"{display_name(p)}: no such file or directory")
        if any(p == q or p.startswith(q.rstrip(b"/") + b"/") for q in out):
            continue
        out.append(p)
    if not out:
        raise UsageError("nothing to back up: give at least one path")
    return tuple(out)


def make_chunker(settings: ChunkerSettings, secret: bytes) -> Chunker:
    """The repository's chunker: its sizes, and its keyed (or the canonical) gear table."""
    params = ChunkerParams(settings.min_size, settings.avg_size, settings.max_size, settings.level)
    if settings.gear == "keyed":
        return Chunker.keyed(params, secret)
    return Chunker.canonical(params)


class _Excluder:
    """Globs as in restic: a pattern with ``/`` matches the whole path, else the name."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self._full = [os.fsencode(p) for p in patterns if "/" in p]
        self._name = [os.fsencode(p) for p in patterns if "/" not in p]

    def __call__(self, path: bytes, name: bytes) -> bool:
        if not self._name and not self._full:  # called for every entry walked
            return False
        return any(fnmatch.fnmatchcase(name, p) for p in self._name) or any(
            fnmatch.fnmatchcase(path, p) for p in self._full
        )


class _Budget:
    """Bounds the bytes of chunks waiting for a worker: memory stays flat on any input."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def take(self, n: int) -> None:
        with self._cond:
            while self.used and self.used + n > self.limit:
                self._cond.wait()
            self.used += n

    def give(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


StoreResult = Future[list[tuple[bytes, bool]]]  # one batch of a large file's chunks


@dataclass(frozen=True)
class _FileRead:
    """What a worker made of one small file: its chunks stored, and what it noticed."""

    chunks: tuple[tuple[bytes, bool], ...]
    bytes_read: int
    changed: bool


class _SmallFiles:
    """Small files gathered for one worker, which reads, chunks and stores them in turn.

    One task per batch, not per file: on 20,000 documents of 32 KB the hand-over (a future,
    a queue put, a worker woken, the budget's lock) cost about as much as a file's own Python
    work in the walker. A file's outcome is its ``_FileRead``, or the ``OSError`` reading it
    raised; any other error fails the whole batch.
    """

    __slots__ = ("files", "future", "prefetch", "size")

    def __init__(self) -> None:
        self.files: list[tuple[bytes, os.stat_result]] = []
        self.size = 0  # bytes reserved in the budget
        self.future: Future[list[_FileRead | OSError]] | None = None  # once submitted
        self.prefetch: FileBatch | None = None  # once submitted: which files were read ahead

    def done(self) -> bool:
        return self.future is not None and self.future.done()


@dataclass(frozen=True)
class _PendingFile:
    """A file node whose data the workers are still storing.

    A large file is read and chunked by the walker, its chunks stored by the workers
    (``chunks``); a small file is read, chunked and stored whole by one worker, in a batch
    of small files (``small``, at ``slot``), so the walker never waits on small reads and
    hands work over once per batch, not per chunk.
    """

    node: Node
    path: bytes
    count: str | None  # "new" or "changed": which counter the file adds to once stored
    chunks: tuple[StoreResult, ...] = ()
    small: _SmallFiles | None = None
    slot: int = 0


class _Reused:
    """A file taken over unchanged from the parent snapshot: only its name, until its
    directory's tree has to be encoded (see :class:`~drvault.snapshot.ParentTree`)."""

    __slots__ = ("name",)

    def __init__(self, name: bytes) -> None:
        self.name = name


@dataclass
class _PendingTree:
    """A directory walked, whose tree blob is written once its files' data is stored.

    The walker does not wait for that: it goes on to the next directory while the workers
    finish this one's files (waiting at every directory left the workers idle a quarter of
    the time on 20,000 small documents). Trees are finished in the order their directories
    were left, children before parents, at most PENDING_TREES behind the walk.
    """

    entries: list[_Entry]
    old: Node | None  # the parent snapshot's node of this directory
    parent: ParentTree  # ... and its entries
    tree_id: bytes | None = None  # once finished

    def ready(self) -> bool:
        """Every file's data stored (its directories' trees are finished before it)."""
        for e in self.entries:
            if isinstance(e, _PendingFile):
                if e.small is not None and not e.small.done():
                    return False
                if not all(f.done() for f in e.chunks):
                    return False
        return True


@dataclass(frozen=True)
class _PendingDir:
    """A directory entry whose subtree is a pending tree."""

    node: Node  # without its subtree
    old: Node | None
    tree: _PendingTree


_Entry = Node | _PendingFile | _PendingDir | _Reused


_buffers = threading.local()  # each thread's aligned buffer for whole small files


def _read_small(reader: DirectReader, expected: int) -> memoryview:
    """The whole content of a small regular file, in this thread's reusable aligned buffer
    (valid until its next call in this thread). A read returning fewer bytes than asked is
    the end of a regular file, so an unchanged file takes one ``read``; a file that grew is
    read to its end (the closing ``fstat`` reports the change)."""
    want = round_up(expected + 1)
    memory: mmap.mmap | None = getattr(_buffers, "memory", None)
    if memory is None or len(memory) < want:
        memory = _buffers.memory = aligned_buffer(max(want, SMALL_FILE + 1))
    view = memoryview(memory)
    got = reader.readinto(view[:want])
    if got <= expected:
        return view[:got]
    parts = [bytes(view[:got])]
    while more := reader.readinto(view[:want]):
        parts.append(bytes(view[:more]))
    return memoryview(b"".join(parts))


class _Walker:
    def __init__(self, repo: Repository, request: BackupRequest, progress: Progress | None) -> None:
        self.repo = repo
        self.request = request
        self.chunker = make_chunker(repo.config.chunker, repo.master.chunker)
        self.excluded = _Excluder(request.excludes)
        self.progress = progress
        self.stats = BackupStats()
        self.warnings: list[str] = []
        self.packs: set[bytes] = set()
        self._hardlinks: dict[tuple[int, int], _PendingFile] = {}
        self.pool = ThreadPoolExecutor(request.workers or os.cpu_count() or 2, "drvault-blob")
        self.budget = _Budget(INFLIGHT_BYTES)
        self.trees: deque[_PendingTree] = deque()  # walked, tree not yet written; walk order
        self.small = _SmallFiles()  # small files gathered, not yet handed to a worker
        self.read_ahead = ThreadPoolExecutor(1, "drvault-read")  # the walker's next block
        self.prefetcher = ThreadPoolExecutor(1, "drvault-prefetch")  # small files' read-ahead
        self._prefetching = True  # until the page cache turns out not to be askable
        self._ahead_buffers: list[mmap.mmap] = []

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.read_ahead.shutdown(wait=True, cancel_futures=True)
        self.prefetcher.shutdown(wait=True, cancel_futures=True)

    def _store(self, batch: list[bytes | memoryview]) -> list[tuple[bytes, bool]]:
        try:
            hint = ProbeHint()  # the batch's chunks follow each other in one file
            return [self.repo.put_blob(BLOB_DATA, chunk, hint=hint) for chunk in batch]
        finally:
            self.budget.give(sum(map(len, batch)))

    def _store_files(self, batch: _SmallFiles) -> list[_FileRead | OSError]:
        """A worker's job: read, chunk and store a batch of small files."""
        try:
            out: list[_FileRead | OSError] = []
            prefetch = batch.prefetch
            for i, (path, st) in enumerate(batch.files):
                out.append(self._store_file(path, st, prefetch is not None and prefetch.begin(i)))
            return out
        finally:
            self.budget.give(batch.size)

    def _prefetch(self, batch: FileBatch) -> None:
        if self._prefetching and not read_ahead(batch):
            self._prefetching = False

    def _store_file(self, path: bytes, st: os.stat_result, prefetched: bool) -> _FileRead | OSError:
        stored: list[tuple[bytes, bool]] = []
        hint = ProbeHint()
        try:
            size, changed = self._read(
                path,
                st,
                lambda chunk: stored.append(self.repo.put_blob(BLOB_DATA, chunk, hint=hint)),
                lend=True,  # put_blob is done with a chunk when it returns
                prefetched=prefetched,
            )
        except OSError as exc:
            return exc
        return _FileRead(tuple(stored), size, changed)

    def _add_small(self, path: bytes, st: os.stat_result) -> tuple[_SmallFiles, int]:
        """Gather a small file into the current batch: (its batch, its slot there)."""
        size = max(st.st_size, 1)
        batch = self.small
        if batch.files and batch.size + size > SMALL_BATCH_BYTES:
            batch = self.flush_small()
        batch.files.append((path, st))
        batch.size += size
        if len(batch.files) >= SMALL_BATCH_FILES or batch.size >= SMALL_BATCH_BYTES:
            self.flush_small()
        return batch, len(batch.files) - 1

    def flush_small(self) -> _SmallFiles:
        """Hand the gathered small files to a worker; the new, empty batch."""
        batch = self.small
        if batch.files:
            self.budget.take(batch.size)
            if self._prefetching:
                batch.prefetch = FileBatch([path for path, _ in batch.files])
                self.prefetcher.submit(self._prefetch, batch.prefetch)
            batch.future = self.pool.submit(self._store_files, batch)
            self.small = _SmallFiles()
        return self.small

    def resolve(self, entry: Node | _PendingFile | _PendingDir) -> Node | None:
        """Wait for a file's data (usually long stored) and fill in its content; a directory
        gets its finished tree (the parent's node itself when nothing changed)."""
        if isinstance(entry, Node):
            return entry
        if isinstance(entry, _PendingDir):
            assert entry.tree.tree_id is not None, "a tree is finished before its parent's"
            node = dataclasses.replace(entry.node, subtree=entry.tree.tree_id)
            return entry.old if node == entry.old else node
        if entry.small is not None:
            if entry.small.future is None:
                self.flush_small()
            assert entry.small.future is not None
            read = entry.small.future.result()[entry.slot]
            if isinstance(read, OSError):
                self.warn(entry.path, f"cannot read: {read.strerror or read}")
                return None
            results = read.chunks
            if entry.count is not None:
                self.stats.bytes_read += read.bytes_read
                if read.changed:
                    self.warn(entry.path, CHANGED_WHILE_READ)
        else:
            results = tuple(r for f in entry.chunks for r in f.result())
        if entry.count == "new":
            self.stats.files_new += 1
        elif entry.count == "changed":
            self.stats.files_changed += 1
        ids: list[bytes] = []
        for blob_id, new in results:
            if not new:
                self._note_blob(blob_id)
            ids.append(blob_id)
        return dataclasses.replace(entry.node, content=tuple(ids))

    def warn(self, path: bytes, message: str) -> None:
        self.stats.errors += 1
        self.warnings.append(f"{display_name(path)}: {message}")

    def _note_blob(self, blob_id: bytes) -> None:
        pack = self.repo.index.pack_of(blob_id)
        if pack is not None:
            self.packs.add(pack)

    def parent_tree(self, old: Node | None) -> ParentTree:
        """The entries of directory ``old`` in the parent snapshot (none for a new one)."""
        if old is None or old.type != NodeType.DIR or old.subtree is None:
            return ParentTree(None)
        subtree = old.subtree
        return ParentTree(self.repo.get_blob(subtree), f"tree {subtree.hex()[:16]}")

    # A virtual directory holds only the selected children of a real directory (the path
    # components above each backed-up path).
    def save_virtual(
        self, path: bytes, children: dict[bytes, object], parent: Node | None
    ) -> bytes:
        old = self.parent_tree(parent)
        nodes: list[Node | _PendingFile | _PendingDir] = []
        for name in sorted(children):
            child_path = os.path.join(path, name)
            spec = children[name]
            try:
                st = os.lstat(child_path)
            except OSError as exc:
                self.warn(child_path, f"cannot stat: {exc.strerror}")
                continue
            base = capture(child_path, name, st)
            node: Node | _PendingFile | _PendingDir | None
            if spec is True:
                node = self.save_entry(child_path, base, st, old.node(name))
            else:
                assert isinstance(spec, dict)
                node = dataclasses.replace(
                    base, subtree=self.save_virtual(child_path, spec, old.node(name))
                )
                self.stats.dirs += 1
            if node is not None:
                nodes.append(node)
        self.finish_trees(0)
        return self.put_tree(nodes)

    def finish_trees(self, keep: int) -> None:
        """Write the trees of walked directories, oldest first: each one whose files are
        stored, then, waiting, as many as it takes to leave at most ``keep`` pending."""
        trees = self.trees
        if keep == 0 or len(trees) > keep:
            self.flush_small()  # the oldest tree may wait on these files
        while trees and (len(trees) > keep or trees[0].ready()):
            tree = trees.popleft()
            parent, old = tree.parent, tree.old
            same = old is not None and old.subtree is not None and len(tree.entries) == len(parent)
            nodes: list[Node] = []
            reused: list[bytes] = []  # go into a new tree as the parent stored them
            for entry in tree.entries:
                if isinstance(entry, _Reused):
                    reused.append(entry.name)
                    continue
                node = self.resolve(entry)
                if node is None:  # a file that could not be read
                    same = False
                    continue
                same = same and node is parent.node(node.name)
                nodes.append(node)
            if same:
                assert old is not None and old.subtree is not None
                self._note_blob(old.subtree)  # nothing changed: the parent's tree blob is this one
                tree.tree_id = old.subtree
            else:
                tree.tree_id = self.put_tree(nodes, parent, reused)
            tree.entries, tree.parent = [], ParentTree(None)  # its parent needs only the ID now

    def put_tree(
        self,
        entries: Sequence[Node | _PendingFile | _PendingDir],
        parent: ParentTree | None = None,
        reused: Sequence[bytes] = (),
    ) -> bytes:
        nodes = [n for n in map(self.resolve, entries) if n is not None]
        tree_id, _ = self.repo.put_blob(BLOB_TREE, encode_tree(nodes, parent, reused))
        self._note_blob(tree_id)
        return tree_id

    def save_entry(
        self, path: bytes, base: Node, st: os.stat_result, old: Node | None
    ) -> Node | _PendingFile | _PendingDir | None:
        if base.type == NodeType.DIR:
            self.stats.dirs += 1
            return _PendingDir(base, old, self.save_dir(path, old))
        if base.type == NodeType.FILE:
            self.stats.bytes_total += base.size
            return self.save_file(path, base, st, old)
        self.stats.others += 1
        return old if base == old else base

    def same_file(self, old: Node | None, st: os.stat_result) -> bool:
        """Unchanged since the parent snapshot: same inode, size, mtime and ctime. A changed
        mode, owner, xattr or link count moves ctime, so the parent's node is still exact."""
        return (
            old is not None
            and not self.request.force_read
            and old.type == NodeType.FILE
            and stat.S_ISREG(st.st_mode)
            and old.size == st.st_size
            and old.mtime_ns == st.st_mtime_ns
            and old.ctime_ns == st.st_ctime_ns
            and old.inode == st.st_ino
            and old.device == st.st_dev
        )

    def save_dir(self, path: bytes, old: Node | None) -> _PendingTree:
        """Walk a directory, submitting its files' data; its tree is written later (see
        :class:`_PendingTree`)."""
        parent = self.parent_tree(old)
        entries: list[_Entry | None] = []
        reused: list[tuple[int, bytes, os.stat_result, tuple[bytes, ...]]] = []
        force_read = self.request.force_read
        try:
            listing = scan_dir(path)
        except OSError as exc:
            self.warn(path, f"cannot read directory: {exc.strerror}")
            listing = []
        for name, st in listing:
            child = os.path.join(path, name)
            if self.excluded(child, name):
                continue
            if not force_read and stat.S_ISREG(st.st_mode):
                content = parent.unchanged_file(
                    name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev
                )
                if content is not None:
                    reused.append((len(entries), child, st, content))
                    entries.append(_Reused(name))
                    continue
            prev = parent.node(name)
            try:
                base = capture(child, name, st)
            except (OSError, ValueError) as exc:
                self.warn(child, f"cannot read metadata: {exc}")
                continue
            entries.append(self.save_entry(child, base, st, prev))
        if reused:
            self.settle_reused(entries, reused)
        tree = _PendingTree([e for e in entries if e is not None], old, parent)
        self.trees.append(tree)
        self.finish_trees(PENDING_TREES)
        return tree

    def settle_reused(
        self,
        entries: list[_Entry | None],
        reused: list[tuple[int, bytes, os.stat_result, tuple[bytes, ...]]],
    ) -> None:
        """Account for files taken over from the parent, with one index search for all their
        blobs; a file whose blobs are no longer all indexed is read again."""
        packs = self.repo.index.packs_of([b for *_, content in reused for b in content])
        if None not in packs:  # the usual case: all of them still indexed
            self.packs.update(packs)  # type: ignore[arg-type]
            self.stats.files_unmodified += len(reused)
            self.stats.bytes_total += sum(st.st_size for _, _, st, _ in reused)
            return
        found = iter(packs)
        for i, child, st, content in reused:
            mine = [next(found) for _ in content]
            if None not in mine:
                self.packs.update(mine)  # type: ignore[arg-type]
                self.stats.files_unmodified += 1
                self.stats.bytes_total += st.st_size
                continue
            name = os.path.basename(child)
            try:
                base = capture(child, name, st)
            except (OSError, ValueError) as exc:
                self.warn(child, f"cannot read metadata: {exc}")
                entries[i] = None
                continue
            self.stats.bytes_total += base.size
            entries[i] = self.save_file(child, base, st, None)

    def unchanged(self, st: os.stat_result, old: Node | None) -> bool:
        """A file named directly as a backup path: unchanged, and every blob still indexed."""
        if old is None or not self.same_file(old, st):
            return False
        packs = self.repo.index.packs_of(list(old.content))
        if any(p is None for p in packs):
            return False
        self.packs.update(packs)  # type: ignore[arg-type]
        return True

    def save_file(
        self, path: bytes, base: Node, st: os.stat_result, old: Node | None
    ) -> Node | _PendingFile | None:
        if self.unchanged(st, old):
            assert old is not None
            self.stats.files_unmodified += 1
            return dataclasses.replace(base, content=old.content)
        key = base.hardlink_key
        if key is not None and key in self._hardlinks:
            first = self._hardlinks[key]
            return _PendingFile(base, path, None, first.chunks, first.small, first.slot)
        count = "new" if old is None else "changed"
        if st.st_size <= SMALL_FILE:
            small, slot = self._add_small(path, st)
            pending = _PendingFile(base, path, count, small=small, slot=slot)
        else:
            try:
                pending = _PendingFile(base, path, count, chunks=self.read_file(path, st))
            except OSError as exc:
                self.warn(path, f"cannot read: {exc.strerror or exc}")
                return None
        if key is not None:
            self._hardlinks[key] = pending
        if self.progress is not None:
            self.progress(self.stats, path)
        return pending

    def read_file(self, path: bytes, st: os.stat_result) -> tuple[StoreResult, ...]:
        """Read and chunk a large file here; the workers hash, compress and pack its chunks."""
        chunks: list[StoreResult] = []
        batch: list[bytes | memoryview] = []
        held = 0

        def submit() -> None:
            nonlocal batch, held
            self.budget.take(held)
            chunks.append(self.pool.submit(self._store, batch))
            batch, held = [], 0

        def add(chunk: bytes | memoryview) -> None:  # bytes: not lent
            nonlocal held
            batch.append(chunk)
            held += len(chunk)
            if held >= BATCH_BYTES:
                submit()

        size, changed = self._read(path, st, add, ahead=True)
        if batch:
            submit()
        self.stats.bytes_read += size
        if changed:
            self.warn(path, CHANGED_WHILE_READ)
        return tuple(chunks)

    def _read(
        self,
        path: bytes,
        st: os.stat_result,
        sink: Callable[[bytes | memoryview], object],
        *,
        lend: bool = False,
        ahead: bool = False,
        prefetched: bool = False,
    ) -> tuple[int, bool]:
        """Feed the file's chunks to ``sink``: (bytes read, whether it changed meanwhile).

        A file the page cache does not hold is read around it (``directio``). With
        ``lend`` a small file's chunks are lent as views of a reused buffer, for a sink done
        with each before it returns; otherwise each chunk is bytes of its own. With ``ahead``
        (the walker's large files) the next block is read while this one is chunked. With
        ``prefetched`` (a small file read ahead, :mod:`~drvault.filesystem.prefetch`) it is
        read through the page cache, and its pages dropped afterwards.
        """
        fd = open_file(path)
        size = 0
        try:
            before = os.fstat(fd)
            if before.st_ino != st.st_ino or not stat.S_ISREG(before.st_mode):
                raise OSError(0, "replaced while being backed up")
            reader = DirectReader(fd, buffered=prefetched)
            if st.st_size < self.chunker.params.max_size:
                # one read of the whole file, no buffer of the maximum chunk size
                data = _read_small(reader, st.st_size)
                for piece in self.chunker.chunk_buffer(data):
                    size += len(piece)
                    sink(piece if lend else bytes(piece))
            else:
                # a buffer sized to the file: a large buffer costs more than a small file's read
                buffer = max(self.chunker.params.max_size, min(st.st_size, READ_BUFFER))
                source: DirectReader | ReadAhead = reader
                if ahead:
                    if not self._ahead_buffers:
                        self._ahead_buffers = [aligned_buffer(READ_BUFFER) for _ in range(2)]
                    source = ReadAhead(reader, self._ahead_buffers, self.read_ahead)
                try:
                    for chunk in self.chunker.chunk_file(source, buffer_size=buffer):
                        size += len(chunk)
                        sink(chunk)
                finally:
                    if isinstance(source, ReadAhead):
                        source.close()
            after = os.fstat(fd)
        finally:
            if prefetched:  # its pages came only for this read, whether it ended well or not
                drop(fd)
            os.close(fd)
        changed = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )
        return size, changed


def _path_tree(paths: tuple[bytes, ...]) -> dict[bytes, object]:
    root: dict[bytes, object] = {}
    for p in paths:
        parts = [c for c in p.split(b"/") if c]
        if not parts:
            raise UsageError("backing up / itself is not supported: name its directories")
        node = root
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            assert isinstance(nxt, dict)
            node = nxt
        node[parts[-1]] = True
    return root


def find_parent(
    repo: Repository, request: BackupRequest, paths: tuple[bytes, ...]
) -> Snapshot | None:
    if request.parent is not None:
        return next((s for s in load_all(repo) if s.id == request.parent), None)
    damaged: list[IntegrityError] = []  # a damaged snapshot cannot be a parent; check names it
    candidates = [
        s
        for s in load_all(repo, damaged)
        if s.paths == paths
        and s.hostname == request.hostname
        and s.backup_set == request.backup_set
    ]
    return max(candidates, key=lambda s: s.time_ns, default=None)


def backup(
    repo: Repository, request: BackupRequest, progress: Progress | None = None
) -> BackupResult:
    paths = normalize_paths(request.paths)
    parent = find_parent(repo, request, paths)
    walker = _Walker(repo, request, progress)
    earlier_packs = len(repo.session_packs)  # packs of earlier backups through this object
    start = time.time_ns()
    root_parent = Node(name=b"/", type=NodeType.DIR, subtree=parent.tree) if parent else None
    try:
        tree = walker.save_virtual(b"/", _path_tree(paths), root_parent)
    finally:
        walker.close()
    repo.flush()
    packs = walker.packs | set(repo.session_packs[earlier_packs:])
    s = walker.stats
    summary = dataclasses.asdict(s) | {
        "blobs_new": repo.stats.blobs_new,
        "bytes_added": repo.stats.pack_bytes_written,
        "bytes_stored_new": repo.stats.bytes_stored_new,
        "duration_ns": time.time_ns() - start,
    }
    snapshot = Snapshot(
        time_ns=request.time_ns if request.time_ns is not None else start,
        hostname=request.hostname,
        username=getpass.getuser(),
        paths=paths,
        tree=tree,
        excludes=request.excludes,
        tags=request.tags,
        parent=parent.id if parent else None,
        backup_set=request.backup_set,
        program=f"drvault {__version__}",
        summary=summary,
    )
    snapshot_id = repo.save_snapshot(snapshot.encode(), packs)
    snapshot = dataclasses.replace(snapshot, id=snapshot_id, packs=tuple(sorted(packs)))
    return BackupResult(snapshot, s, tuple(walker.warnings))
