"""Is a backup set compliant right now? Checks computed from observed state and an explicit now.

Every check says pass / warn / fail / n/a with its reason. The centers that count as holding a
copy are the ones where a snapshot of the set was found, never the ones the configuration
names; the configuration supplies only the rules (RPO per copy, thresholds, classification).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from drvault.durations import format_duration
from drvault.policy.checks import Check, Verdict, worst
from drvault.policy.level import LevelEstimate, estimate
from drvault.policy.model import BackupSet, Config
from drvault.policy.state import CopyState, SetState
from drvault.policy.tiering import thaw_seconds
from drvault.policy.topology import topology_checks
from drvault.progress import human_bytes


@dataclass(frozen=True)
class SetStatus:
    set_id: str
    checks: tuple[Check, ...]
    level: LevelEstimate
    required_level: int | None

    @property
    def verdict(self) -> Verdict:
        return worst(self.checks)

    @property
    def compliant(self) -> bool:
        return self.verdict != "fail"


def required_level(config: Config, backup_set: BackupSet) -> int | None:
    """The set's target, else what CBRC 2010 Art. 7 asks of a bank's important systems."""
    if backup_set.target_dr_level is not None:
        return backup_set.target_dr_level
    if config.profile.sector == "bank" and backup_set.classification in ("core", "important"):
        if config.profile.bank_tier == "large_cross_province":
            return 5
        if config.profile.bank_tier == "other":
            return 4
    return None


def evaluate(config: Config, backup_set: BackupSet, state: SetState, now: float) -> SetStatus:
    checks: list[Check] = []
    holders = []
    for center in config.holders(backup_set):
        copy = state.copy(center.id)
        if copy is not None and copy.snapshot_times:
            holders.append(center)
    checks.extend(_reachability(state))
    checks.extend(topology_checks(config, backup_set, holders))
    checks.extend(_rpo(config, backup_set, state, now))
    checks.extend(_crypto(config, backup_set, state))
    checks.append(_same_repository(state))
    level = estimate(
        [(center, state.copy(center.id).snapshot_times) for center in holders],  # type: ignore[union-attr]
        now,
        config.thresholds.level_window_days,
    )
    required = required_level(config, backup_set)
    if required is not None:
        checks.append(
            Check(
                "dr-level",
                "pass" if level.level >= required else "warn",
                f"data-backup element at level {level.level}, {required} required"
                + ("" if level.level >= required else f": {level.limiting}"),
            )
        )
    checks.append(drill_check(config, backup_set, state, now))
    checks.extend(_immutable(config, backup_set, state))
    checks.extend(_rto(config, backup_set, state))
    return SetStatus(backup_set.id, tuple(checks), level, required)


def drill_check(config: Config, backup_set: BackupSet, state: SetState, now: float) -> Check:
    """Was the set restored from some center, verified end to end, recently enough?

    The newest *passed* drill at any center (a drill passes only when every restored file was
    re-read and matched its snapshot, and it met its RTO if it had one) must be at most
    ``thresholds.drill_max_age_days`` old at ``now`` (CBRC 2010 Art. 34: a drill at least
    yearly; the "0 errors" of 3-2-1-1-0; MLPS level 3 assessors ask for restore-test records).
    Drills recorded after ``now`` do not count, so ``status --at`` judges the past as it was.

    - pass: such a drill exists; the reason names its center, its age and its time;
    - fail for ``core`` sets (DR-POLICY-NOTES section 4: core data requires drill age <= 365 d)
      when there is none, or the newest is too old; for other classifications that is a warn:
      a prompt to drill, not a breach of a rule drvault can cite for them;
    - warn when a recent drill passed but the newest drill failed (whatever failed then may
      still be wrong), or when the passing drill took longer than the set's RTO (a drill by
      URL without ``--rto``, or the RTO was tightened since).
    """
    max_age = config.thresholds.drill_max_age_days * 86400.0
    limit = f"at most {format_duration(max_age)} old"
    required = backup_set.classification == "core"
    missing: Verdict = "fail" if required else "warn"
    if required:
        limit += " for core data"
    drills = [d for d in state.drills if d.finished <= now]
    passed = [d for d in drills if d.passed]
    if not passed:
        if not drills:
            return Check("drill", missing, f"no restore drill recorded ({limit} required)")
        last = drills[-1]
        return Check(
            "drill",
            missing,
            f"no restore drill passed; the newest, {format_duration(now - last.finished)} ago, "
            f"failed ({limit} required)",
            last.center,
        )
    best = passed[-1]
    age = max(0.0, now - best.finished)
    if age > max_age:
        return Check(
            "drill",
            missing,
            f"newest passed restore drill is {format_duration(age)} old ({limit} required)",
            best.center,
        )
    newest = drills[-1]
    if not newest.passed:
        return Check(
            "drill",
            "warn",
            f"newest restore drill, {format_duration(now - newest.finished)} ago, failed; "
            f"the last passed one ({best.center}) is {format_duration(age)} old",
            newest.center,
        )
    took = "" if best.total_seconds is None else f", took {format_duration(best.total_seconds)}"
    if best.total_seconds is not None and best.total_seconds > backup_set.rto:
        return Check(
            "drill",
            "warn",
            f"newest passed restore drill {format_duration(age)} ago{took}: over the set's "
            f"RTO of {format_duration(backup_set.rto)}",
            best.center,
        )
    return Check(
        "drill",
        "pass",
        f"restore drill passed {format_duration(age)} ago{took} (RTO "
        f"{format_duration(backup_set.rto)}; {limit} required)",
        best.center,
    )


def _reachability(state: SetState) -> list[Check]:
    out = []
    for copy in state.copies:
        if not copy.reachable:
            out.append(Check("reachable", "fail", f"unreachable: {copy.error}", copy.center))
        elif not copy.exists:
            reason = copy.error or "no repository of this set there"
            out.append(Check("reachable", "fail", reason, copy.center))
    return out


def _age(copy: CopyState, now: float) -> float | None:
    return None if copy.newest is None else max(0.0, now - copy.newest)


def _rpo(config: Config, backup_set: BackupSet, state: SetState, now: float) -> list[Check]:
    targets = [(backup_set.production, backup_set.rpo)] + [
        (c.center, c.rpo) for c in backup_set.copies
    ]
    out = []
    dr_ages: list[float] = []
    for center_id, rpo in targets:
        copy = state.copy(center_id)
        age = None if copy is None else _age(copy, now)
        if age is None:
            out.append(Check("rpo", "fail", "no snapshot here", center_id))
            continue
        if center_id != backup_set.production:
            dr_ages.append(age)
        verdict = "pass" if age <= rpo else "fail"
        out.append(
            Check(
                "rpo",
                verdict,  # type: ignore[arg-type]
                f"newest snapshot {format_duration(age)} old, RPO {format_duration(rpo)}",
                center_id,
            )
        )
    if backup_set.copies:
        best = min(dr_ages, default=None)
        ok = best is not None and best <= backup_set.rpo
        out.append(
            Check(
                "business-rpo",
                "pass" if ok else "fail",
                (
                    "no DR copy"
                    if best is None
                    else f"freshest DR copy {format_duration(best)} old, "
                    f"set RPO {format_duration(backup_set.rpo)}"
                ),
            )
        )
    return out


def _crypto(config: Config, backup_set: BackupSet, state: SetState) -> list[Check]:
    found = [c for c in state.copies if c.exists]
    out = [
        Check(
            "encryption",
            "pass" if found else "n/a",
            "every copy is encrypted ("
            + ", ".join(f"{c.center}: {c.suite}/{c.cipher}" for c in found)
            + ")"
            if found
            else "no copy found",
        )
    ]
    need_gm = backup_set.classification in config.profile.require_gm_for
    if need_gm:
        wrong = [c.center for c in found if c.suite != "gm"]
        out.append(
            Check(
                "gm-suite",
                "fail" if wrong else "pass",
                f"{backup_set.classification} data requires the gm suite (SM4/SM3)"
                + (f"; not at {', '.join(wrong)}" if wrong else ""),
            )
        )
    elif (config.profile.crypto_level or 0) >= 3 and backup_set.classification == "important":
        wrong = [c.center for c in found if c.suite != "gm"]
        if wrong:
            out.append(
                Check(
                    "gm-suite",
                    "warn",
                    "密评 level 3 asks for SM4 storage confidentiality; "
                    f"intl suite at {', '.join(wrong)}",
                )
            )
    return out


def _same_repository(state: SetState) -> Check:
    ids = {c.repository_id for c in state.copies if c.exists}
    if len(ids) > 1:
        return Check(
            "same-repository",
            "fail",
            "centers hold different repositories: "
            + ", ".join(f"{c.center}: {(c.repository_id or '?')[:16]}" for c in state.copies),
        )
    return Check("same-repository", "pass" if ids else "n/a", "every copy is the same repository")


def _until(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return " until " + datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def _immutable(config: Config, backup_set: BackupSet, state: SetState) -> list[Check]:
    """At least one copy whose newest snapshot is under Object Lock, as read from the objects.
    A center configured for Object Lock whose objects are not locked fails; append-only (an
    SFTP or local center) is drvault's own discipline and does not count as immutable."""
    out: list[Check] = []
    modes: list[str] = []
    append_only: list[str] = []
    for center in config.holders(backup_set):
        copy = state.copy(center.id)
        declared = center.immutability
        if declared is not None and declared.mode == "append-only":
            append_only.append(center.id)
        if copy is None or not copy.exists or not copy.snapshot_times:
            continue
        if copy.lock in ("COMPLIANCE", "GOVERNANCE"):
            modes.append(copy.lock)
            out.append(
                Check(
                    "immutable",
                    "pass" if copy.lock == "COMPLIANCE" else "warn",
                    f"newest snapshot under Object Lock {copy.lock}{_until(copy.lock_until)}"
                    + ("" if copy.lock == "COMPLIANCE" else " (bypassable by privileged users)"),
                    center.id,
                )
            )
        elif declared is not None and declared.mode != "append-only":
            found = "no Object Lock on the bucket" if copy.lock is None else copy.lock_detail
            out.append(
                Check(
                    "immutable",
                    "fail",
                    f"configured for {declared.mode.upper()} Object Lock, but {found}",
                    center.id,
                )
            )
    if "COMPLIANCE" in modes:
        out.append(Check("immutable-copy", "pass", "a copy is under COMPLIANCE Object Lock"))
    elif modes:
        out.append(Check("immutable-copy", "warn", "only GOVERNANCE locks (can be bypassed)"))
    else:
        extra = (
            f"; append-only at {', '.join(append_only)} is enforced by drvault only"
            if append_only
            else ""
        )
        out.append(
            Check("immutable-copy", "warn", "no copy is under Object Lock (ransomware)" + extra)
        )
    return out


def _rto(config: Config, backup_set: BackupSet, state: SetState) -> list[Check]:
    """The thaw a restore of the newest snapshot would wait for at each center (the class of
    its coldest data pack, at the center's thaw tier), against the set's RTO."""
    out: list[Check] = []
    dr_ok = False
    for center in config.holders(backup_set):
        copy = state.copy(center.id)
        if copy is None or not copy.exists or not copy.snapshot_times:
            continue
        tier = center.storage.thaw_tier
        waits = {cls: thaw_seconds(cls, tier) for cls, _ in copy.newest_classes}
        worst_wait = max(waits.values(), default=0.0)
        ok = worst_wait <= backup_set.rto
        if ok and center.id != backup_set.production:
            dr_ok = True
        if worst_wait > 0:
            cold = ", ".join(
                f"{cls} {human_bytes(size)}" for cls, size in copy.newest_classes if waits[cls]
            )
            reason = f"thaw of up to {format_duration(worst_wait)} ({cold}, tier {tier})"
        else:
            reason = "no thaw needed"
        out.append(
            Check(
                "rto",
                "pass" if ok else "warn",
                f"{reason}; RTO {format_duration(backup_set.rto)}",
                center.id,
            )
        )
    if backup_set.copies:
        out.append(
            Check(
                "business-rto",
                "pass" if dr_ok else "fail",
                "a DR copy restores without a thaw longer than the RTO"
                if dr_ok
                else "every DR copy needs a thaw longer than the RTO (or none holds a snapshot)",
            )
        )
    return out
