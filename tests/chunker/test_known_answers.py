"""selftest(): passes on a good build, fails loudly on wrong cut points or tables."""

from __future__ import annotations

import pytest

from drvault.chunker import SelfTestError, backend, fallback, gear, selftest
from drvault.chunker import _fastcdc as native
from drvault.chunker import known_answers as selftest_module


@pytest.mark.parametrize("impl", [native, fallback], ids=["native", "python"])
def test_selftest_passes(impl: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "cut", impl.cut)  # type: ignore[attr-defined]
    monkeypatch.setattr(backend, "cuts", impl.cuts)  # type: ignore[attr-defined]
    selftest()


def test_selftest_vector_shape() -> None:
    data = selftest_module.selftest_data()
    assert len(data) == 5632
    assert data[1536:4096] == bytes(2560)


def test_selftest_detects_wrong_cut_points(monkeypatch: pytest.MonkeyPatch) -> None:
    def off_by_one(*args: object) -> list[int]:
        offsets = native.cuts(*args)  # type: ignore[arg-type]
        return [offsets[0] + 2, *offsets[1:]]

    monkeypatch.setattr(backend, "cuts", off_by_one)
    with pytest.raises(SelfTestError, match="cut points at level 0"):
        selftest()


def test_selftest_detects_wrong_gear(monkeypatch: pytest.MonkeyPatch) -> None:
    good = gear.canonical_gear()
    monkeypatch.setattr(selftest_module, "canonical_gear", lambda: good[:-8] + bytes(8))
    with pytest.raises(SelfTestError, match="canonical gear"):
        selftest()
