"""The GB/T 20988 data-backup element estimate: each level's rule, and the reason it stops."""

from __future__ import annotations

from drvault.policy.level import estimate, max_gap
from tests.policy.model_factory import PROD, REMOTE, SAME

DAY = 86400.0
NOW = 1_800_000_000.0


def every(step: float, days: float = 40) -> list[float]:
    n = int(days * DAY / step)
    return [NOW - i * step for i in range(n)][::-1]


def test_max_gap_counts_the_stretch_to_now() -> None:
    assert max_gap([0.0, 10.0, 30.0], 0.0, 35.0) == 20.0
    assert max_gap([0.0, 10.0], 0.0, 50.0) == 40.0
    assert max_gap([], 0.0, 50.0) == 50.0
    assert max_gap([-100.0, 20.0], 0.0, 30.0) == 120.0  # the point before the window opens it


def test_level_zero_without_points() -> None:
    assert estimate([(PROD, [])], NOW, 30).level == 0


def test_weekly_points_only_at_production_are_level_zero() -> None:
    result = estimate([(PROD, every(6 * DAY))], NOW, 30)
    assert result.level == 0 and "other than production" in result.limiting


def test_weekly_offsite_copy_is_level_two() -> None:
    result = estimate([(PROD, every(DAY)), (REMOTE, every(6 * DAY))], NOW, 30)
    assert result.level == 2 and "12h" in result.limiting


def test_twice_daily_same_city_copy_is_level_four() -> None:
    result = estimate([(PROD, every(3600)), (SAME, every(6 * 3600))], NOW, 30)
    assert result.level == 4 and "remote" in result.limiting


def test_remote_within_thirty_minutes_is_level_five_never_six() -> None:
    result = estimate([(PROD, every(600)), (SAME, every(600)), (REMOTE, every(900))], NOW, 30)
    assert result.level == 5 and "zero data loss" in result.limiting


def test_one_lapse_in_the_window_limits_the_level() -> None:
    times = [t for t in every(900) if not NOW - 10 * DAY < t < NOW - 10 * DAY + 7200]
    result = estimate([(PROD, every(600)), (SAME, every(600)), (REMOTE, times)], NOW, 30)
    assert result.level == 4 and "fell 2h" in result.limiting
