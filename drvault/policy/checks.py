"""A compliance check's outcome: pass, warn, fail or n/a, and the reason in one line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["pass", "warn", "fail", "n/a"]
_RANK: dict[Verdict, int] = {"n/a": 0, "pass": 1, "warn": 2, "fail": 3}


@dataclass(frozen=True)
class Check:
    id: str  # stable name, e.g. "rpo", "remote-distance"
    verdict: Verdict
    reason: str
    center: str | None = None  # the center the check is about, if one


def worst(checks: Iterable[Check]) -> Verdict:
    """The overall verdict: fail over warn over pass; n/a only when nothing applies."""
    verdict: Verdict = "n/a"
    for c in checks:
        if _RANK[c.verdict] > _RANK[verdict]:
            verdict = c.verdict
    return verdict
