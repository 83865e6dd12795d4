"""Known answers of the reference implementation (fastcdc crate, src/v2020 tests).

Run against both implementations, whatever DRVAULT_CHUNKER says: the C extension must
be built for this suite to pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from drvault.chunker import Chunker, ChunkerParams, canonical_gear, fallback
from drvault.chunker import _fastcdc as native

# A copy of ../shared/testdata/SekienAkashita.jpg (the fastcdc crate's fixture), kept beside
# the tests so a checkout anywhere is self-contained.
SEKIEN = Path(__file__).with_name("SekienAkashita.jpg")

CutsFn = Callable[..., list[int]]
IMPLEMENTATIONS: dict[str, tuple[Callable[..., int], CutsFn]] = {
    "native": (native.cut, native.cuts),
    "python": (fallback.cut, fallback.cuts),
}

# (min, avg, max, level) -> chunk lengths, from the crate's test_cut_sekien_* tests.
SEKIEN_VECTORS = {
    (4096, 16384, 65535, 1): [21325, 17140, 28084, 18217, 24700],
    (8192, 32768, 131072, 1): [66549, 42917],
    (16384, 65536, 262144, 1): [109466],
    (4096, 16384, 65535, 0): [6634, 59915, 25597, 5237, 12083],
    (8192, 16384, 32768, 3): [17350, 19911, 17426, 17519, 19940, 17320],
}
# MD5 of the five 16 KiB chunks (crate's test_iter_sekien_16k_chunks).
SEKIEN_16K_MD5 = [
    "2bb52734718194617c957f5e07ee6054",
    "badfb0757fe081c20336902e7131f768",
    "18412d7414de6eb42f638351711f729d",
    "04fe1405fc5f960363bfcd834c056407",
    "1aa7ad95f274d6ba34a983946ebc5af3",
]


@pytest.fixture(scope="module")
def sekien() -> bytes:
    data = SEKIEN.read_bytes()
    assert len(data) == 109466
    return data


def lengths(offsets: list[int]) -> list[int]:
    return [end - start for start, end in zip([0, *offsets], offsets, strict=False)]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("args", SEKIEN_VECTORS, ids=str)
def test_sekien_cuts(impl: str, args: tuple[int, int, int, int], sekien: bytes) -> None:
    cut, cuts = IMPLEMENTATIONS[impl]
    expected = SEKIEN_VECTORS[args]
    assert lengths(cuts(sekien, canonical_gear(), *args, True)) == expected
    # cut() walked chunk by chunk, as the crate's test does.
    got, pos = [], 0
    while pos < len(sekien):
        length = cut(memoryview(sekien)[pos:], canonical_gear(), *args)
        got.append(length)
        pos += length
    assert got == expected


def test_sekien_16k_chunk_digests(sekien: bytes) -> None:
    chunker = Chunker(ChunkerParams(4096, 16384, 65535, 1), canonical_gear())
    chunks = list(chunker.chunk_buffer(sekien))
    assert [hashlib.md5(chunk).hexdigest() for chunk in chunks] == SEKIEN_16K_MD5


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_all_zeros_cut_at_max(impl: str) -> None:
    # Crate's test_cut_all_zeros: 10 KiB of zeros, 64/256/1024 -> ten 1024-byte chunks.
    _, cuts = IMPLEMENTATIONS[impl]
    assert cuts(bytes(10240), canonical_gear(), 64, 256, 1024, 1, True) == list(
        range(1024, 10241, 1024)
    )


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_short_inputs_are_one_chunk(impl: str) -> None:
    cut, cuts = IMPLEMENTATIONS[impl]
    gear = canonical_gear()
    for size in (0, 1, 63, 64):
        assert cut(bytes(size), gear, 64, 256, 1024, 1) == size
    assert cuts(b"", gear, 64, 256, 1024, 1, True) == []
    assert cuts(b"x" * 64, gear, 64, 256, 1024, 1, True) == [64]
    assert cuts(b"x" * 64, gear, 64, 256, 1024, 1, False) == []
