from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drvault.filesystem import SparseWriter, data_regions

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
        fd = os.open(path, os.O_RDONLY)
        try:
            assert data_regions(fd, os.fstat(fd).st_size) == expected
        finally:
            os.close(fd)
