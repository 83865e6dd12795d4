"""The backend wrappers: retry, rate limit, concurrency cap, metrics, and their stack.

Time is a fake clock whose ``sleep`` advances it: nothing here really sleeps.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from drvault.errors import (
    AlreadyExistsError,
    ArchivedError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from drvault.transport import LocalBackend
from drvault.transport.base import Backend, ObjectInfo
from drvault.transport.concurrency import ConcurrencyLimitedBackend
from drvault.transport.metrics import MeteredBackend, Metrics
from drvault.transport.options import TransportOptions
from drvault.transport.ratelimit import RateLimitedBackend, TokenBucket
from drvault.transport.retry import RetryBackend
from drvault.transport.stack import Wrapper, stack, unwrap
from tests.transport.faults import DroppingBackend, FlakyBackend

KIB = 1 << 10
MIB = 1 << 20


class FakeClock:
    """``clock()`` reads it, ``sleep(d)`` advances it by ``d`` and records ``d``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


class Scripted(Wrapper):
    """Raises the given errors from ``get`` and ``put``, in order, then forwards."""

    def __init__(self, inner: Backend, errors: list[Exception]) -> None:
        super().__init__(inner)
        self.errors = errors
        self.calls = 0

    def _next(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._next()
        return self.inner.get(name, offset, length)

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        self._next()
        self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)


class Failing(Wrapper):
    """Every request fails transiently."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.calls = 0

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self.calls += 1
        raise TransientError(f"{name}: timed out")


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(tmp_path / "root")
    backend.create()
    backend.put("obj", b"0123456789")
    return backend


def retrying(inner: Backend, clock: FakeClock, **kwargs: object) -> RetryBackend:
    settings: dict = {"deadline": 60.0, "base": 0.1, "max_delay": 1.0, "rng": lambda: 1.0}
    settings.update(kwargs)
    return RetryBackend(inner, sleep=clock.sleep, clock=clock, **settings)


# ----------------------------------------------------------------------------- retry


def test_backoff_doubles_up_to_the_maximum(local: LocalBackend) -> None:
    clock = FakeClock()
    inner = Scripted(local, [TransientError("timed out") for _ in range(7)])
    seen: list[tuple[str, str, int, float]] = []
    metrics = Metrics()
    backend = retrying(
        inner,
        clock,
        metrics=metrics,
        on_retry=lambda op, name, n, err, delay: seen.append((op, name, n, delay)),
    )
    assert backend.get("obj") == b"0123456789"
    assert inner.calls == 8
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert [(op, name, n) for op, name, n, _ in seen] == [("get", "obj", n) for n in range(1, 8)]
    assert [d for *_, d in seen] == clock.sleeps
    assert metrics.retries == 7


def test_backoff_has_full_jitter_within_bounds(local: LocalBackend) -> None:
    clock = FakeClock()
    rnd = random.Random(5)
    inner = Scripted(local, [TransientError("throttled") for _ in range(40)])
    backend = retrying(inner, clock, deadline=1000.0, rng=rnd.random)
    assert backend.get("obj") == b"0123456789"
    ceilings = [min(1.0, 0.1 * 2**n) for n in range(40)]
    assert all(0 <= d <= c for d, c in zip(clock.sleeps, ceilings, strict=True))
    assert len(set(clock.sleeps)) == 40  # jittered, not a fixed schedule
    assert sum(clock.sleeps[5:]) < 0.75 * 35  # a fixed schedule would sleep 35 s here


def test_deadline_stops_retries_and_says_so(local: LocalBackend) -> None:
    clock = FakeClock()
    inner = Failing(local)
    backend = retrying(inner, clock, deadline=10.0, base=1.0, max_delay=4.0)
    with pytest.raises(TransientError, match=r"gave up after 5 attempt\(s\) in 10\.0 s") as info:
        backend.get("obj")
    assert "obj: timed out" in str(info.value)
    assert isinstance(info.value.__cause__, TransientError)
    assert clock.sleeps == [1.0, 2.0, 4.0, 3.0]  # the last sleep is cut to the deadline
    assert inner.calls == 5
    assert clock.now == 10.0


def test_zero_deadline_means_one_attempt(local: LocalBackend) -> None:
    clock = FakeClock()
    inner = Failing(local)
    with pytest.raises(TransientError, match="gave up after 1 attempt"):
        retrying(inner, clock, deadline=0.0).get("obj")
    assert inner.calls == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("access denied"),
        NotFoundError("obj: not found"),
        AlreadyExistsError("obj: already exists"),
        ArchivedError("obj: in a cold storage class"),
    ],
)
def test_other_errors_are_never_retried(local: LocalBackend, error: Exception) -> None:
    clock = FakeClock()
    metrics = Metrics()
    inner = Scripted(local, [error])
    with pytest.raises(type(error)) as info:
        retrying(inner, clock, metrics=metrics).get("obj")
    assert info.value is error
    assert inner.calls == 1 and clock.sleeps == [] and metrics.retries == 0


def test_exclusive_put_retry_can_meet_its_own_object(local: LocalBackend) -> None:
    """The documented ambiguity: the first attempt stored the lock, its answer was lost."""
    clock = FakeClock()
    flaky = FlakyBackend(local, every=2, ops=("put",), after=True)
    backend = retrying(flaky, clock)
    backend.put("a", b"first put passes")
    with pytest.raises(AlreadyExistsError):
        backend.put("locks/mine", b"owner=me", exclusive=True)
    assert local.get("locks/mine") == b"owner=me"  # the caller reads it back to decide


class Listing(Wrapper):
    """A listing failing after ``fail_after[i]`` entries on its i-th run; ``shuffle``: each run
    in another order."""

    def __init__(self, names: list[str], fail_after: list[int], *, shuffle: bool = False) -> None:
        super().__init__(LocalBackend("/nonexistent"))
        self.names = names
        self.fail_after = fail_after
        self.shuffle = shuffle
        self.runs = 0

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        run = self.runs
        self.runs += 1
        names = list(self.names)
        if self.shuffle:
            random.Random(run).shuffle(names)
        for i, name in enumerate(names):
            if run < len(self.fail_after) and i == self.fail_after[run]:
                raise TransientError("connection reset")
            yield ObjectInfo(name, 1)


def test_list_restarts_without_repeating_names() -> None:
    clock = FakeClock()
    names = [f"data/{i:03d}" for i in range(50)]
    inner = Listing(names, fail_after=[10, 0, 30, 49], shuffle=True)
    backend = retrying(inner, clock)
    got = [info.name for info in backend.list("data/")]
    assert sorted(got) == names  # every name once
    assert inner.runs == 5
    assert len(clock.sleeps) == 4


def test_list_deadline_restarts_on_progress() -> None:
    clock = FakeClock()
    names = [f"n{i}" for i in range(6)]
    inner = Listing(names, fail_after=[1, 2, 3, 4, 5])
    # each failure costs 4 s of backoff: over the deadline in total, never within one streak
    backend = retrying(inner, clock, deadline=5.0, base=4.0, max_delay=4.0)
    assert sorted(i.name for i in backend.list("")) == names
    assert clock.now == 20.0
    stuck = Listing(names, fail_after=[0] * 10)
    with pytest.raises(TransientError, match="gave up"):
        list(retrying(stuck, FakeClock(), deadline=5.0, base=4.0, max_delay=4.0).list(""))


def test_list_abandoned_early_is_fine(local: LocalBackend) -> None:
    backend = retrying(local, FakeClock())
    listing = backend.list("")
    assert next(listing).name == "obj"
    assert isinstance(listing, Generator)
    listing.close()


# ----------------------------------------------------------------------------- rate limit


def test_token_bucket_waits_bytes_over_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1 * MIB, burst=256 * KIB, clock=clock, sleep=clock.sleep)
    bucket.take(256 * KIB)  # the bucket starts full
    assert clock.now == 0.0
    bucket.take(10 * MIB)
    assert clock.now == pytest.approx(10.0)
    assert max(clock.sleeps) <= 64 * KIB / MIB + 1e-9  # in slices, not one 10 s sleep
    clock.now += 100.0  # idle: the bucket refills only up to its burst
    bucket.take(512 * KIB)
    assert clock.now == pytest.approx(110.25)


def test_rate_limited_backend_limits_each_direction(local: LocalBackend) -> None:
    clock = FakeClock()

    def bucket(rate: int) -> TokenBucket:
        return TokenBucket(rate, burst=KIB, clock=clock, sleep=clock.sleep)

    backend = RateLimitedBackend(local, upload=bucket(100 * KIB), download=bucket(400 * KIB))
    data = random.Random(1).randbytes(2 * MIB + KIB)
    backend.put("pack", data)
    assert clock.now == pytest.approx(2 * MIB / (100 * KIB))  # 20.48 s
    start = clock.now
    for _ in range(4):
        assert backend.get("pack") == data
    assert clock.now - start == pytest.approx((4 * len(data) - KIB) / (400 * KIB))
    mark = clock.now
    backend.stat("pack")
    assert sorted(i.name for i in backend.list("")) == ["obj", "pack"]
    assert clock.now == mark  # metadata is free
    up_only = RateLimitedBackend(local, upload=bucket(KIB))
    assert up_only.download is None
    up_only.get("pack")
    assert clock.now == mark


def test_token_bucket_is_thread_safe() -> None:
    """Frozen time: every reservation deepens the debt; a lost update would show as less."""
    sleeps: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            sleeps.append(seconds)

    rate, burst, slice_size = 1000.0, 500, 10
    bucket = TokenBucket(rate, burst, clock=lambda: 0.0, sleep=sleep, slice_size=slice_size)
    threads, per_thread = 16, 2000
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(per_thread // 100):
            bucket.take(100)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = threads * per_thread
    assert len(sleeps) == (total - burst) // slice_size
    assert max(sleeps) == pytest.approx((total - burst) / rate)
    assert sorted(sleeps) == pytest.approx(
        [(i + 1) * slice_size / rate for i in range(len(sleeps))]
    )


# ----------------------------------------------------------------------------- concurrency


class Gated(Wrapper):
    """Requests block on a gate; counts how many are inside at once."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.cond = threading.Condition()
        self.inside = 0
        self.most = 0

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self.cond:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.cond.notify_all()
        try:
            assert self.gate.wait(10)
            return self.inner.get(name, offset, length)
        finally:
            with self.cond:
                self.inside -= 1


def test_concurrency_cap_holds_with_many_threads(local: LocalBackend) -> None:
    gated = Gated(local)
    backend = ConcurrencyLimitedBackend(gated, 3)
    started = threading.Semaphore(0)
    results: list[bytes] = []

    def work() -> None:
        started.release()
        results.append(backend.get("obj"))

    pool = [threading.Thread(target=work) for _ in range(16)]
    for t in pool:
        t.start()
    for _ in pool:
        assert started.acquire(timeout=10)
    with gated.cond:
        assert gated.cond.wait_for(lambda: gated.inside == 3, timeout=10)
    gated.gate.set()
    for t in pool:
        t.join()
    assert gated.most == 3
    assert results == [b"0123456789"] * 16


def test_a_listing_holds_no_slot_while_consumed(local: LocalBackend) -> None:
    local.put("obj2", b"x")
    backend = ConcurrencyLimitedBackend(local, 1)
    listing = backend.list("")
    next(listing)
    other = threading.Thread(target=backend.get, args=("obj",), daemon=True)
    other.start()
    other.join(10)
    assert not other.is_alive()  # the single slot was free
    assert len(list(listing)) == 1


def test_concurrency_limit_must_be_positive(local: LocalBackend) -> None:
    with pytest.raises(ValueError):
        ConcurrencyLimitedBackend(local, 0)


# ----------------------------------------------------------------------------- metrics


def test_metrics_count_requests_bytes_and_errors(local: LocalBackend) -> None:
    metrics = Metrics()
    backend = MeteredBackend(local, metrics)
    backend.put("a", b"x" * 1000)
    assert backend.get("a") == b"x" * 1000
    assert backend.get("a", 10, 5) == b"xxxxx"
    backend.stat("a")
    assert sorted(i.name for i in backend.list("")) == ["a", "obj"]
    backend.delete("a")
    with pytest.raises(NotFoundError):
        backend.get("a")
    flaky = MeteredBackend(FlakyBackend(local, every=1, ops=("stat",)), metrics)
    with pytest.raises(TransientError):
        flaky.stat("obj")
    with pytest.raises(PermanentError):
        backend.put("../escape", b"")
    snap = metrics.snapshot()
    assert snap["requests_put"] == 2
    assert snap["requests_get"] == 3
    assert snap["requests_stat"] == 2
    assert snap["requests_list"] == 1
    assert snap["requests_delete"] == 1
    assert snap["requests"] == 9 == metrics.total_requests
    assert snap["bytes_uploaded"] == 1000
    assert snap["bytes_downloaded"] == 1005
    assert snap["transient_errors"] == 1
    assert snap["permanent_errors"] == 1  # not found is an answer, not an error
    assert snap["retries"] == 0
    assert isinstance(snap["seconds"], float) and snap["seconds"] >= 0


def test_metrics_summary_line() -> None:
    metrics = Metrics()
    for _ in range(411):
        metrics.record("get", 0.01)
    metrics.record("put", 0.5, uploaded=int(1.2 * (1 << 30)), downloaded=35 * MIB)
    for _ in range(3):
        metrics.record_retry()
    assert metrics.summary() == "412 requests, 1.2 GiB up, 35.0 MiB down, 3 retries"


def test_listing_time_excludes_the_consumer(local: LocalBackend) -> None:
    clock = FakeClock()
    metrics = Metrics()
    backend = MeteredBackend(local, metrics, clock=clock)
    for _ in backend.list(""):
        clock.now += 50.0  # the consumer is slow
    assert metrics.seconds == 0.0
    assert metrics.requests["list"] == 1


# ----------------------------------------------------------------------------- the stack


def test_stack_order_retry_is_outermost(local: LocalBackend) -> None:
    clock = FakeClock()
    metrics = Metrics()
    flaky = FlakyBackend(local, every=2)
    options = TransportOptions(retry_base=0.01, retry_max=0.1, limit_upload=10 * MIB)
    backend = stack(flaky, options, metrics, sleep=clock.sleep, clock=clock)
    assert isinstance(backend, RetryBackend)
    metered = backend.inner
    assert isinstance(metered, MeteredBackend)
    capped = metered.inner
    assert isinstance(capped, ConcurrencyLimitedBackend)
    assert capped.limit == local.capabilities.connections
    limited = capped.inner
    assert isinstance(limited, RateLimitedBackend)
    assert limited.download is None and limited.upload is not None
    assert limited.inner is flaky
    assert unwrap(backend) is local
    for i in range(10):
        backend.put(f"o{i}", b"y" * 100)
    assert [backend.get(f"o{i}") for i in range(10)] == [b"y" * 100] * 10
    assert flaky.injected >= 10
    # each fault happened below the metrics layer: a failed attempt, then a retry
    assert metrics.retries == metrics.transient_errors == flaky.injected
    assert metrics.total_requests == 20 + flaky.injected
    assert metrics.bytes_uploaded == 1000


def test_stack_without_limits_or_metrics(local: LocalBackend) -> None:
    backend = stack(local, TransportOptions(connections=7))
    assert isinstance(backend, RetryBackend)
    capped = backend.inner
    assert isinstance(capped, ConcurrencyLimitedBackend)
    assert capped.limit == 7
    assert capped.inner is local
    assert backend.deadline == TransportOptions().retry_deadline
    assert unwrap(local) is local


def test_stack_retries_dropped_transfers(local: LocalBackend) -> None:
    clock = FakeClock()
    metrics = Metrics()
    dropping = DroppingBackend(local, every=2, pause=0)
    backend = stack(dropping, TransportOptions(), metrics, sleep=clock.sleep, clock=clock)
    for i in range(6):
        backend.put(f"p{i}", bytes([i]) * 1000)
    for i in range(6):
        assert backend.get(f"p{i}") == bytes([i]) * 1000
    assert dropping.injected == metrics.retries > 0
    assert sorted(i.name for i in local.list("p")) == [f"p{i}" for i in range(6)]


def test_every_wrapper_forwards_the_basics(tmp_path: Path) -> None:
    raw = LocalBackend(tmp_path / "new")
    wrappers: list[Backend] = [
        RetryBackend(raw, deadline=1, base=0.1, max_delay=1),
        MeteredBackend(raw, Metrics()),
        ConcurrencyLimitedBackend(raw, 2),
        RateLimitedBackend(raw, upload=1000),
        FlakyBackend(raw, every=1000),
        DroppingBackend(raw, every=1000),
    ]
    for w in wrappers:
        assert w.location == raw.location
        assert w.capabilities == raw.capabilities
        assert getattr(w, "inner", None) is raw
        assert unwrap(w) is raw
    assert not wrappers[0].exists()
    wrappers[0].create()
    assert all(w.exists() for w in wrappers)
    for w in wrappers:
        w.close()
