"""Chunker: in-memory and streaming chunking agree, bounded buffers, EOF handling."""

from __future__ import annotations

import ctypes
import hashlib
import io
import mmap
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drvault.chunker import IMPLEMENTATION, Chunker, ChunkerParams, canonical_gear, keyed_gear

NATIVE = IMPLEMENTATION == "native"
SMALL = ChunkerParams(64, 256, 1024, 1)


class ShortReader:
    """A stream whose readinto returns at most a few bytes at a time."""

    def __init__(self, data: bytes, rng: random.Random, most: int) -> None:
        self._stream = io.BytesIO(data)
        self._rng = rng
        self._most = most
        self.largest_request = 0

    def readinto(self, buffer: memoryview, /) -> int:
        self.largest_request = max(self.largest_request, len(buffer))
        want = min(len(buffer), self._rng.randint(1, self._most))
        return self._stream.readinto(buffer[:want])


def sizes(chunks: list[bytes] | list[memoryview]) -> list[int]:
    return [len(chunk) for chunk in chunks]


@settings(max_examples=60 if NATIVE else 25, deadline=None)
@given(
    data=st.randoms(use_true_random=False).flatmap(
        lambda r: st.just(r.randbytes(r.randint(0, 30_000 if NATIVE else 6_000)))
    ),
    level=st.integers(0, 3),
    most=st.integers(1, 3000),
    extra=st.integers(0, 3000),
    seed=st.integers(0, 1000),
)
def test_chunk_file_matches_chunk_buffer(
    data: bytes, level: int, most: int, extra: int, seed: int
) -> None:
    params = ChunkerParams(SMALL.min_size, SMALL.avg_size, SMALL.max_size, level)
    chunker = Chunker(params, canonical_gear())
    expected = [bytes(chunk) for chunk in chunker.chunk_buffer(data)]
    reader = ShortReader(data, random.Random(seed), most)
    got = list(chunker.chunk_file(reader, buffer_size=params.max_size + extra))
    assert got == expected
    assert b"".join(got) == data
    assert all(isinstance(chunk, bytes) for chunk in got)
    assert all(params.min_size <= len(chunk) <= params.max_size for chunk in got[:-1])
    assert all(0 < len(chunk) <= params.max_size for chunk in got)
    # the buffer: buffer_size rounded up to 4 KiB blocks, and one block of room to align reads
    assert reader.largest_request <= -(-(params.max_size + extra) // 4096) * 4096 + 4096
    assert [sum(sizes(got[: i + 1])) for i in range(len(got))] == chunker.cut_points(data)


def test_large_stream_bounded_buffer() -> None:
    params = ChunkerParams.for_average(4096 if NATIVE else 256)
    data = hashlib.shake_256(b"large").digest(8 << 20 if NATIVE else 64 << 10)
    chunker = Chunker(params, keyed_gear(b"k" * 32))
    reader = ShortReader(data, random.Random(1), 1 << 20)
    got = list(chunker.chunk_file(reader, buffer_size=3 * params.max_size))
    # the buffer: rounded up to 4 KiB blocks, and one block of room to align reads
    assert reader.largest_request <= -(-3 * params.max_size // 4096) * 4096 + 4096
    assert sizes(got) == sizes(list(chunker.chunk_buffer(data)))
    assert b"".join(got) == data


class AlignedOnly:
    """A stream that, like a file opened with O_DIRECT, accepts only reads of whole 4 KiB
    blocks into 4 KiB-aligned memory at 4 KiB-aligned offsets (until its end)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0
        self.reads = 0

    def readinto(self, buffer: memoryview, /) -> int:
        if self._at == len(self._data):
            return 0  # the end (drvault.directio.DirectReader answers without a read)
        address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
        assert address % 4096 == 0 and self._at % 4096 == 0, (address, self._at)
        want = len(buffer) - len(buffer) % 4096
        assert want > 0
        got = self._data[self._at : self._at + want]
        buffer[: len(got)] = got
        self._at += len(got)
        self.reads += 1
        return len(got)


@pytest.mark.parametrize("size", [0, 4096, 1_000_000, (3 << 20) + 123])
def test_chunk_file_reads_aligned_blocks(size: int) -> None:
    params = ChunkerParams.for_average(16384)
    data = hashlib.shake_256(b"aligned").digest(size)
    chunker = Chunker(params, keyed_gear(b"k" * 32))
    reader = AlignedOnly(data)
    got = list(chunker.chunk_file(reader, buffer_size=3 * params.max_size + 1000))
    assert got == [bytes(c) for c in chunker.chunk_buffer(data)]
    assert reader.reads >= size // (3 * params.max_size + 5096)


def test_default_read_buffer_size() -> None:
    assert Chunker.canonical(ChunkerParams.for_average(1 << 20)).read_buffer_size == 16 << 20
    assert Chunker.canonical(ChunkerParams.for_average(4 << 20)).read_buffer_size == 64 << 20
    assert Chunker.canonical(SMALL).read_buffer_size == 16 << 20


def test_chunk_file_from_real_file(tmp_path: Path) -> None:
    data = hashlib.shake_256(b"file").digest(200_000 if NATIVE else 20_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    chunker = Chunker.canonical(ChunkerParams.for_average(1024))
    with path.open("rb") as f:
        got = list(chunker.chunk_file(f))
    with path.open("rb", buffering=0) as f:
        unbuffered = list(chunker.chunk_file(f, buffer_size=4096))
    assert got == unbuffered == [bytes(c) for c in chunker.chunk_buffer(data)]
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        views = list(chunker.chunk_buffer(mapped))
        assert [bytes(v) for v in views] == got
        del views


def test_chunk_file_with_read_only_stream() -> None:
    class ReadOnly:
        def __init__(self, data: bytes) -> None:
            self._stream = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._stream.read(min(size, 777))

    data = hashlib.shake_256(b"read").digest(20_000)
    chunker = Chunker.canonical(SMALL)
    got = list(chunker.chunk_file(ReadOnly(data), buffer_size=2048))  # type: ignore[arg-type]
    assert got == [bytes(c) for c in chunker.chunk_buffer(data)]


def test_empty_inputs_yield_nothing() -> None:
    chunker = Chunker.canonical(SMALL)
    assert list(chunker.chunk_file(io.BytesIO(b""))) == []
    assert list(chunker.chunk_buffer(b"")) == []
    assert chunker.cut_points(b"") == []
    assert chunker.cut(b"") == 0


def test_tiny_input_is_one_chunk() -> None:
    chunker = Chunker.canonical(SMALL)
    assert list(chunker.chunk_file(io.BytesIO(b"abc"))) == [b"abc"]
    assert [bytes(v) for v in chunker.chunk_buffer(bytearray(b"abc"))] == [b"abc"]


def test_chunk_buffer_views_share_memory() -> None:
    data = bytearray(hashlib.shake_256(b"views").digest(10_000))
    views = list(Chunker.canonical(SMALL).chunk_buffer(data))
    assert all(isinstance(view, memoryview) for view in views)
    data[0] ^= 0xFF
    assert views[0][0] == data[0]


def test_chunk_buffer_windows_match_one_call() -> None:
    # Inputs longer than the window (64 * max_size, at least 16 MiB) are cut piecewise.
    params = ChunkerParams(64, 256, 1024, 1)
    chunker = Chunker.canonical(params)
    data = hashlib.shake_256(b"windows").digest((16 << 20) + 5000 if NATIVE else 20_000)
    offsets = chunker.cut_points(data)
    ends, total = [], 0
    for view in chunker.chunk_buffer(data):
        total += len(view)
        ends.append(total)
    assert ends == offsets


def test_chunk_file_rejects_small_buffer_and_nonblocking_streams() -> None:
    chunker = Chunker.canonical(SMALL)
    with pytest.raises(ValueError, match="buffer_size"):
        next(chunker.chunk_file(io.BytesIO(b"x"), buffer_size=1023))

    class NonBlocking:
        def readinto(self, buffer: memoryview, /) -> int | None:
            return None

    with pytest.raises(BlockingIOError):
        next(chunker.chunk_file(NonBlocking()))


def test_chunker_validates_and_hides_gear() -> None:
    with pytest.raises(ValueError, match="2048"):
        Chunker(SMALL, b"short")
    with pytest.raises(TypeError):
        Chunker((64, 256, 1024, 1), canonical_gear())  # type: ignore[arg-type]
    chunker = Chunker(SMALL, bytearray(keyed_gear(b"s" * 32)))  # type: ignore[arg-type]
    assert isinstance(chunker.gear, bytes)
    assert "gear" not in repr(chunker)
    assert chunker == Chunker.keyed(SMALL, b"s" * 32)
