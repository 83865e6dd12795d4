"""Source repositories, wrappers and keyless checks shared by the replication tests.

The checks here use no key: they hold a DR copy to what replication promises (every object is
byte-identical to the source's, every visible snapshot has its packs and index files), so they
can run right after a kill, before any password is typed.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from pathlib import Path

from conftest import PASSWORD, SMALL_CHUNKS, new_repo
from trees import assert_same_tree, write

from drvault.backup import BackupRequest, backup
from drvault.check import check
from drvault.repository import envelope, layout
from drvault.repository.crypto import sha256
from drvault.repository.repository import Repository
from drvault.restore import restore
from drvault.snapshots import load
from drvault.transport.base import Backend
from drvault.transport.stack import Wrapper

KIB = 1 << 10
PACK_SIZE = 128 * KIB
PACK_PREFIXES = ("data/", "tree/")


def build_tree(root: bytes, seed: int) -> None:
    """About 1.6 MiB of incompressible files, big and small, plus a text file; trees of
    different seeds share no content."""
    rnd = random.Random(seed)
    os.makedirs(os.path.join(root, b"big"))
    os.makedirs(os.path.join(root, b"small"))
    for i in range(2):
        write(os.path.join(root, b"big", b"f%d.bin" % i), rnd.randbytes(600 * KIB + i))
    for i in range(20):
        size = rnd.randrange(1, 20_000)
        write(os.path.join(root, b"small", b"s%02d" % i), rnd.randbytes(size))
    write(os.path.join(root, b"text"), b"the same line %d\n" % seed * 5_000)


def init_repo(backend: Backend) -> Repository:
    return new_repo(backend, chunker=SMALL_CHUNKS, pack_size=PACK_SIZE)


def back_up(repo: Repository, src: bytes) -> bytes:
    """Back ``src`` up; the snapshot ID."""
    result = backup(repo, BackupRequest(paths=(src,), hostname="prod"))
    assert not result.warnings
    return result.snapshot.id


def restored(target: Path, src: bytes) -> bytes:
    """Where ``src`` lands in a restore: the snapshot mirrors absolute paths."""
    return os.path.join(os.fsencode(target), src.lstrip(b"/"))


def assert_restores(backend: Backend, snapshot_id: bytes, src: bytes, where: Path) -> None:
    """The DR copy opens with the production password, restores ``src`` exactly, and passes a
    full check (every blob of every pack read and verified)."""
    repo = Repository.open(backend, PASSWORD)
    restore(repo, load(repo, snapshot_id), os.fsencode(where))
    assert_same_tree(src, restored(where, src))
    result = check(repo, read_data=True)
    assert result.ok, result.errors


def objects(backend: Backend) -> dict[str, int]:
    return {info.name: info.size for info in backend.list("")}


def assert_mirror(source: Backend, target: Backend, *, whole: bool = True) -> None:
    """Every object at the target is byte-identical to the source's object of that name and
    whole (content-addressed objects match their names). With ``whole``, nothing is missing."""
    there = objects(target)
    for name in there:
        data = target.get(name)
        assert data == source.get(name), name
        want = layout.parse_hex_name(name)
        assert name == layout.CONFIG or (want is not None and sha256(data) == want), name
    if whole:
        assert set(there) == set(objects(source))


def pack_names(backend: Backend) -> dict[bytes, str]:
    out = {}
    for prefix in PACK_PREFIXES:
        for info in backend.list(prefix):
            name = layout.parse_hex_name(info.name)
            assert name is not None, info.name
            out[name] = info.name
    return out


def assert_snapshots_complete(backend: Backend) -> int:
    """Keyless: every visible object is whole, and every snapshot has all its packs and each
    of them is named by an index file present. Returns the number of snapshots."""
    packs = pack_names(backend)
    indexed: set[bytes] = set()
    for name, _size in objects(backend).items():
        assert ".tmp-" not in name, name
        data = backend.get(name)
        want = layout.parse_hex_name(name)
        assert name == layout.CONFIG or (want is not None and sha256(data) == want), name
        if name.startswith(layout.INDEX):
            indexed.update(envelope.parse(data, envelope.INDEX_MAGIC).packs)
    snapshots = [i.name for i in backend.list(layout.SNAPSHOTS)]
    for name in snapshots:
        needed = envelope.parse(backend.get(name), envelope.SNAPSHOT_MAGIC).packs
        assert set(needed) <= set(packs), f"{name}: packs missing"
        assert set(needed) <= indexed, f"{name}: packs in no index file"
    return len(snapshots)


class Counting(Wrapper):
    """Counts gets per object name."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.gets: Counter[str] = Counter()
        self._lock = threading.Lock()

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._lock:
            self.gets[name] += 1
        return self.inner.get(name, offset, length)
