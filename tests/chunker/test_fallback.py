"""The pure-Python fallback gives the C extension's cut points (property tests)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drvault.chunker import _fastcdc as native
from drvault.chunker import canonical_gear, fallback

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def params(draw: st.DrawFn) -> tuple[int, int, int, int]:
    avg = draw(st.sampled_from([256, 512, 1024]))
    min_size = 2 * draw(st.integers(32, avg // 2 - 1))
    max_size = draw(st.integers(avg + 1, 4 * avg))
    return min_size, avg, max_size, draw(st.integers(0, 3))


@st.composite
def cases(draw: st.DrawFn) -> tuple[bytes, bytes, tuple[int, int, int, int]]:
    args = draw(params())
    min_size, _, max_size, _ = args
    special = [0, 1, min_size - 1, min_size, min_size + 1, max_size - 1, max_size, max_size + 1]
    size = draw(st.one_of(st.sampled_from(special), st.integers(0, 6000)))
    data = draw(
        st.one_of(
            st.binary(min_size=size, max_size=size),
            st.randoms(use_true_random=False).map(lambda r: r.randbytes(size)),
        )
    )
    gear = draw(
        st.one_of(
            st.just(canonical_gear()),
            st.binary(min_size=2048, max_size=2048),
            st.randoms(use_true_random=False).map(lambda r: r.randbytes(2048)),
        )
    )
    return data, gear, args


@SETTINGS
@given(cases(), st.booleans())
def test_fallback_agrees_with_native(
    case: tuple[bytes, bytes, tuple[int, int, int, int]], eof: bool
) -> None:
    data, gear, args = case
    expected = native.cuts(data, gear, *args, eof)
    assert fallback.cuts(data, gear, *args, eof) == expected
    assert fallback.cut(data, gear, *args) == native.cut(data, gear, *args)
    if eof and data:
        assert expected[-1] == len(data)
    sizes = [b - a for a, b in zip([0, *expected], expected, strict=False)]
    min_size, _, max_size, _ = args
    assert all(min_size <= size <= max_size for size in sizes[:-1])
    assert all(0 < size <= max_size for size in sizes)


def test_fallback_accepts_buffers() -> None:
    data = bytes(range(256)) * 40
    gear = canonical_gear()
    expected = native.cuts(data, gear, 64, 256, 1024, 1, True)
    for buf in (bytearray(data), memoryview(data), memoryview(data).cast("I")):
        assert fallback.cuts(buf, gear, 64, 256, 1024, 1, True) == expected
