"""Backup and restore through a faulty link: transient faults are retried away and leave a
clean repository; a permanent fault fails the backup and leaves earlier snapshots whole."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PASSWORD, SMALL_CHUNKS, new_repo, open_repo
from trees import assert_same_tree, write

from drvault.backup import BackupRequest, backup
from drvault.check import check
from drvault.errors import BackendError, PermanentError
from drvault.repository.repository import Repository
from drvault.restore import restore
from drvault.snapshots import load
from drvault.transport import LocalBackend
from drvault.transport.base import Backend
from drvault.transport.metrics import Metrics
from drvault.transport.options import TransportOptions
from drvault.transport.stack import Wrapper, stack
from tests.transport.faults import DroppingBackend, FlakyBackend

KIB = 1 << 10
PACK_SIZE = 128 * KIB
FAST_RETRIES = TransportOptions(retry_base=0.001, retry_max=0.01, retry_deadline=30.0)


def build_tree(root: bytes, seed: int = 11) -> None:
    """About 3 MiB: files larger than a pack, small files, a duplicate, an empty file."""
    rnd = random.Random(seed)
    os.makedirs(os.path.join(root, b"big"))
    os.makedirs(os.path.join(root, b"small", b"deeper"))
    for i, size in enumerate((700 * KIB, 500 * KIB, 300 * KIB + 17)):
        write(os.path.join(root, b"big", b"f%d.bin" % i), rnd.randbytes(size))
    for i in range(30):
        write(os.path.join(root, b"small", b"s%02d" % i), rnd.randbytes(rnd.randrange(1, 40_000)))
    write(os.path.join(root, b"small", b"deeper", b"text"), b"the same line\n" * 20_000)
    write(os.path.join(root, b"small", b"deeper", b"copy"), b"the same line\n" * 20_000)
    write(os.path.join(root, b"empty"), b"")


def init_repo(backend: Backend) -> Repository:
    return new_repo(backend, chunker=SMALL_CHUNKS, pack_size=PACK_SIZE)


def restored(target: Path, src: bytes) -> bytes:
    """Where ``src`` lands in a restore: the snapshot mirrors absolute paths."""
    return os.path.join(os.fsencode(target), src.lstrip(b"/"))


Faulty = Callable[[Backend], FlakyBackend | DroppingBackend]


@pytest.mark.parametrize(
    "faulty",
    [
        pytest.param(lambda b: FlakyBackend(b, every=5), id="flaky"),
        pytest.param(
            lambda b: FlakyBackend(b, every=5, ops=("put", "get", "list"), after=True),
            id="answers-lost",
        ),
        pytest.param(lambda b: DroppingBackend(b, every=3), id="dropping"),
    ],
)
def test_backup_and_restore_through_transient_faults(tmp_path: Path, faulty: Faulty) -> None:
    src = os.fsencode(tmp_path / "src")
    build_tree(src)
    repo_dir = tmp_path / "repo"
    metrics = Metrics()
    faults = faulty(LocalBackend(repo_dir))
    repo = init_repo(stack(faults, FAST_RETRIES, metrics))

    result = backup(repo, BackupRequest(paths=(src,)))
    assert not result.warnings
    assert repo.stats.packs_written >= 10  # several packs, some from files bigger than a pack

    # restore through the faulty link too, with a fresh open (config, keys, index, snapshots)
    repo = Repository.open(stack(faults, FAST_RETRIES, metrics), PASSWORD)
    target = tmp_path / "target"
    restore(repo, load(repo, result.snapshot.id), os.fsencode(target))
    assert_same_tree(src, restored(target, src))

    assert faults.injected > 0
    assert metrics.retries > 0
    assert metrics.transient_errors == faults.injected
    assert metrics.permanent_errors == 0

    # the raw repository, read without faults, is whole
    clean = check(open_repo(repo_dir), read_data=True)
    assert clean.ok, clean.errors
    assert clean.stats.snapshots == 1
    assert clean.stats.unreferenced_packs == 0


class Refusing(Wrapper):
    """Puts under ``prefix`` fail with access denied once ``allowed`` of them went through."""

    def __init__(self, inner: Backend, prefix: str, allowed: int) -> None:
        super().__init__(inner)
        self.prefix = prefix
        self.allowed = allowed
        self.refused = 0

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        if name.startswith(self.prefix):
            if self.allowed <= 0:
                self.refused += 1
                raise PermanentError(f"{name}: access denied")
            self.allowed -= 1
        self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)


def test_a_permanent_fault_fails_the_backup_and_keeps_earlier_snapshots(tmp_path: Path) -> None:
    src = os.fsencode(tmp_path / "src")
    build_tree(src)
    repo_dir = tmp_path / "repo"
    first = backup(init_repo(LocalBackend(repo_dir)), BackupRequest(paths=(src,))).snapshot
    build_tree(os.path.join(src, b"new"), seed=12)  # new content: new data packs to upload

    metrics = Metrics()
    refusing = Refusing(LocalBackend(repo_dir), "data/", allowed=2)
    repo = Repository.open(stack(refusing, FAST_RETRIES, metrics), PASSWORD)
    with pytest.raises(BackendError) as info:
        backup(repo, BackupRequest(paths=(src,)))
    assert isinstance(info.value, PermanentError)
    assert "access denied" in str(info.value)
    assert str(info.value).startswith("data/")  # names the object
    assert refusing.refused >= 1
    assert metrics.retries == 0  # never retried
    assert metrics.permanent_errors == refusing.refused

    repo = open_repo(repo_dir)
    assert repo.snapshot_ids() == [first.id]
    result = check(repo, read_data=True)
    assert result.ok, result.errors
    assert result.stats.snapshots == 1
    target = tmp_path / "target"
    restore(repo, load(repo, first.id), os.fsencode(target))
    assert sorted(os.listdir(restored(target, src))) == [b"big", b"empty", b"small"]
