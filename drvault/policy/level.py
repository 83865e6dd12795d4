"""An estimate of the GB/T 20988 level of the data-backup element (数据备份系统).

drvault sees only one of the standard's seven elements, so this is the level of that element,
never a claim about the whole system. Each level's data rule must hold over the look-back
window (default 30 days), counting the gap from the newest point to now:

- 1-2: a restorable point at least every 7 days, and a copy at a center other than production;
- 3-4: a point at least daily at a DR center, and at least two transfers a day (gap <= 12 h);
- 5:   level 3-4 holds and a remote center's copy is never more than 30 minutes behind
       (the annex example's RPO of 0-30 min for level 5);
- 6:   zero data loss needs synchronous replication, which an asynchronous tool cannot prove:
       never claimed here.

A deduplicated snapshot is a complete restorable point ("synthetic full"); whether an assessor
counts it as 完全数据备份 is theirs to decide, and the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drvault.durations import format_duration
from drvault.policy.model import Center

DAY = 86400.0


@dataclass(frozen=True)
class LevelEstimate:
    level: int  # 0: not even level 1
    limiting: str  # why it is not one higher
    window_days: float  # the window actually judged (shorter while history is young)


def max_gap(times: Sequence[float], start: float, now: float) -> float:
    """The longest time in [start, now] that a center's newest point was old, i.e. the largest
    distance between consecutive points (the last one at or before ``start`` opens the window;
    without one the window opens at ``start``), including the stretch from the newest to now."""
    ordered = sorted(t for t in times if t <= now)
    before = [t for t in ordered if t <= start]
    prev = before[-1] if before else start
    gap = 0.0
    for t in ordered[len(before) :]:
        gap = max(gap, t - prev)
        prev = t
    return max(gap, now - prev)


def estimate(
    copies: Sequence[tuple[Center, Sequence[float]]], now: float, window_days: float
) -> LevelEstimate:
    """``copies``: each holding center with its snapshot times (production included)."""
    all_times = sorted(t for _, times in copies for t in times)
    if not all_times:
        return LevelEstimate(0, "no restorable point at any center", 0.0)
    start = max(now - window_days * DAY, all_times[0])
    span = (now - start) / DAY
    dr = [(c, t) for c, t in copies if c.role != "production" and t]

    def gap_of(times: Sequence[float]) -> float:
        return max_gap(times, start, now)

    production_gap = min((gap_of(t) for _, t in copies if t), default=float("inf"))
    if production_gap > 7 * DAY:
        return LevelEstimate(
            0, f"a gap of {format_duration(production_gap)} between points (> 7d)", span
        )
    if not dr:
        return LevelEstimate(0, "no copy at a center other than production", span)
    best_dr = min(dr, key=lambda item: gap_of(item[1]))
    dr_gap = gap_of(best_dr[1])
    if dr_gap > 12 * 3600:
        return LevelEstimate(
            2,
            f"best DR copy ({best_dr[0].id}) has a gap of {format_duration(dr_gap)}: "
            "level 3 needs a point daily and a transfer at least every 12h",
            span,
        )
    remote = [(c, t) for c, t in dr if c.role in ("remote_dr", "archive_vault")]
    if not remote:
        return LevelEstimate(4, "no remote DR copy: level 5 needs a remote copy within 30m", span)
    best_remote = min(remote, key=lambda item: gap_of(item[1]))
    remote_gap = gap_of(best_remote[1])
    if remote_gap > 1800:
        return LevelEstimate(
            4,
            f"remote copy ({best_remote[0].id}) fell {format_duration(remote_gap)} behind: "
            "level 5 needs it within 30m throughout",
            span,
        )
    return LevelEstimate(
        5, "level 6 needs zero data loss (synchronous replication), beyond an async copy", span
    )
