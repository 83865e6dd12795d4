"""Cross-check against an independent FastCDC 2020 implementation: the pyfastcdc package."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drvault.chunker import IMPLEMENTATION, Chunker, ChunkerParams, canonical_gear

pyfastcdc = pytest.importorskip("pyfastcdc")
# The pure-Python fallback scans about 1 MB/s: keep its inputs small.
MAX_INPUT = 40_000 if IMPLEMENTATION == "native" else 8_000


@settings(max_examples=60, deadline=None)
@given(
    avg_bits=st.integers(8, 12),
    level=st.integers(0, 3),
    min_quarters=st.integers(1, 3),
    max_factor=st.integers(2, 8),
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, MAX_INPUT),
)
def test_same_cut_points_as_pyfastcdc(
    avg_bits: int, level: int, min_quarters: int, max_factor: int, seed: int, size: int
) -> None:
    avg = 1 << avg_bits
    params = ChunkerParams(
        max(64, avg * min_quarters // 4), avg, max(1024, avg * max_factor), level
    )
    data = random.Random(seed).randbytes(size)
    reference = pyfastcdc.FastCDC(
        avg,
        min_size=params.min_size,
        max_size=params.max_size,
        normalized_chunking=level,
    )
    expected = [chunk.offset + chunk.length for chunk in reference.cut_buf(data)]
    assert Chunker(params, canonical_gear()).cut_points(data) == expected
