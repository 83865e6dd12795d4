"""Unbuffered I/O: reads and pack writes give the exact bytes with O_DIRECT, and fall back to
buffered I/O where a file system refuses it."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import uncached

from drvault import directio
from drvault.backup import BackupRequest, backup
from drvault.chunker import Chunker, ChunkerParams, keyed_gear
from drvault.directio import (
    ALIGN,
    O_DIRECT,
    DirectReader,
    ReadAhead,
    aligned_buffer,
    is_aligned,
    write_direct,
)
from drvault.repository.repository import Repository
from drvault.snapshots import find


def _content(n: int) -> bytes:
    return hashlib.shake_256(b"directio %d" % n).digest(n)


def _is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT)


def _refuse_o_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that refuses O_DIRECT when a descriptor is switched to it."""
    real_fcntl = fcntl.fcntl

    def refusing(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETFL and arg & O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(directio.fcntl, "fcntl", refusing)


def _read_all(reader: DirectReader, block: int = 64 * 1024) -> bytes:
    memory = aligned_buffer(block)
    got = bytearray()
    while n := reader.readinto(memoryview(memory)):
        got += memory[:n]
    assert reader.readinto(memoryview(memory)) == 0  # after the end: still the end
    return bytes(got)


@pytest.mark.parametrize("size", [1, ALIGN - 1, ALIGN, 5 * ALIGN + 1, (1 << 20) + 17])
def test_a_file_not_in_the_page_cache_is_read_directly(tmp_path: Path, size: int) -> None:
    data = _content(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(uncached(path), os.O_RDONLY)
    try:
        reader = DirectReader(fd)
        assert _read_all(reader) == data
        assert reader.direct and _is_direct(fd)  # the test machine's ext4 allows O_DIRECT
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [100, 5 * ALIGN + 1, (1 << 20) + 17])
def test_a_file_in_the_page_cache_is_read_through_it(tmp_path: Path, size: int) -> None:
    data = _content(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert path.read_bytes() == data  # cached
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = DirectReader(fd)
        assert _read_all(reader) == data
        assert not reader.direct and not _is_direct(fd)
    finally:
        os.close(fd)


def test_chunk_file_over_a_direct_reader_matches_the_buffer(tmp_path: Path) -> None:
    data = _content(3_000_003)
    path = tmp_path / "f"
    path.write_bytes(data)
    chunker = Chunker(ChunkerParams.for_average(16384), keyed_gear(b"k" * 32))
    fd = os.open(uncached(path), os.O_RDONLY)
    try:
        reader = DirectReader(fd)
        got = list(chunker.chunk_file(reader, buffer_size=300_000))
        assert reader.direct
    finally:
        os.close(fd)
    assert got == [bytes(c) for c in chunker.chunk_buffer(data)]


def test_a_read_refused_with_einval_goes_on_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _content(100_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    real_readv = os.readv

    def readv(fd: int, buffers: list[memoryview]) -> int:
        if _is_direct(fd):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_readv(fd, buffers)

    monkeypatch.setattr(directio.os, "readv", readv)
    fd = os.open(uncached(path), os.O_RDONLY)
    try:
        reader = DirectReader(fd)
        assert _read_all(reader, 200_000) == data
        assert not reader.direct and not _is_direct(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("refusal", ["fcntl", "cachestat"])
def test_a_file_system_refusing_direct_reads_or_cachestat_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    """O_DIRECT refused when the descriptor is switched: read buffered. The page cache cannot
    be asked: the file is taken as not cached, and read directly."""
    data = _content(50_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    if refusal == "fcntl":
        _refuse_o_direct(monkeypatch)
    else:
        monkeypatch.setattr(directio, "_SYSCALL", None)  # a kernel older than 6.5
    fd = os.open(uncached(path) if refusal == "fcntl" else path, os.O_RDONLY)
    try:
        reader = DirectReader(fd)
        assert _read_all(reader) == data
        assert reader.direct == (refusal == "cachestat")
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [0, 100, ALIGN, 3 * ALIGN + 100, (2 << 20) + 5])
@pytest.mark.parametrize("kind", ["aligned", "unaligned", "bytes"])
def test_write_direct_writes_exactly_the_data(tmp_path: Path, size: int, kind: str) -> None:
    data = _content(size)
    memory = aligned_buffer(size + 1)
    if kind == "aligned":
        memory[:size] = data
        source: bytes | memoryview = memoryview(memory)[:size]
        assert size == 0 or is_aligned(source)
    elif kind == "unaligned":
        memory[1 : size + 1] = data
        source = memoryview(memory)[1 : size + 1]
        assert not is_aligned(source)
    else:
        source = data
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_direct(fd, source)
        assert not _is_direct(fd)  # the descriptor is left as it was
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_write_direct_refused_with_einval_writes_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _content(5 * ALIGN + 7)
    memory = aligned_buffer(len(data))
    memory[: len(data)] = data
    real_write = os.write
    refused = []

    def write(fd: int, view: memoryview) -> int:
        if _is_direct(fd):
            if not refused:  # the first direct write gets through, the next is refused
                refused.append(0)
                return real_write(fd, view[:ALIGN])
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, view)

    monkeypatch.setattr(directio.os, "write", write)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_direct(fd, memoryview(memory)[: len(data)])
    finally:
        os.close(fd)
    assert refused and path.read_bytes() == data


def test_backup_where_o_direct_is_refused_stores_every_file(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = {"small": _content(5000), "large": _content(3_000_001), "empty": b""}
    for name, data in files.items():
        (src / name).write_bytes(data)
    for name in files:
        uncached(src / name)
    _refuse_o_direct(monkeypatch)
    result = backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    assert not result.warnings
    for name, data in files.items():
        entry = find(repo, result.snapshot.tree, os.fsencode(src / name))
        assert entry is not None
        assert b"".join(repo.get_blob(b) for b in entry.node.content) == data


@pytest.mark.parametrize("size", [0, 100, ALIGN, 3 * 65536 + 5, 1_000_003])
@pytest.mark.parametrize("want", [4096, 65536, 100_000])
def test_read_ahead_gives_the_file_in_any_target_sizes(
    tmp_path: Path, size: int, want: int
) -> None:
    data = _content(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    buffers = [aligned_buffer(65536) for _ in range(2)]
    fd = os.open(uncached(path), os.O_RDONLY)
    with ThreadPoolExecutor(1) as pool:
        ahead = ReadAhead(DirectReader(fd), buffers, pool)
        try:
            target = bytearray(want)
            got = bytearray()
            while n := ahead.readinto(memoryview(target)):
                assert 0 < n <= want
                got += target[:n]
            assert ahead.readinto(memoryview(target)) == 0
        finally:
            ahead.close()
            os.close(fd)
    assert bytes(got) == data


def test_read_ahead_closed_early_waits_for_its_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(_content(500_000))
    buffers = [aligned_buffer(65536) for _ in range(2)]
    fd = os.open(uncached(path), os.O_RDONLY)
    with ThreadPoolExecutor(1) as pool:
        ahead = ReadAhead(DirectReader(fd), buffers, pool)
        target = bytearray(1000)
        assert ahead.readinto(memoryview(target)) == 1000
        ahead.close()  # a read of the next block is in flight, or done
        assert ahead._pending is None
        os.close(fd)
    for b in buffers:
        b.close()  # nothing holds the buffers any more
