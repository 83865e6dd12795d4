"""Tiering: which data packs climb a center's storage-class ladder, and what that means.

Data in, decisions out, with the reason for each move. Concepts:

- *coldness*: storage classes ordered from instantly readable and dear (STANDARD, 0) to
  thaw-first and cheap (DEEP_ARCHIVE, 4); the IA classes and INTELLIGENT_TIERING share rung 1.
- *ladder*: the :class:`~drvault.policy.model.TierStep` rungs of a center's
  :class:`~drvault.policy.model.Storage`; a data pack whose age (``now - mtime``) has reached a
  rung's ``after`` belongs in that rung's class. Packs only ever move colder: never back to a
  warmer class, never sideways.
- *minimum duration*: a class is billed for at least :data:`MIN_DAYS` days, so leaving it
  earlier costs as if the pack had stayed (:func:`ladder_problems` warns about such ladders).
- *lifecycle rules*: the same ladder as an S3 bucket lifecycle configuration, for operators who
  would rather let S3 do the moves (:func:`lifecycle_rules`).
- *thaw latency*: the worst-case time a RestoreObject takes per class and tier, for RTO
  estimates (:func:`thaw_seconds`).

Metadata (index, trees, snapshots) never tiers: only ``data/`` packs are planned here, so
listing and planning a restore never wait for a thaw. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drvault.durations import format_duration
from drvault.policy.model import ARCHIVE_CLASSES, THAW_TIERS, Storage, TierStep
from drvault.transport.base import ObjectInfo

DAY = 86400.0

COLDNESS: dict[str, int] = {
    "STANDARD": 0,
    "STANDARD_IA": 1,
    "ONEZONE_IA": 1,
    "INTELLIGENT_TIERING": 1,
    "GLACIER_IR": 2,
    "GLACIER": 3,
    "DEEP_ARCHIVE": 4,
}
MIN_DAYS: dict[str, int] = {  # minimum billed storage duration; classes not listed have none
    "STANDARD_IA": 30,
    "ONEZONE_IA": 30,
    "GLACIER_IR": 90,
    "GLACIER": 90,
    "DEEP_ARCHIVE": 180,
}
IA_CLASSES = ("STANDARD_IA", "ONEZONE_IA")
IA_MIN_LIFECYCLE_DAYS = 30  # S3 lifecycle: a transition to an IA class needs Days >= 30
DEFAULT_CLASS = "STANDARD"  # what a pack without a reported class is taken to be

_HOUR = 3600.0
# Worst-case restore latency by class and tier (AWS documentation; see DR-POLICY-NOTES s. 5).
_THAW_LATENCY: dict[str, dict[str, float]] = {
    "GLACIER": {"Expedited": 5 * 60.0, "Standard": 5 * _HOUR, "Bulk": 12 * _HOUR},
    "DEEP_ARCHIVE": {"Standard": 12 * _HOUR, "Bulk": 48 * _HOUR},
}


@dataclass(frozen=True)
class Move:
    """One data pack to move to a colder class, with why."""

    name: str
    size: int
    age: float  # seconds since the pack landed
    from_class: str
    to_class: str
    reason: str  # e.g. "41d old: after 7d -> GLACIER"


@dataclass(frozen=True)
class TierPlan:
    """The moves for one repository at one center. ``len(moves) + stay + unknown_age`` is the
    number of packs planned; ``bytes_by_class`` is where the bytes sit once the moves are done
    (every pack counted, packs of unknown age in their current class)."""

    moves: tuple[Move, ...]
    stay: int  # packs of known age that stay where they are
    unknown_age: int  # packs without an mtime: never moved
    bytes_by_class: dict[str, int]


def target_class(ladder: Sequence[TierStep], age: float) -> TierStep | None:
    """The rung a pack of ``age`` seconds belongs on: the one with the largest ``after`` that is
    at most ``age`` (the later rung on a tie); ``None`` before the first rung."""
    best: TierStep | None = None
    for step in ladder:
        if step.after <= age and (best is None or step.after >= best.after):
            best = step
    return best


def plan_moves(storage: Storage, packs: Iterable[ObjectInfo], now: float) -> TierPlan:
    """Which of ``packs`` (the data packs of one repository at one S3 center) move, and where.

    A pack moves to its rung's class (see :func:`target_class`) only if that class is strictly
    colder than its current one (a pack reported without a class counts as STANDARD). A pack
    whose current class drvault does not rank (say REDUCED_REDUNDANCY) is left alone, as is a
    pack without an mtime (counted in ``unknown_age``). A pack already in a rung's class is
    aged from its move there plus that rung's ``after``."""
    moves: list[Move] = []
    stay = unknown_age = 0
    bytes_by_class: dict[str, int] = {}
    for pack in packs:
        current = pack.storage_class or DEFAULT_CLASS
        final = current
        if pack.mtime is None:
            unknown_age += 1
        else:
            # A move rewrites the object, so mtime is the time of the last move. A pack sitting
            # in a rung's class got there no earlier than that rung's age: add it back (never
            # ages a pack beyond its true age, so no rung is reached early).
            age = now - pack.mtime + _reached(storage.ladder, current)
            step = target_class(storage.ladder, age)
            if (
                step is not None
                and current in COLDNESS
                and step.to in COLDNESS
                and COLDNESS[step.to] > COLDNESS[current]
            ):
                reason = f"{format_duration(age)} old: after {format_duration(step.after)} -> "
                moves.append(Move(pack.name, pack.size, age, current, step.to, reason + step.to))
                final = step.to
            else:
                stay += 1
        bytes_by_class[final] = bytes_by_class.get(final, 0) + pack.size
    return TierPlan(tuple(moves), stay, unknown_age, bytes_by_class)


def _reached(ladder: Sequence[TierStep], storage_class: str) -> float:
    """The age at which the ladder moves packs into ``storage_class`` (0 if it never does)."""
    return max((step.after for step in ladder if step.to == storage_class), default=0.0)


def _rung(step: TierStep) -> str:
    return f"{step.to} after {format_duration(step.after)}"


def ladder_problems(storage: Storage) -> list[str]:
    """What is wrong with ``storage``'s ladder, one message per problem, prefixed ``error: ``
    (the ladder cannot work as written) or ``warning: `` (it works but costs or surprises).

    Errors: an unknown class; a negative ``after``; rungs not strictly ascending in ``after``
    or in coldness (starting from the landing class, if one is set); an archive class for
    metadata. Warnings: a rung leaving the previous class (or the landing class) before its
    minimum billed duration; an IA rung younger than the 30 days an S3 lifecycle rule needs
    (drvault's own moves can do it, :func:`lifecycle_rules` cannot); Expedited thaws
    configured for a ladder that reaches DEEP_ARCHIVE (Standard is used there)."""
    problems: list[str] = []
    if storage.metadata_class in ARCHIVE_CLASSES:
        problems.append(
            f"error: metadata_class {storage.metadata_class} is an archive class: metadata "
            "must stay readable without a thaw"
        )
    if storage.thaw_tier not in THAW_TIERS:
        problems.append(f"error: unknown thaw tier {storage.thaw_tier!r}")
    for step in storage.ladder:
        if step.to not in COLDNESS:
            problems.append(f"error: {_rung(step)}: unknown storage class {step.to!r}")
        if step.after < 0:
            problems.append(f"error: {_rung(step)}: a negative age")
    landing = storage.data_class
    previous: TierStep | None = None
    for step in storage.ladder:
        if previous is not None and step.after <= previous.after:
            problems.append(
                f"error: {_rung(previous)} then {_rung(step)}: rungs must ascend in age (after)"
            )
        before = previous.to if previous is not None else landing
        label = _rung(previous) if previous is not None else f"{landing} (landing class)"
        if before is not None and before in COLDNESS and step.to in COLDNESS:
            if COLDNESS[step.to] <= COLDNESS[before]:
                problems.append(
                    f"error: {label} then {_rung(step)}: {step.to} is not colder than "
                    f"{before} (packs only move to colder classes)"
                )
            else:
                held = step.after - (previous.after if previous is not None else 0.0)
                minimum = MIN_DAYS.get(before, 0)
                if held < minimum * DAY:
                    problems.append(
                        f"warning: {label} then {_rung(step)}: "
                        f"{before} is billed for at least {minimum}d"
                    )
        if step.to in IA_CLASSES and step.after < IA_MIN_LIFECYCLE_DAYS * DAY:
            problems.append(
                f"warning: {_rung(step)}: an S3 lifecycle rule cannot move to {step.to} before "
                f"{IA_MIN_LIFECYCLE_DAYS}d (drvault's own tiering can)"
            )
        previous = step
    if storage.thaw_tier == "Expedited" and any(s.to == "DEEP_ARCHIVE" for s in storage.ladder):
        problems.append(
            "warning: thaw tier Expedited is not offered for DEEP_ARCHIVE: "
            "those packs thaw at Standard (up to 12h)"
        )
    return problems


def _rule_id(prefix: str) -> str:
    return "drvault-" + prefix.rstrip("/").replace("/", "-") if prefix else "drvault"


def _transition_days(ladder: Sequence[TierStep]) -> list[int]:
    """Whole days of each rung, after checking S3's rules for transitions in one rule."""
    days = [math.ceil(step.after / DAY) for step in ladder]
    previous: tuple[TierStep, int] | None = None
    for step, day in zip(ladder, days, strict=True):
        where = f"lifecycle transition to {step.to} after {day}d"
        if step.to not in COLDNESS or step.to == DEFAULT_CLASS:
            raise ValueError(f"{where}: S3 cannot transition to {step.to!r}")
        if day < 0:
            raise ValueError(f"{where}: days must not be negative")
        if step.to in IA_CLASSES and day < IA_MIN_LIFECYCLE_DAYS:
            raise ValueError(
                f"{where}: S3 needs at least {IA_MIN_LIFECYCLE_DAYS} days before a transition "
                f"to {step.to}; use a later rung or let drvault move the packs itself"
            )
        if previous is not None:
            before, before_day = previous
            if day <= before_day or COLDNESS[step.to] <= COLDNESS[before.to]:
                raise ValueError(
                    f"{where}: transitions must ascend in whole days and coldness "
                    f"(previous: {before.to} after {before_day}d)"
                )
            if before.to in IA_CLASSES and day < before_day + IA_MIN_LIFECYCLE_DAYS:
                raise ValueError(
                    f"{where}: S3 needs at least {IA_MIN_LIFECYCLE_DAYS} days in "
                    f"{before.to} (after {before_day}d) before the next transition"
                )
        previous = (step, day)
    return days


def lifecycle_rules(storage: Storage, prefixes: Sequence[str]) -> dict[str, object]:
    """The S3 bucket lifecycle configuration equivalent to ``storage``'s ladder for the
    repositories at ``prefixes`` (each ending in ``/``, e.g. ``dr/core-ledger/``): the
    ``LifecycleConfiguration`` argument of boto3's ``put_bucket_lifecycle_configuration``.

    One rule per prefix, filtered to ``<prefix>data/`` so metadata never transitions; days are
    the rung's ``after`` rounded up to whole days. :class:`ValueError` for a ladder S3 would
    refuse (an IA transition before 30 days, rungs out of order, ...) or a malformed prefix.
    An empty ladder gives no rules (remove the bucket's lifecycle configuration instead: S3
    refuses an empty one)."""
    if not storage.ladder:
        return {"Rules": []}
    days = _transition_days(storage.ladder)
    transitions = [
        {"Days": day, "StorageClass": step.to}
        for step, day in zip(storage.ladder, days, strict=True)
    ]
    rules: list[dict[str, object]] = []
    seen: dict[str, str] = {}
    for prefix in prefixes:
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"lifecycle prefix {prefix!r} must end with '/'")
        rule_id = _rule_id(prefix)
        if len(rule_id) > 255:
            raise ValueError(f"lifecycle rule ID for {prefix!r} is longer than 255 characters")
        if rule_id in seen:
            raise ValueError(f"prefixes {seen[rule_id]!r} and {prefix!r} both give ID {rule_id}")
        seen[rule_id] = prefix
        rules.append(
            {
                "ID": rule_id,
                "Status": "Enabled",
                "Filter": {"Prefix": f"{prefix}data/"},
                "Transitions": [dict(t) for t in transitions],
            }
        )
    return {"Rules": rules}


def effective_tier(storage_class: str, tier: str) -> str:
    """The restore tier S3 can actually use: DEEP_ARCHIVE offers no Expedited, so Standard."""
    if tier not in THAW_TIERS:
        raise ValueError(f"unknown thaw tier {tier!r} (known: {', '.join(THAW_TIERS)})")
    if storage_class == "DEEP_ARCHIVE" and tier == "Expedited":
        return "Standard"
    return tier


def thaw_seconds(storage_class: str, tier: str) -> float:
    """Worst-case seconds until a RestoreObject of ``tier`` makes a ``storage_class`` object
    readable: GLACIER Expedited 5 min, Standard 5 h, Bulk 12 h; DEEP_ARCHIVE Standard 12 h,
    Bulk 48 h (Expedited is not offered: Standard's 12 h); 0 for any class readable at once."""
    latencies = _THAW_LATENCY.get(storage_class)
    tier = effective_tier(storage_class, tier)
    return 0.0 if latencies is None else latencies[tier]
