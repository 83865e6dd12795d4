"""The ``drill`` check with an explicit clock: the newest passed drill of the set at any center
must be at most ``drill_max_age_days`` old; core data fails without one, other data warns; a
failed newest drill after a passed one warns; drills after ``now`` do not count."""

from __future__ import annotations

from dataclasses import replace

from drvault.policy.checks import Check
from drvault.policy.compliance import drill_check, evaluate
from drvault.policy.model import Thresholds
from drvault.policy.state import CopyState, DrillSeen, SetState
from tests.policy.model_factory import HOUR, config, ledger

NOW = 1_800_000_000.0
DAY = 86400.0


def seen(center: str, age_days: float, passed: bool = True, total: float = 600.0) -> DrillSeen:
    return DrillSeen(center, NOW - age_days * DAY, passed, total, 4 * HOUR)


def state(*drills: DrillSeen) -> SetState:
    copies = []
    for center in ("gz-prod", "gz-dr2", "zixing-djh"):
        mine = tuple(sorted((d for d in drills if d.center == center), key=lambda d: d.finished))
        copies.append(
            CopyState(
                center,
                reachable=True,
                exists=True,
                snapshot_times=(NOW - HOUR,),
                drills=mine,
            )
        )
    return SetState("core-ledger", tuple(copies))


def check(*drills: DrillSeen, now: float = NOW, **set_kw: object) -> Check:
    return drill_check(config(), ledger(**set_kw), state(*drills), now)


def test_a_recent_passed_drill_passes_and_names_its_center_and_age() -> None:
    result = check(seen("gz-prod", 200), seen("zixing-djh", 12))
    assert result.verdict == "pass"
    assert result.center == "zixing-djh"
    assert "12d ago" in result.reason and "took 10m" in result.reason


def test_no_drill_fails_for_core_data_and_warns_for_other_data() -> None:
    none = check()
    assert none.verdict == "fail" and "no restore drill recorded" in none.reason
    assert "core" in none.reason
    assert check(classification="important").verdict == "warn"
    assert check(classification="general").verdict == "warn"


def test_a_drill_older_than_the_maximum_age_fails_for_core_and_warns_otherwise() -> None:
    old = seen("gz-dr2", 400)
    assert check(old).verdict == "fail"
    assert "400d old" in check(old).reason
    assert check(old, classification="important").verdict == "warn"
    # The same drill judged 40 days earlier was fresh.
    assert check(old, now=NOW - 40 * DAY).verdict == "pass"


def test_the_maximum_age_comes_from_the_thresholds() -> None:
    strict = config(thresholds=Thresholds(drill_max_age_days=90))
    assert drill_check(strict, ledger(), state(seen("gz-dr2", 100)), NOW).verdict == "fail"
    assert drill_check(strict, ledger(), state(seen("gz-dr2", 80)), NOW).verdict == "pass"


def test_a_failed_newest_drill_after_a_passed_one_warns() -> None:
    result = check(seen("gz-dr2", 30), seen("zixing-djh", 2, passed=False))
    assert result.verdict == "warn"
    assert result.center == "zixing-djh"
    assert "failed" in result.reason and "gz-dr2" in result.reason


def test_only_failed_drills_count_as_none() -> None:
    result = check(seen("gz-dr2", 3, passed=False))
    assert result.verdict == "fail"
    assert "no restore drill passed" in result.reason


def test_drills_after_now_do_not_count() -> None:
    assert check(seen("gz-dr2", -1)).verdict == "fail"  # recorded a day after "now"


def test_a_passed_drill_slower_than_the_sets_rto_warns() -> None:
    slow = seen("gz-dr2", 5, total=6 * HOUR)
    result = check(slow)
    assert result.verdict == "warn" and "over the set's RTO of 4h" in result.reason


def test_evaluate_carries_the_drill_check() -> None:
    checks = evaluate(config(), ledger(), state(seen("gz-dr2", 1)), NOW).checks
    assert [c.verdict for c in checks if c.id == "drill"] == ["pass"]
    old = evaluate(config(), ledger(), state(seen("gz-dr2", 500)), NOW)
    assert [c.verdict for c in old.checks if c.id == "drill"] == ["fail"]
    assert not old.compliant


def test_drills_of_every_center_are_gathered_oldest_first() -> None:
    st = state(seen("zixing-djh", 1), seen("gz-prod", 9), seen("gz-dr2", 5))
    assert [d.center for d in st.drills] == ["gz-prod", "gz-dr2", "zixing-djh"]
    assert replace(st.drills[0], record={"x": 1}) == st.drills[0]  # the record is not compared
