"""ensure_readable against a fake cold store that models thaw time on a fake clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pytest

from drvault.errors import NotFoundError, PermanentError, ThawPendingError, UsageError
from drvault.thaw import ThawStatus, ensure_readable
from drvault.transport.base import ColdStorage, ObjectState

HOUR = 3600.0
DAY = 86400.0
MIB = 1 << 20


class FakeClock:
    """Time moves only when ``sleep`` is called; events fire when their time is passed."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.events: list[tuple[float, Callable[[], None]]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds
        for event in [e for e in self.events if e[0] <= self.now]:
            self.events.remove(event)
            event[1]()


@dataclass
class FakeObject:
    size: int
    storage_class: str
    restore: Literal["none", "ongoing", "done"] = "none"
    ready_at: float = 0.0
    expires_at: float = 0.0


class FakeCold:
    """A cold store whose thaws take ``thaw_time`` (per class) of the fake clock and whose
    restored copies last ``days`` days; records every HEAD and every thaw request."""

    def __init__(
        self,
        clock: FakeClock,
        objects: dict[str, tuple[int, str]],
        thaw_time: dict[str, float] | None = None,
        head_delay: float = 0.0,
    ) -> None:
        self.clock = clock
        self.objects = {name: FakeObject(size, cls) for name, (size, cls) in objects.items()}
        self.thaw_time = thaw_time or {"GLACIER": 3 * HOUR, "DEEP_ARCHIVE": 12 * HOUR}
        self.head_delay = head_delay
        self.requests: list[tuple[str, int, str]] = []
        self.heads: list[str] = []
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0

    def _settle(self, obj: FakeObject) -> None:
        now = self.clock.now
        if obj.restore == "ongoing" and now >= obj.ready_at:
            obj.restore = "done"
        if obj.restore == "done" and now >= obj.expires_at:
            obj.restore = "none"

    def expire(self, name: str) -> None:
        """The thawed copy of ``name`` ran out (or its restore was lost)."""
        self.objects[name].restore = "none"

    def object_state(self, name: str) -> ObjectState:
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.heads.append(name)
        try:
            if self.head_delay:
                time.sleep(self.head_delay)
            if name not in self.objects:
                raise NotFoundError(f"{name}: not found")
            obj = self.objects[name]
            self._settle(obj)
            archived = obj.storage_class in ("GLACIER", "DEEP_ARCHIVE")
            return ObjectState(
                name=name,
                size=obj.size,
                storage_class=obj.storage_class,
                archived=archived,
                restore=obj.restore if archived else "none",
                restore_expiry=obj.expires_at if obj.restore == "done" else None,
                lock_mode=None,
                retain_until=None,
                legal_hold=False,
                mtime=None,
            )
        finally:
            with self.lock:
                self.running -= 1

    def thaw(self, name: str, days: int, tier: str) -> bool:
        with self.lock:
            obj = self.objects[name]
            if obj.storage_class not in ("GLACIER", "DEEP_ARCHIVE"):
                raise PermanentError(f"{name}: InvalidObjectState (not archived)")
            if obj.storage_class == "DEEP_ARCHIVE" and tier == "Expedited":
                raise PermanentError(f"{name}: Expedited is not offered for DEEP_ARCHIVE")
            self._settle(obj)
            if obj.restore != "none":
                return False
            self.requests.append((name, days, tier))
            obj.restore = "ongoing"
            obj.ready_at = self.clock.now + self.thaw_time[obj.storage_class]
            obj.expires_at = obj.ready_at + days * DAY
            return True

    def set_storage_class(self, name: str, storage_class: str) -> None:
        self.objects[name].storage_class = storage_class

    def object_lock(self) -> tuple[str, int | None] | None:
        return None

    def extend_retention(self, name: str, until: float) -> bool:
        return False

    def purge(self, name: str) -> None:
        del self.objects[name]


def mixed(clock: FakeClock, thaw_time: dict[str, float] | None = None) -> FakeCold:
    """3 GLACIER, 2 DEEP_ARCHIVE and 3 STANDARD packs of 1 GiB each."""
    objects = {f"data/g{i}": (1 << 30, "GLACIER") for i in range(3)}
    objects |= {f"data/d{i}": (1 << 30, "DEEP_ARCHIVE") for i in range(2)}
    objects |= {f"data/s{i}": (1 << 30, "STANDARD") for i in range(3)}
    return FakeCold(clock, objects, thaw_time)


def run(
    cold: FakeCold,
    clock: FakeClock,
    *,
    wait: bool,
    names: list[str] | None = None,
    days: int = 7,
    tier: str = "Standard",
    poll: float = 60.0,
    timeout: float | None = None,
    progress: Callable[[ThawStatus], None] | None = None,
    parallel: int = 8,
) -> ThawStatus:
    return ensure_readable(
        cold,
        list(cold.objects) if names is None else names,
        days=days,
        tier=tier,
        wait=wait,
        poll=poll,
        timeout=timeout,
        progress=progress,
        parallel=parallel,
        clock=clock,
        sleep=clock.sleep,
    )


ARCHIVED = {"data/g0", "data/g1", "data/g2", "data/d0", "data/d1"}


def test_the_fake_is_a_cold_storage() -> None:
    assert isinstance(mixed(FakeClock()), ColdStorage)


def test_interrupted_restore_resumes_without_duplicate_requests() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    with pytest.raises(ThawPendingError) as first:
        run(cold, clock, wait=False)
    assert str(first.value) == (
        "5 of 5 archived packs (5.0 GiB) are thawing (tier Standard, requested 5 now); "
        "rerun the restore later"
    )
    assert first.value.exit_code == 16
    clock.now += HOUR  # the operator comes back an hour later, this time willing to wait
    status = run(cold, clock, wait=True, poll=600.0)
    assert status == ThawStatus(
        total=8,
        archived=5,
        ready=8,
        thawing=0,
        requested=0,
        bytes_archived=5 << 30,
        waited=11 * HOUR,
    )
    assert sorted(n for n, _, _ in cold.requests) == sorted(ARCHIVED)  # each exactly once
    assert all(days == 7 and tier == "Standard" for _, days, tier in cold.requests)


def test_a_third_run_after_the_thaw_requests_nothing_and_does_not_wait() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    run(cold, clock, wait=True, poll=HOUR)
    sleeps = len(clock.sleeps)
    status = run(cold, clock, wait=False)
    assert (status.ready, status.thawing, status.requested) == (8, 0, 0)
    assert len(cold.requests) == 5 and len(clock.sleeps) == sleeps


def test_restore_in_progress_from_another_run_is_not_requested_again() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    cold.thaw("data/g0", 7, "Bulk")  # someone else's earlier request
    status = run(cold, clock, wait=True, poll=HOUR)
    assert status.requested == 4 and status.ready == 8
    assert [n for n, _, _ in cold.requests].count("data/g0") == 1


def test_non_archived_objects_are_never_thawed_or_polled() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    run(cold, clock, wait=True, poll=HOUR)
    assert not {n for n, _, _ in cold.requests} - ARCHIVED
    for name in ("data/s0", "data/s1", "data/s2"):
        assert cold.heads.count(name) == 1  # the first round only
    assert cold.heads.count("data/g0") == 4  # first round, then 1h, 2h, 3h
    assert cold.heads.count("data/d0") == 13  # first round, then hourly until 12h


def test_all_readable_returns_at_once_and_reports_once() -> None:
    clock = FakeClock()
    cold = FakeCold(clock, {"data/a": (10, "STANDARD"), "data/b": (20, "GLACIER_IR")})
    seen: list[ThawStatus] = []
    status = run(cold, clock, wait=False, progress=seen.append)
    assert status == ThawStatus(total=2, ready=2)
    assert seen == [status] and clock.sleeps == [] and cold.requests == []


def test_duplicate_names_are_asked_about_once() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    status = run(cold, clock, wait=True, poll=HOUR, names=["data/g0", "data/g0", "data/s0"])
    assert (status.total, status.requested) == (2, 1)
    assert cold.requests == [("data/g0", 7, "Standard")]


def test_a_restore_that_expired_between_rounds_is_requested_again() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    clock.events.append((30 * 60.0, lambda: cold.expire("data/d0")))  # lost while pending
    status = run(cold, clock, wait=True, poll=HOUR)
    assert status.requested == 6 and status.ready == 8
    assert [n for n, _, _ in cold.requests].count("data/d0") == 2
    assert status.waited == 13 * HOUR  # re-requested at 1h, ready 12h later


def test_a_restore_that_expired_before_the_rerun_is_requested_again() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    with pytest.raises(ThawPendingError):
        run(cold, clock, wait=False, days=1)
    clock.now += 3 * DAY  # GLACIER copies expired after 3h + 1d, DEEP_ARCHIVE after 12h + 1d
    with pytest.raises(ThawPendingError, match="requested 5 now"):
        run(cold, clock, wait=False, days=1)
    assert len(cold.requests) == 10


def test_timeout_raises_with_the_counts() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    seen: list[ThawStatus] = []
    with pytest.raises(ThawPendingError) as caught:
        run(cold, clock, wait=True, poll=HOUR, timeout=5.5 * HOUR, progress=seen.append)
    assert str(caught.value) == (
        "2 of 5 archived packs (5.0 GiB) are still thawing after waiting 5h30m "
        "(tier Standard, requested 5 now); rerun the restore later"
    )
    assert clock.sleeps == [HOUR] * 5 + [HOUR / 2]  # the last sleep ends at the deadline
    assert seen[-1].thawing == 2 and seen[-1].ready == 6 and seen[-1].waited == 5.5 * HOUR
    assert len(cold.requests) == 5


def test_zero_timeout_gives_up_after_the_first_round() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    with pytest.raises(ThawPendingError, match=r"5 of 5 archived packs .* after waiting 0s"):
        run(cold, clock, wait=True, timeout=0.0)
    assert clock.sleeps == [] and len(cold.requests) == 5


def test_progress_after_every_round() -> None:
    clock = FakeClock()
    cold = mixed(clock, {"GLACIER": 1.5 * HOUR, "DEEP_ARCHIVE": 2.5 * HOUR})
    seen: list[ThawStatus] = []
    final = run(cold, clock, wait=True, poll=HOUR, progress=seen.append)
    assert [(s.ready, s.thawing, s.requested, s.waited) for s in seen] == [
        (3, 5, 5, 0.0),
        (3, 5, 5, HOUR),
        (6, 2, 5, 2 * HOUR),
        (8, 0, 5, 3 * HOUR),
    ]
    assert final == seen[-1]
    assert all(s.total == 8 and s.archived == 5 and s.bytes_archived == 5 << 30 for s in seen)


def test_progress_gets_copies() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    seen: list[ThawStatus] = []
    run(cold, clock, wait=True, poll=HOUR, progress=seen.append)
    assert len({id(s) for s in seen}) == len(seen)


def test_deep_archive_thaws_at_standard_when_expedited_is_asked() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    with pytest.raises(ThawPendingError, match="tier Expedited"):
        run(cold, clock, wait=False, tier="Expedited", days=2)
    tiers = {name: (days, tier) for name, days, tier in cold.requests}
    assert tiers["data/g0"] == (2, "Expedited") and tiers["data/d0"] == (2, "Standard")


@pytest.mark.parametrize("parallel", [1, 4])
def test_heads_run_in_parallel_up_to_the_limit(parallel: int) -> None:
    clock = FakeClock()
    objects = {f"data/p{i:02d}": (MIB, "STANDARD") for i in range(16)}
    cold = FakeCold(clock, objects, head_delay=0.05)
    status = run(cold, clock, wait=False, parallel=parallel)
    assert status.ready == 16 and len(cold.heads) == 16
    if parallel == 1:
        assert cold.max_running == 1
    else:
        assert 1 < cold.max_running <= parallel


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_missing_object_propagates(parallel: int) -> None:
    clock = FakeClock()
    cold = mixed(clock)
    names = [*cold.objects, "data/gone"]
    with pytest.raises(NotFoundError, match="data/gone"):
        run(cold, clock, wait=True, names=names, parallel=parallel)


@pytest.mark.parametrize("parallel", [1, 4])
def test_keyboard_interrupt_in_a_head_is_not_swallowed(parallel: int) -> None:
    clock = FakeClock()
    cold = mixed(clock)

    def interrupted(name: str) -> ObjectState:
        raise KeyboardInterrupt

    cold.object_state = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        run(cold, clock, wait=True, parallel=parallel)


def test_keyboard_interrupt_while_waiting_is_not_swallowed() -> None:
    clock = FakeClock()
    cold = mixed(clock)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_readable(
            cold, list(cold.objects), days=7, tier="Standard", wait=True, sleep=interrupted
        )
    assert len(cold.requests) == 5  # the requests stand: a rerun resumes from them


def test_bad_arguments_are_usage_errors() -> None:
    clock = FakeClock()
    cold = mixed(clock)
    with pytest.raises(UsageError, match="unknown thaw tier"):
        run(cold, clock, wait=False, tier="Instant")
    with pytest.raises(UsageError, match="at least 1"):
        run(cold, clock, wait=False, days=0)
    with pytest.raises(UsageError, match="poll"):
        run(cold, clock, wait=True, poll=0.0)
    assert cold.heads == []
