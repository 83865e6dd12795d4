"""Read-ahead of small files: which files are read ahead, that their pages arrive and are
dropped again, and that a backup reading them ahead stores every byte and leaves the page
cache as it found it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from conftest import uncached

from drvault import backup as backup_module
from drvault.backup import BackupRequest, backup
from drvault.directio import first_block_cached
from drvault.filesystem import prefetch
from drvault.filesystem.prefetch import FileBatch, drop, read_ahead
from drvault.repository.repository import Repository
from drvault.snapshots import find


def _content(n: int, seed: int = 0) -> bytes:
    return hashlib.shake_256(b"prefetch %d %d" % (n, seed)).digest(n)


def _cached(path: Path) -> bool | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return first_block_cached(fd)
    finally:
        os.close(fd)


def test_the_page_cache_can_be_asked_here() -> None:
    # cachestat (Linux 6.5+): without it nothing is read ahead, and these tests would not
    # see the read-ahead at work. The test machines have it; fail loudly where they do not.
    fd = os.open(__file__, os.O_RDONLY)
    try:
        assert first_block_cached(fd) is not None
    finally:
        os.close(fd)


def test_uncached_files_not_begun_are_read_ahead_and_marked(tmp_path: Path) -> None:
    paths = []
    for i in range(6):
        p = tmp_path / f"f{i}"
        p.write_bytes(_content(20_000, i))
        paths.append(p)
    for p in paths[1:]:
        uncached(p)
    paths[0].read_bytes()  # someone else's cached file: left alone
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # became a FIFO after the walk: opening must not block
    batch = FileBatch([os.fsencode(p) for p in [*paths, fifo, tmp_path / "gone"]])
    assert not batch.begin(0) and not batch.begin(1)  # the worker has begun f0 and f1
    assert _cached(paths[1]) is False and _cached(paths[2]) is False
    assert read_ahead(batch)
    assert batch.marked() == [2, 3, 4, 5]
    assert batch.begin(2) and batch.begin(5) and not batch.begin(6)
    assert _cached(paths[1]) is False  # begun: the worker reads it, not the read-ahead
    for p in paths[2:]:
        assert _cached(p) is True
    fd = os.open(paths[2], os.O_RDONLY)
    try:
        assert os.read(fd, 30_000) == _content(20_000, 2)
        drop(fd)
        assert first_block_cached(fd) is False
    finally:
        os.close(fd)


def test_without_cachestat_nothing_is_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "f").write_bytes(b"x" * 9000)
    p = uncached(tmp_path / "f")
    monkeypatch.setattr(prefetch, "first_block_cached", lambda fd: None)
    batch = FileBatch([os.fsencode(p)])
    assert not read_ahead(batch)
    assert batch.marked() == []


def test_backup_reads_uncached_small_files_ahead_and_drops_their_pages(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    files: dict[Path, bytes] = {}
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(40):
            files[src / f"d{d}" / f"f{i}"] = _content(1 + 997 * i, d)
    for path, data in files.items():
        path.write_bytes(data)
        uncached(path)
    marked: list[int] = []
    real = backup_module.read_ahead

    def counting(batch: FileBatch) -> bool:
        ok = real(batch)
        marked.append(len(batch.marked()))
        return ok

    monkeypatch.setattr(backup_module, "read_ahead", counting)
    result = backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    assert not result.warnings
    assert sum(marked) > len(files) // 2  # most files were read ahead (none begun yet)
    for path, data in files.items():
        entry = find(repo, result.snapshot.tree, os.fsencode(path))
        assert entry is not None
        assert b"".join(repo.get_blob(b) for b in entry.node.content) == data
    # Pages read ahead are dropped once read. A file the worker began while its read-ahead
    # was under way may keep them (a race the design allows): a few at most.
    still_cached = [p for p in files if _cached(p)]
    assert len(still_cached) <= 3, still_cached
