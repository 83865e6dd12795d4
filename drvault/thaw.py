"""Thawing: make archived objects readable before a restore reads them.

An object in an archive class (GLACIER, DEEP_ARCHIVE) must be restored (S3 RestoreObject) to a
temporary readable copy first; that takes minutes to days depending on the class and the tier.
:func:`ensure_readable` asks for each archived object once, then either reports what is still
thawing (:class:`~drvault.errors.ThawPendingError`, so the operator reruns later) or waits,
polling only the objects not yet readable.

Requests are idempotent across runs: an object whose restore is already *ongoing* is never
asked for again, so an interrupted restore resumes without paying for a second thaw. A thawed
copy whose time ran out while others were still thawing is asked for again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from drvault.durations import format_duration
from drvault.errors import ThawPendingError, UsageError
from drvault.policy.model import THAW_TIERS
from drvault.policy.tiering import effective_tier
from drvault.repository.fanout import fan_out
from drvault.transport.base import ColdStorage, ObjectState

GIB = 1 << 30


@dataclass
class ThawStatus:
    """Where the thaw of one set of objects stands (a fresh copy is handed to ``progress``)."""

    total: int = 0  # objects asked about
    archived: int = 0  # of those, in an archive class
    ready: int = 0  # readable now (not archived, or thaw done)
    thawing: int = 0  # a restore is in progress
    requested: int = 0  # RestoreObject requests this run issued
    bytes_archived: int = 0
    waited: float = 0.0  # seconds spent waiting


class _Thaw:
    """The state of one :func:`ensure_readable` call: the latest HEAD of every object."""

    def __init__(self, cold: ColdStorage, days: int, tier: str, parallel: int) -> None:
        self.cold = cold
        self.days = days
        self.tier = tier
        self.parallel = parallel
        self.states: dict[str, ObjectState] = {}
        self.requested = 0

    def _visit(self, name: str) -> tuple[ObjectState, bool]:
        """HEAD one object and, if it is archived with no restore under way, ask for one."""
        state = self.cold.object_state(name)
        if state.archived and state.restore == "none":
            tier = effective_tier(state.storage_class, self.tier)
            return state, self.cold.thaw(name, self.days, tier)
        return state, False

    def round(self, names: Sequence[str]) -> None:
        """HEAD ``names`` in parallel, requesting thaws as needed; the first error propagates
        (a missing object raises :class:`~drvault.errors.NotFoundError`)."""
        for name, result, error in fan_out(self._visit, names, self.parallel):
            if error is not None:
                raise error
            assert result is not None
            self.states[name], issued = result
            self.requested += issued

    def pending(self) -> list[str]:
        return [name for name, state in self.states.items() if not state.readable()]

    def status(self, waited: float) -> ThawStatus:
        archived = [s for s in self.states.values() if s.archived]
        ready = sum(1 for s in self.states.values() if s.readable())
        return ThawStatus(
            total=len(self.states),
            archived=len(archived),
            ready=ready,
            thawing=len(self.states) - ready,  # only archived objects can be unreadable
            requested=self.requested,
            bytes_archived=sum(s.size for s in archived),
            waited=waited,
        )

    def pending_error(self, status: ThawStatus, waited: str = "") -> ThawPendingError:
        gib = status.bytes_archived / GIB
        return ThawPendingError(
            f"{status.thawing} of {status.archived} archived packs ({gib:.1f} GiB) are "
            f"{'still thawing after waiting ' + waited if waited else 'thawing'} "
            f"(tier {self.tier}, requested {status.requested} now); rerun the restore later"
        )


def ensure_readable(
    cold: ColdStorage,
    names: Sequence[str],
    *,
    days: int,
    tier: str,
    wait: bool,
    poll: float = 60.0,
    timeout: float | None = None,
    progress: Callable[[ThawStatus], None] | None = None,
    parallel: int = 8,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ThawStatus:
    """Make every object in ``names`` readable, thawing archived ones for ``days`` days at
    ``tier`` (Expedited falls back to Standard for DEEP_ARCHIVE, which does not offer it).

    HEADs every object (``parallel`` at a time) and requests a thaw for each archived object
    with no restore under way. Returns the status once all are readable. Otherwise, without
    ``wait`` raises :class:`~drvault.errors.ThawPendingError`; with ``wait`` re-HEADs the
    unreadable ones every ``poll`` seconds (re-requesting any whose thawed copy expired) until
    all are readable, or raises :class:`~drvault.errors.ThawPendingError` once ``timeout``
    seconds have passed since the first round. ``progress`` gets a copy of the status after
    the first round and after each polling round; ``waited`` counts from the first round's end.
    Duplicate names are asked about once."""
    if tier not in THAW_TIERS:
        raise UsageError(f"unknown thaw tier {tier!r} (known: {', '.join(THAW_TIERS)})")
    if days < 1:
        raise UsageError(f"thaw days must be at least 1, not {days}")
    if wait and poll <= 0:
        raise UsageError(f"thaw poll interval must be positive, not {poll}")
    thaw = _Thaw(cold, days, tier, parallel)
    thaw.round(list(dict.fromkeys(names)))
    status = thaw.status(0.0)
    if progress is not None:
        progress(replace(status))
    if status.thawing == 0:
        return status
    if not wait:
        raise thaw.pending_error(status)
    start = clock()
    deadline = None if timeout is None else start + timeout
    while status.thawing:
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                raise thaw.pending_error(status, format_duration(clock() - start))
            sleep(min(poll, left))
        else:
            sleep(poll)
        thaw.round(thaw.pending())
        status = thaw.status(clock() - start)
        if progress is not None:
            progress(replace(status))
    return status
