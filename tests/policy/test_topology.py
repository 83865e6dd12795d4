"""The two-sites-three-centers rules over declared centers: each rule fails when broken."""

from __future__ import annotations

from dataclasses import replace

from drvault.policy.checks import Check, worst
from drvault.policy.declared import declared_checks
from drvault.policy.geo import distance_km, great_circle_km
from drvault.policy.model import Site, Thresholds
from drvault.policy.topology import topology_checks
from tests.policy.model_factory import PROD, REMOTE, SAME, VAULT, config, ledger


def by_id(checks: list[Check], check_id: str) -> list[Check]:
    return [c for c in checks if c.id == check_id]


def test_great_circle_matches_known_distances() -> None:
    # Guangzhou - Zixing (Dongjiang Lake) about 316 km; Shaoguan - Zixing about 134 km
    assert 300 < great_circle_km(23.13, 113.26, 25.97, 113.40) < 330
    assert 120 < great_circle_km(24.81, 113.60, 25.97, 113.40) < 145
    assert distance_km(PROD, PROD) == 0.0


def test_stated_distance_counts_only_towards_production() -> None:
    same = replace(SAME, site=Site("Guangzhou", "Guangdong"), distance_km=35.0)
    assert distance_km(same, PROD) == 35.0
    assert distance_km(PROD, same) == 35.0
    assert distance_km(same, REMOTE) is None


def test_three_centers_in_two_cities_pass() -> None:
    cfg = config()
    checks = topology_checks(cfg, ledger(), [PROD, SAME, REMOTE])
    assert worst(checks) == "warn"  # 316 km remote is under the 500 km warning threshold
    assert by_id(checks, "centers")[0].verdict == "pass"
    assert by_id(checks, "cities")[0].verdict == "pass"
    assert by_id(checks, "same-city")[0].verdict == "pass"
    remote = by_id(checks, "remote")[0]
    assert remote.verdict == "warn" and "under 500 km" in remote.reason
    assert by_id(checks, "bank-tier")[0].verdict == "pass"


def test_missing_center_fails_count_cities_and_remote() -> None:
    checks = topology_checks(config(), ledger(), [PROD, SAME])
    assert by_id(checks, "centers")[0].verdict == "fail"
    assert by_id(checks, "cities")[0].verdict == "fail"
    assert by_id(checks, "remote")[0].verdict == "fail"
    assert "large cross-province bank" in by_id(checks, "bank-tier")[0].reason
    assert by_id(checks, "bank-tier")[0].verdict == "fail"


def test_remote_too_close_or_same_province_fails() -> None:
    near = replace(REMOTE, site=Site("Foshan", "Guangdong", lat=23.02, lon=113.12))
    checks = topology_checks(config(PROD, SAME, near), ledger(), [PROD, SAME, near])
    reason = by_id(checks, "remote")[0].reason
    assert by_id(checks, "remote")[0].verdict == "fail"
    assert "under 300 km" in reason and "same province" in reason


def test_remote_sharing_hazard_zone_with_production_fails() -> None:
    prod = replace(PROD, hazard_zone="nanling")
    checks = topology_checks(config(prod, SAME, REMOTE), ledger(), [prod, SAME, REMOTE])
    assert "same hazard zone" in by_id(checks, "remote")[0].reason


def test_same_city_beyond_limit_fails() -> None:
    far = replace(SAME, site=Site("Shenzhen", "Guangdong", lat=22.54, lon=114.06))
    checks = topology_checks(config(PROD, far, REMOTE), ledger(), [PROD, far, REMOTE])
    same = by_id(checks, "same-city")[0]
    assert same.verdict == "fail" and "beyond 100 km" in same.reason


def test_dr_centers_in_one_hazard_zone_warn() -> None:
    cfg = config(PROD, SAME, REMOTE, VAULT)
    checks = topology_checks(cfg, ledger(), [PROD, SAME, REMOTE, VAULT])
    independence = by_id(checks, "independence")
    assert [c.verdict for c in independence] == ["warn"]
    assert "zixing-djh and shaoguan-sdv share hazard zone nanling" in independence[0].reason


def test_core_data_outside_mainland_fails() -> None:
    hk = replace(REMOTE, site=Site("Hong Kong", "HK", jurisdiction="HK", lat=22.3, lon=114.2))
    checks = topology_checks(config(PROD, SAME, hk), ledger(), [PROD, SAME, hk])
    juris = by_id(checks, "jurisdiction")[0]
    assert juris.verdict == "fail" and "zixing-djh (HK)" in juris.reason
    general = ledger(classification="general")
    assert by_id(topology_checks(config(PROD, SAME, hk), general, [PROD, SAME, hk]),
                 "jurisdiction")[0].verdict == "n/a"  # fmt: skip


def test_thresholds_are_configurable() -> None:
    cfg = config(thresholds=Thresholds(remote_km_min=400, remote_km_warn=400))
    checks = topology_checks(cfg, ledger(), [PROD, SAME, REMOTE])
    assert by_id(checks, "remote")[0].verdict == "fail"


def test_declared_checks_judge_suite_and_rpo() -> None:
    intl = ledger(repository=replace(ledger().repository, suite="intl"))
    checks = declared_checks(config(), intl)
    assert by_id(checks, "gm-suite")[0].verdict == "fail"
    slow = ledger(copies=(replace(ledger().copies[0], rpo=7200.0),
                          replace(ledger().copies[1], rpo=7200.0)))  # fmt: skip
    assert by_id(declared_checks(config(), slow), "business-rpo")[0].verdict == "fail"
    assert by_id(declared_checks(config(), ledger()), "business-rpo")[0].verdict == "pass"
