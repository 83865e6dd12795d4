from __future__ import annotations

import errno
import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drvault.filesystem import SparseWriter, data_regions
from drvault.filesystem.sparse import PWRITE_SPARSE, py_pwrite_sparse

MIB = 1 << 20


def _allocated(path: bytes) -> int:
    return os.stat(path).st_blocks * 512


def _write_in_chunks(writer: SparseWriter, image: bytes | bytearray, chunk: int) -> None:
    view = memoryview(image)
    for offset in range(0, len(image), chunk):
        writer.write(offset, view[offset : offset + chunk])


def test_mostly_zero_file_restores_identical_and_sparse(tmp_path: Path) -> None:
    rnd = random.Random(1)
    image = bytearray(64 * MIB)
    placed = [(0, 300_000), (10 * MIB + 123, MIB), (33 * MIB + 4095, 2 * MIB), (60 * MIB, 7)]
    for offset, length in placed:
        image[offset : offset + length] = rnd.randbytes(length)
    path = os.fsencode(tmp_path / "image")

    with SparseWriter(path) as writer:
        _write_in_chunks(writer, image, 3 * MIB + 17)  # chunks not aligned to blocks
        writer.finish(len(image))

    with open(path, "rb") as file:
        assert hashlib.sha256(file.read()).digest() == hashlib.sha256(image).digest()
    assert os.path.getsize(path) == 64 * MIB
    assert _allocated(path) < 4 * MIB  # about 3.3 MiB of data
    assert writer.block_size == os.stat(path).st_blksize


def test_zero_blocks_inside_a_chunk_become_holes(tmp_path: Path) -> None:
    chunk = bytearray(os.urandom(4 * MIB))
    chunk[MIB : 3 * MIB] = bytes(2 * MIB)
    path = os.fsencode(tmp_path / "f")
    with SparseWriter(path) as writer:
        writer.write(0, chunk)
        writer.finish(len(chunk))
    with open(path, "rb") as file:
        assert file.read() == chunk
    assert _allocated(path) <= 2 * MIB + 64 * 1024


def test_trailing_hole_keeps_the_size(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "f")
    with SparseWriter(path) as writer:
        writer.write(0, b"head")
        writer.write(4, bytes(8 * MIB))
        writer.finish(8 * MIB + 4)
    assert os.path.getsize(path) == 8 * MIB + 4
    assert _allocated(path) <= 64 * 1024
    with open(path, "rb") as file:
        assert file.read(4) == b"head"
        assert file.read() == bytes(8 * MIB)


def test_all_zero_and_empty_files(tmp_path: Path) -> None:
    zero = os.fsencode(tmp_path / "zero")
    with SparseWriter(zero) as writer:
        writer.write(0, bytes(MIB))
        writer.finish(MIB)
    assert os.path.getsize(zero) == MIB
    assert _allocated(zero) == 0
    empty = os.fsencode(tmp_path / "empty")
    with SparseWriter(empty) as writer:
        writer.finish(0)
    assert os.path.getsize(empty) == 0


def test_dense_mode_writes_every_block(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "f")
    with SparseWriter(path, sparse=False) as writer:
        writer.write(0, bytes(MIB))
        writer.finish(MIB)
    assert _allocated(path) >= MIB


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.binary(max_size=200)),
        max_size=6,
    ),
    st.sampled_from([1, 7, 16, 64]),
    st.integers(0, 50),
)
def test_any_writes_read_back_exactly(
    tmp_path_factory: pytest.TempPathFactory,
    pieces: list[tuple[int, bytes]],
    block_size: int,
    tail: int,
) -> None:
    # Lay the pieces out one after another with gaps; sprinkle zero runs into them.
    path = os.fsencode(tmp_path_factory.mktemp("sparse") / "f")
    expected = bytearray()
    with SparseWriter(path, block_size=block_size) as writer:
        for gap, data in pieces:
            expected += bytes(gap)
            mixed = bytes(b if i % 37 < 20 else 0 for i, b in enumerate(data))
            writer.write(len(expected), mixed)
            expected += mixed
        expected += bytes(tail)
        writer.finish(len(expected))
    with open(path, "rb") as file:
        assert file.read() == expected


def test_accepts_memoryview_of_other_formats(tmp_path: Path) -> None:
    import array

    values = array.array("I", [0, 0, 1, 2**32 - 1])
    path = os.fsencode(tmp_path / "f")
    with SparseWriter(path, block_size=4) as writer:
        writer.write(0, memoryview(values))
        writer.finish(len(values) * values.itemsize)
    with open(path, "rb") as file:
        assert file.read() == values.tobytes()


def test_refuses_to_follow_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    path = os.fsencode(tmp_path / "f")
    os.symlink(victim, path)
    with pytest.raises(OSError):
        SparseWriter(path)
    assert victim.read_bytes() == b"keep me"


def test_leaving_early_closes_without_truncating(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "f")
    with pytest.raises(RuntimeError), SparseWriter(path) as writer:
        writer.write(0, b"abc")
        raise RuntimeError("interrupted")
    assert os.path.getsize(path) == 3
    writer.close()  # idempotent


def test_data_regions_finds_holes(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "f")
    with SparseWriter(path) as writer:
        writer.write(MIB, os.urandom(8192))
        writer.write(4 * MIB, os.urandom(100))
        writer.finish(6 * MIB)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 17, os.SEEK_SET)
        regions = data_regions(fd, 6 * MIB)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 17
        assert regions == [(MIB, 8192), (4 * MIB, 4096)]
        assert data_regions(fd, MIB + 100) == [(MIB, 100)]
        assert data_regions(fd, 0) == []
    finally:
        os.close(fd)


def test_data_regions_of_dense_and_hole_only_files(tmp_path: Path) -> None:
    dense = tmp_path / "dense"
    dense.write_bytes(os.urandom(10_000))
    hole = tmp_path / "hole"
    with SparseWriter(os.fsencode(hole)) as writer:
        writer.finish(MIB)
    for path, expected in ((dense, [(0, 10_000)]), (hole, [])):
        assert data_regions_of(os.fsencode(path)) == expected


def test_the_c_sparse_write_is_in_use() -> None:
    assert PWRITE_SPARSE is not py_pwrite_sparse
    assert PWRITE_SPARSE.__module__ == "drvault.filesystem._sparse"


SparseWrite = Callable[[int, bytes, int, int], None]


def _write_with(
    write: SparseWrite, path: bytes, writes: list[tuple[int, bytes]], block: int
) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for offset, data in writes:
            write(fd, data, offset, block)
    finally:
        os.close(fd)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 9000),
            st.lists(st.tuples(st.booleans(), st.integers(1, 5000)), max_size=5),
        ),
        max_size=4,
    ),
    st.sampled_from([1, 8, 512, 4096]),
)
def test_c_and_python_write_the_same_bytes_and_holes(
    tmp_path_factory: pytest.TempPathFactory,
    plan: list[tuple[int, list[tuple[bool, int]]]],
    block: int,
) -> None:
    rnd = random.Random(len(plan) * 7919 + block)
    writes = []
    end = 0
    for gap, runs in plan:
        data = b"".join(bytes(n) if zero else rnd.randbytes(n) for zero, n in runs)
        writes.append((end + gap, data))
        end += gap + len(data)
    folder = tmp_path_factory.mktemp("c-vs-py")
    c_path, py_path = os.fsencode(folder / "c"), os.fsencode(folder / "py")
    _write_with(PWRITE_SPARSE, c_path, writes, block)
    _write_with(py_pwrite_sparse, py_path, writes, block)
    with open(c_path, "rb") as c_file, open(py_path, "rb") as py_file:
        assert c_file.read() == py_file.read()
    assert data_regions_of(c_path) == data_regions_of(py_path)  # the same blocks skipped


def data_regions_of(path: bytes) -> list[tuple[int, int]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return data_regions(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def test_a_zero_block_inside_a_blob_is_a_hole_in_both(tmp_path: Path) -> None:
    # three blocks: data, zeros, data, written at an offset that is not block-aligned
    data = os.urandom(4096) + bytes(8192) + os.urandom(4096)
    for name, write in (("c", PWRITE_SPARSE), ("py", py_pwrite_sparse)):
        path = os.fsencode(tmp_path / name)
        _write_with(write, path, [(4096 - 100, data)], 4096)
        with open(path, "rb") as file:
            assert file.read() == bytes(3996) + data
        assert data_regions_of(path) == [(0, 8192), (12288, 4096 + 3996)], name


@pytest.mark.parametrize("write", [PWRITE_SPARSE, py_pwrite_sparse], ids=["c", "python"])
def test_a_failed_write_raises_oserror(tmp_path: Path, write: SparseWrite) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            write(fd, b"x" * 10, 0, 4096)
        assert info.value.errno == errno.EBADF
        with pytest.raises(ValueError):
            write(fd, b"x", -1, 4096)
        with pytest.raises(ValueError):
            write(fd, b"x", 0, 0)
    finally:
        os.close(fd)
    assert path.read_bytes() == b""
