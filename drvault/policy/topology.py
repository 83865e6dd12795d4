"""Where copies live: the "two sites, three centers" rules over a set of centers.

The same rules judge the declared topology (``policy check``: the centers the configuration
says hold the set) and the observed one (``status``: the centers found holding a snapshot). The
thresholds come from ``Thresholds``; their defaults follow the CBRC data-center guideline
(2010, Art. 3: same-city "一般距离数十公里", remote "一般距离在数百公里以上"; Art. 7: which
banks need a remote center; Art. 20: sites must not share a risk).
"""

from __future__ import annotations

from itertools import combinations

from drvault.policy.checks import Check
from drvault.policy.geo import distance_km
from drvault.policy.model import MAINLAND, BackupSet, Center, Config


def _km(value: float | None) -> str:
    return "unknown distance" if value is None else f"{value:.0f} km"


def topology_checks(config: Config, backup_set: BackupSet, holders: list[Center]) -> list[Check]:
    """Checks of the centers in ``holders`` (production included when it holds the set)."""
    t = config.thresholds
    production = config.center(backup_set.production)
    out: list[Check] = []
    ids = ", ".join(c.id for c in holders) or "none"
    out.append(
        Check(
            "centers",
            "pass" if len(holders) >= t.min_centers else "fail",
            f"{len(holders)} center(s) hold a copy ({ids}); at least {t.min_centers} required",
        )
    )
    cities = sorted({c.site.city for c in holders})
    out.append(
        Check(
            "cities",
            "pass" if len(cities) >= t.min_cities else "fail",
            f"{len(cities)} cit{'y' if len(cities) == 1 else 'ies'} ({', '.join(cities) or '-'});"
            f" at least {t.min_cities} required",
        )
    )
    out.append(_same_city(config, production, holders))
    out.append(_remote(config, production, holders))
    out.extend(_independence(config, holders))
    out.append(_jurisdiction(config, backup_set, holders))
    tier = config.profile.bank_tier
    if tier == "large_cross_province":
        has = any(c.role == "remote_dr" for c in holders)
        out.append(
            Check(
                "bank-tier",
                "pass" if has else "fail",
                "CBRC 2010 Art. 7: a large cross-province bank needs a remote DR center"
                + (" (present)" if has else "; none holds a copy"),
            )
        )
    elif tier == "other":
        same = any(c.role == "same_city_dr" for c in holders)
        offsite = any(c.site.city != production.site.city for c in holders)
        ok = same and offsite
        out.append(
            Check(
                "bank-tier",
                "pass" if ok else "fail",
                "CBRC 2010 Art. 7: a same-city DR center and an off-site data copy"
                + (" (present)" if ok else f" (same-city: {same}, off-site: {offsite})"),
            )
        )
    return out


def _same_city(config: Config, production: Center, holders: list[Center]) -> Check:
    limit = config.thresholds.same_city_km_max
    candidates = [c for c in holders if c.role == "same_city_dr"]
    if not candidates:
        return Check("same-city", "fail", "no same-city DR center holds a copy")
    best: Check | None = None
    for c in candidates:
        km = distance_km(c, production)
        if km is None:
            check = Check("same-city", "warn", "distance to production unknown", c.id)
        elif km <= limit:
            return Check("same-city", "pass", f"{_km(km)} from {production.id}", c.id)
        else:
            check = Check(
                "same-city",
                "fail",
                f"{_km(km)} from {production.id}, beyond {limit:.0f} km",
                c.id,
            )
        if best is None or check.verdict == "warn":
            best = check
    assert best is not None
    return best


def _remote(config: Config, production: Center, holders: list[Center]) -> Check:
    t = config.thresholds
    candidates = [c for c in holders if c.role in ("remote_dr", "archive_vault")]
    if not candidates:
        return Check("remote", "fail", "no remote DR center holds a copy")
    found: list[Check] = []
    for c in candidates:
        km = distance_km(c, production)
        problems: list[str] = []
        verdict = "pass"
        if km is None:
            verdict, problems = "warn", ["distance to production unknown"]
        elif km < t.remote_km_min:
            verdict = "fail"
            problems.append(f"{_km(km)} is under {t.remote_km_min:.0f} km")
        elif km < t.remote_km_warn:
            verdict = "warn"
            problems.append(f"{_km(km)} is under {t.remote_km_warn:.0f} km")
        if t.require_distinct_province_for_remote and c.site.province == production.site.province:
            verdict = "fail"
            problems.append(f"same province as production ({c.site.province})")
        if c.hazard_zone is not None and c.hazard_zone == production.hazard_zone:
            verdict = "fail"
            problems.append(f"same hazard zone as production ({c.hazard_zone})")
        reason = f"({c.site.city}) " + (
            "; ".join(problems) if problems else f"{_km(km)} from {production.id}"
        )
        found.append(Check("remote", verdict, reason, c.id))  # type: ignore[arg-type]
    for verdict in ("pass", "warn"):
        for check in found:
            if check.verdict == verdict:
                return check
    return found[0]


def _independence(config: Config, holders: list[Center]) -> list[Check]:
    dr = [c for c in holders if c.role != "production"]
    out: list[Check] = []
    for a, b in combinations(dr, 2):
        if a.hazard_zone is not None and a.hazard_zone == b.hazard_zone:
            out.append(
                Check(
                    "independence",
                    "warn",
                    f"{a.id} and {b.id} share hazard zone {a.hazard_zone}: "
                    "one disaster can take both",
                )
            )
            continue
        offsite = a.role != "same_city_dr" and b.role != "same_city_dr"
        km = distance_km(a, b) if offsite else None
        if km is not None and km < config.thresholds.dr_independence_km:
            out.append(
                Check(
                    "independence",
                    "warn",
                    f"{a.id} and {b.id} are only {_km(km)} apart "
                    f"(under {config.thresholds.dr_independence_km:.0f} km)",
                )
            )
    if not out and len(dr) >= 2:
        out.append(Check("independence", "pass", "no two DR centers share a hazard zone"))
    return out


def _jurisdiction(config: Config, backup_set: BackupSet, holders: list[Center]) -> Check:
    if backup_set.classification not in config.profile.mainland_only_for:
        return Check(
            "jurisdiction", "n/a", f"{backup_set.classification} data may be held anywhere"
        )
    outside = [c for c in holders if c.site.jurisdiction != MAINLAND]
    if outside:
        names = ", ".join(f"{c.id} ({c.site.jurisdiction})" for c in outside)
        return Check(
            "jurisdiction",
            "fail",
            f"{backup_set.classification} data must stay in {MAINLAND}: held at {names}",
        )
    return Check("jurisdiction", "pass", f"every copy is in {MAINLAND}")
