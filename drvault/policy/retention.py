"""The retention engine: which snapshots a :class:`Retention` policy keeps, and why.

Data in, decisions out (kopia's "kept as daily #3"). Concepts:

- :class:`Item`: one snapshot as the engine sees it (id, time, tags).
- :class:`Decision`: keep or forget one item, with every reason that keeps it.
- *count rules*: ``last N`` keeps the N newest; ``hourly``/``daily``/``weekly``/``monthly``/
  ``yearly N`` walk the snapshots newest first and keep one whenever its *bucket* (local hour,
  calendar day, ISO week, month, year in the time zone ``tz``) differs from the bucket of the
  one that rule kept before, until N buckets are kept (restic's ``forget``). So ``daily 7``
  keeps the newest snapshot of each of the 7 most recent days that *have* snapshots.
- *window rules*: ``within D`` keeps everything at or after ``now - D``; ``tags`` keeps any
  snapshot carrying one of the listed tags.
- *safety rules*: the newest snapshot is never forgotten; a snapshot from the future (more than
  :data:`SKEW` seconds after ``now``) is kept and takes no part in the count rules, so a bad
  clock cannot push real snapshots out of their buckets or out of ``last N``.

An empty policy keeps everything. Pure: no clock, no I/O; ``now`` and ``tz`` are explicit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from drvault.durations import format_duration
from drvault.policy.model import Retention

SKEW = 60.0  # seconds after ``now`` still treated as the present

NO_POLICY = "no retention policy"
NO_RULE = "matches no rule"
NEWEST = "newest (never forgotten)"
FUTURE = "in the future (clock skew?)"


@dataclass(frozen=True)
class Item:
    """A snapshot as the engine sees it."""

    id: bytes  # snapshot id (32 bytes)
    time: float  # unix seconds (UTC epoch)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """Keep or forget one item. A kept item lists every rule that keeps it, in the order of
    :func:`describe`, then the safety rules; a forgotten one has the single reason
    ``matches no rule``."""

    item: Item
    keep: bool
    reasons: tuple[str, ...]


Bucket = Callable[[datetime], tuple[tuple[int, ...], str]]  # (comparable key, label)


def _hour(t: datetime) -> tuple[tuple[int, ...], str]:
    return (t.year, t.month, t.day, t.hour), f"{t:%Y-%m-%d} {t.hour:02d}h"


def _day(t: datetime) -> tuple[tuple[int, ...], str]:
    return (t.year, t.month, t.day), f"{t:%Y-%m-%d}"


def _week(t: datetime) -> tuple[tuple[int, ...], str]:
    year, week, _ = t.isocalendar()
    return (year, week), f"{year:04d}-W{week:02d}"


def _month(t: datetime) -> tuple[tuple[int, ...], str]:
    return (t.year, t.month), f"{t:%Y-%m}"


def _year(t: datetime) -> tuple[tuple[int, ...], str]:
    return (t.year,), f"{t.year:04d}"


_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_BUCKETS: tuple[tuple[str, Bucket], ...] = (
    ("hourly", _hour),
    ("daily", _day),
    ("weekly", _week),
    ("monthly", _month),
    ("yearly", _year),
)


def is_empty(policy: Retention) -> bool:
    """True when the policy has no rule at all (it then keeps everything)."""
    counts = (getattr(policy, name) for name in _COUNTS)
    return all(c is None for c in counts) and policy.within is None and not policy.tags


def describe(policy: Retention) -> str:
    """One line such as ``last 3, daily 7, weekly 4, within 30d, tags [a, b]``."""
    if is_empty(policy):
        return "keep everything"
    counts = ((name, getattr(policy, name)) for name in _COUNTS)
    parts = [f"{name} {n}" for name, n in counts if n is not None]
    if policy.within is not None:
        parts.append(f"within {format_duration(policy.within)}")
    if policy.tags:
        parts.append(f"tags [{', '.join(policy.tags)}]")
    return ", ".join(parts)


def decide(
    policy: Retention, items: Sequence[Item], now: float, tz: tzinfo | None = None
) -> list[Decision]:
    """A decision for every item, newest first (equal times in ascending id order).

    ``tz`` is the zone whose hours, days, weeks, months and years form the buckets; None means
    the machine's local time zone.
    """
    _check(policy)
    ordered = sorted(items, key=lambda item: (-item.time, item.id))
    if not ordered:
        return []
    reasons: list[list[str]] = [[] for _ in ordered]
    future = [item.time > now + SKEW for item in ordered]
    present = [i for i, f in enumerate(future) if not f]  # the count rules walk only these

    if is_empty(policy):
        for r in reasons:
            r.append(NO_POLICY)
    else:
        for rank, i in enumerate(present[: policy.last or 0], start=1):
            reasons[i].append(f"last #{rank}")
        _apply_buckets(policy, ordered, present, reasons, tz)
        for i, item in enumerate(ordered):
            if policy.within is not None and item.time >= now - policy.within:
                reasons[i].append(f"within {format_duration(policy.within)}")
            reasons[i].extend(f"tag {tag}" for tag in policy.tags if tag in item.tags)

    for i, is_future in enumerate(future):
        if is_future:
            reasons[i].append(FUTURE)
    if present and not reasons[present[0]]:
        reasons[present[0]].append(NEWEST)
    return [
        Decision(item, bool(r), tuple(r) if r else (NO_RULE,))
        for item, r in zip(ordered, reasons, strict=True)
    ]


def _apply_buckets(
    policy: Retention,
    ordered: Sequence[Item],
    present: Sequence[int],
    reasons: list[list[str]],
    tz: tzinfo | None,
) -> None:
    """Run each bucket rule over the present items, newest first, appending its reasons."""
    rules = [(name, bucket, getattr(policy, name)) for name, bucket in _BUCKETS]
    rules = [(name, bucket, n) for name, bucket, n in rules if n]
    if not rules:
        return
    local = {i: datetime.fromtimestamp(ordered[i].time, tz) for i in present}
    for name, bucket, count in rules:
        kept = 0
        previous: tuple[int, ...] | None = None
        for i in present:
            key, label = bucket(local[i])
            if key == previous:
                continue
            kept += 1
            previous = key
            reasons[i].append(f"{name} #{kept} ({label})")
            if kept == count:
                break


def _check(policy: Retention) -> None:
    for name in _COUNTS:
        value = getattr(policy, name)
        if value is not None and value < 0:
            raise ValueError(f"retention {name} {value} is negative")
    if policy.within is not None and policy.within < 0:
        raise ValueError(f"retention within {policy.within} is negative")
