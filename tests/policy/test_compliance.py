"""Compliance from observed state with an explicit clock: RPO age turns a set from pass to fail
and back; a center that is unreachable or lacks the set fails; the suite is read from the copy."""

from __future__ import annotations

from drvault.policy.compliance import evaluate, required_level
from drvault.policy.model import Profile
from drvault.policy.state import CopyState, DrillSeen, SetState
from tests.policy.model_factory import HOUR, config, ledger

NOW = 1_800_000_000.0
# A core set needs a passed restore drill within a year (tests/policy/test_drill_check.py).
DRILLED = (DrillSeen("zixing-djh", NOW - 30 * 86400, True, 600.0, 4 * HOUR),)


def copy(
    center: str,
    *ages_h: float,
    suite: str = "gm",
    rid: str = "ab" * 16,
    drills: tuple[DrillSeen, ...] = (),
) -> CopyState:
    return CopyState(
        center,
        reachable=True,
        exists=True,
        repository_id=rid,
        suite=suite,
        cipher="sm4-gcm",
        snapshot_times=tuple(sorted(NOW - a * HOUR for a in ages_h)),
        drills=drills,
    )


def state(*copies: CopyState) -> SetState:
    return SetState("core-ledger", copies)


def verdicts(result: object, check_id: str) -> dict[str | None, str]:
    return {c.center: c.verdict for c in result.checks if c.id == check_id}  # type: ignore[attr-defined]


def healthy() -> SetState:
    return state(copy("gz-prod", 0.1), copy("gz-dr2", 0.2), copy("zixing-djh", 1.0, drills=DRILLED))


def test_fresh_copies_comply() -> None:
    result = evaluate(config(), ledger(), healthy(), NOW)
    assert result.compliant, [c for c in result.checks if c.verdict == "fail"]
    assert verdicts(result, "rpo") == {"gz-prod": "pass", "gz-dr2": "pass", "zixing-djh": "pass"}


def test_clock_moving_past_rpo_fails_then_a_new_copy_passes() -> None:
    later = NOW + 1.5 * HOUR  # remote copy is now 2.5 h old against its 2 h RPO
    result = evaluate(config(), ledger(), healthy(), later)
    assert not result.compliant
    assert verdicts(result, "rpo")["zixing-djh"] == "fail"
    refreshed = state(
        copy("gz-prod", -1.4), copy("gz-dr2", -1.4), copy("zixing-djh", -1.4, drills=DRILLED)
    )
    assert evaluate(config(), ledger(), refreshed, later).compliant


def test_copy_counts_only_where_a_snapshot_was_found() -> None:
    empty_remote = CopyState(
        "zixing-djh", reachable=True, exists=True, suite="gm", repository_id="ab" * 16
    )
    result = evaluate(
        config(), ledger(), state(copy("gz-prod", 0.1), copy("gz-dr2", 0.1), empty_remote), NOW
    )
    assert not result.compliant
    assert [c.verdict for c in result.checks if c.id == "centers"] == ["fail"]
    assert verdicts(result, "rpo")["zixing-djh"] == "fail"


def test_unreachable_center_fails_with_its_error() -> None:
    down = CopyState("zixing-djh", reachable=False, error="link lost")
    result = evaluate(
        config(), ledger(), state(copy("gz-prod", 0.1), copy("gz-dr2", 0.1), down), NOW
    )
    reach = [c for c in result.checks if c.id == "reachable"]
    assert reach[0].verdict == "fail" and "link lost" in reach[0].reason


def test_suite_is_read_from_the_copies() -> None:
    st = state(copy("gz-prod", 0.1, suite="intl"), copy("gz-dr2", 0.1), copy("zixing-djh", 0.1))
    result = evaluate(config(), ledger(), st, NOW)
    gm = next(c for c in result.checks if c.id == "gm-suite")
    assert gm.verdict == "fail" and "gz-prod" in gm.reason


def test_different_repositories_fail() -> None:
    st = state(copy("gz-prod", 0.1), copy("gz-dr2", 0.1, rid="cd" * 16), copy("zixing-djh", 0.1))
    assert verdicts(evaluate(config(), ledger(), st, NOW), "same-repository") == {None: "fail"}


def test_business_rpo_needs_one_fresh_dr_copy() -> None:
    st = state(copy("gz-prod", 0.1), copy("gz-dr2", 0.9), copy("zixing-djh", 0.9))
    result = evaluate(config(), ledger(), st, NOW)
    assert verdicts(result, "business-rpo") == {None: "fail"}


def test_required_level_follows_the_bank_tier() -> None:
    assert required_level(config(), ledger()) == 5
    other = config(profile=Profile(sector="bank", bank_tier="other"))
    assert required_level(other, ledger()) == 4
    assert required_level(config(profile=Profile()), ledger()) is None
    assert required_level(config(), ledger(target_dr_level=3)) == 3


# ----------------------------------------------------------------- immutability and RTO


def _with(c: CopyState, **kw: object) -> CopyState:
    from dataclasses import replace

    return replace(c, **kw)  # type: ignore[arg-type]


def _centers(**remote: object) -> object:
    from dataclasses import replace

    from tests.policy.model_factory import PROD, REMOTE, SAME

    return config(PROD, SAME, replace(REMOTE, **remote))  # type: ignore[arg-type]


def test_immutable_copy_is_read_from_the_objects_not_the_config() -> None:
    from drvault.policy.model import Immutability

    declared = _centers(immutability=Immutability("compliance", 30))
    locked = state(
        copy("gz-prod", 0.1),
        copy("gz-dr2", 0.2),
        _with(copy("zixing-djh", 1.0), lock="COMPLIANCE", lock_until=NOW + 30 * 86400),
    )
    result = evaluate(declared, ledger(), locked, NOW)  # type: ignore[arg-type]
    assert verdicts(result, "immutable") == {"zixing-djh": "pass"}
    assert verdicts(result, "immutable-copy") == {None: "pass"}
    # Declared, but the objects carry no lock: a failure at that center.
    bare = evaluate(declared, ledger(), healthy(), NOW)  # type: ignore[arg-type]
    assert verdicts(bare, "immutable") == {"zixing-djh": "fail"}
    assert not bare.compliant
    # Partly locked objects are not an immutable copy either.
    partial = state(
        copy("gz-prod", 0.1),
        copy("gz-dr2", 0.2),
        _with(copy("zixing-djh", 1.0), lock="partial", lock_detail="3 of 9 objects locked"),
    )
    result = evaluate(declared, ledger(), partial, NOW)  # type: ignore[arg-type]
    assert verdicts(result, "immutable") == {"zixing-djh": "fail"}
    assert "3 of 9" in next(c.reason for c in result.checks if c.id == "immutable")


def test_governance_only_and_no_lock_are_warnings() -> None:
    governance = state(
        copy("gz-prod", 0.1),
        copy("gz-dr2", 0.2),
        _with(copy("zixing-djh", 1.0), lock="GOVERNANCE", lock_until=NOW + 86400),
    )
    result = evaluate(config(), ledger(), governance, NOW)
    assert verdicts(result, "immutable-copy") == {None: "warn"}
    assert verdicts(evaluate(config(), ledger(), healthy(), NOW), "immutable-copy") == {
        None: "warn"
    }


def test_rto_counts_the_thaw_of_the_coldest_class() -> None:
    glacier = (("GLACIER", 5 << 30), ("STANDARD", 1 << 30))
    cold = state(
        copy("gz-prod", 0.1),
        _with(copy("gz-dr2", 0.2), newest_classes=glacier),
        _with(copy("zixing-djh", 1.0), newest_classes=glacier),
    )
    result = evaluate(config(), ledger(rto=4 * HOUR), cold, NOW)
    assert verdicts(result, "rto") == {"gz-prod": "pass", "gz-dr2": "warn", "zixing-djh": "warn"}
    assert verdicts(result, "business-rto") == {None: "fail"}
    assert "GLACIER" in next(
        c.reason for c in result.checks if c.center == "gz-dr2" and c.id == "rto"
    )
    # Standard thaws of GLACIER take up to 5 h: a 6 h RTO is met.
    relaxed = evaluate(config(), ledger(rto=6 * HOUR), cold, NOW)
    assert verdicts(relaxed, "business-rto") == {None: "pass"}
