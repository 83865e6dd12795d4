"""The C extension's contract: buffers, argument checks, eof semantics, the GIL."""

from __future__ import annotations

import array
import hashlib
import mmap
import threading
from typing import Any

import pytest

from drvault.chunker import _fastcdc as native
from drvault.chunker import canonical_gear, fallback

GEAR = canonical_gear()
PARAMS = (1024, 4096, 16384, 1)
DATA = hashlib.shake_256(b"fastcdc buffers").digest(256 * 1024)


def test_accepts_any_contiguous_buffer(tmp_path: Any) -> None:
    expected = native.cuts(DATA, GEAR, *PARAMS, True)
    assert len(expected) > 20
    path = tmp_path / "data"
    path.write_bytes(DATA)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert native.cuts(mapped, GEAR, *PARAMS, True) == expected
        assert native.cut(mapped, GEAR, *PARAMS) == expected[0]
    for buf in (bytearray(DATA), memoryview(DATA), array.array("B", DATA)):
        assert native.cuts(buf, GEAR, *PARAMS, True) == expected
        assert native.cut(buf, GEAR, *PARAMS) == expected[0]
    # A slice that starts at a chunk boundary continues with the same cut points.
    tail = memoryview(DATA)[expected[2] :]
    assert native.cuts(tail, GEAR, *PARAMS, True) == [x - expected[2] for x in expected[3:]]
    # Multi-byte formats are read as their bytes.
    assert native.cuts(memoryview(DATA).cast("Q"), GEAR, *PARAMS, True) == expected


def test_gear_may_be_any_buffer_even_unaligned() -> None:
    expected = native.cuts(DATA, GEAR, *PARAMS, True)
    unaligned = memoryview(b"\0" + GEAR)[1:]
    assert native.cuts(DATA, unaligned, *PARAMS, True) == expected
    assert native.cuts(DATA, bytearray(GEAR), *PARAMS, True) == expected


def test_rejects_non_contiguous_buffer() -> None:
    with pytest.raises(BufferError):
        native.cut(memoryview(DATA)[::2], GEAR, *PARAMS)


@pytest.mark.parametrize(
    "params",
    [
        (1024, 4096, 16384, 4),
        (1024, 4096, 16384, -1),
        (1024, 4000, 16384, 1),
        (64, 128, 16384, 1),
        (64, 8 << 20, 16 << 20, 1),
        (62, 4096, 16384, 1),
        (1025, 4096, 16384, 1),
        (4096, 4096, 16384, 1),
        (1024, 4096, 4096, 1),
        (1024, 4096, (16 << 20) + 2, 1),
    ],
)
def test_rejects_bad_params_like_fallback(params: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError) as native_error:
        native.cut(DATA, GEAR, *params)
    with pytest.raises(ValueError) as python_error:
        fallback.cut(DATA, GEAR, *params)
    with pytest.raises(ValueError):
        native.cuts(DATA, GEAR, *params, True)
    # Same first words: both name the offending parameter.
    assert str(native_error.value).split()[0] == str(python_error.value).split()[0]


@pytest.mark.parametrize("gear", [b"", GEAR[:-1], GEAR + b"\0"])
def test_rejects_wrong_gear_size(gear: bytes) -> None:
    with pytest.raises(ValueError, match="2048"):
        native.cut(DATA, gear, *PARAMS)
    with pytest.raises(ValueError, match="2048"):
        fallback.cut(DATA, gear, *PARAMS)


def test_rejects_wrong_argument_types_and_counts() -> None:
    with pytest.raises(TypeError):
        native.cut(DATA, GEAR, *PARAMS[:3])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        native.cuts(DATA, GEAR, *PARAMS)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        native.cut("text", GEAR, *PARAMS)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        native.cut(DATA, GEAR, 1024.0, 4096, 16384, 1)  # type: ignore[arg-type]


def test_cut_never_exceeds_max_and_respects_min() -> None:
    assert native.cut(bytes(100_000), GEAR, *PARAMS) == 16384
    offsets = native.cuts(DATA, GEAR, *PARAMS, True)
    sizes = [b - a for a, b in zip([0, *offsets], offsets, strict=False)]
    assert all(1024 <= size <= 16384 for size in sizes[:-1])


def test_cuts_without_eof_leaves_the_unfinished_tail() -> None:
    full = native.cuts(DATA, GEAR, *PARAMS, True)
    partial = native.cuts(DATA, GEAR, *PARAMS, False)
    assert partial == full[: len(partial)]
    assert len(DATA) - partial[-1] < 16384  # the tail is shorter than max_size
    # Growing the input never moves a cut reported without eof.
    for size in range(0, len(DATA), 7919):
        prefix = native.cuts(memoryview(DATA)[:size], GEAR, *PARAMS, False)
        assert prefix == full[: len(prefix)]
        assert size - (prefix[-1] if prefix else 0) < 16384
    # A full max_size chunk is final even without eof.
    assert native.cuts(bytes(16384), GEAR, *PARAMS, False) == [16384]
    assert native.cuts(bytes(16383), GEAR, *PARAMS, False) == []


def test_threads_chunk_concurrently_without_deadlock() -> None:
    big = hashlib.shake_256(b"gil").digest(4 << 20) * 8  # 32 MiB
    expected = native.cuts(big, GEAR, 16384, 65536, 262144, 1, True)
    results: list[list[int]] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(2):
            got = native.cuts(big, GEAR, 16384, 65536, 262144, 1, True)
            with lock:
                results.append(got)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert results == [expected] * 6
