"""Retrying transient backend errors: exponential backoff, full jitter, a deadline per call.

Only ``TransientError`` is retried. Permanent errors (``NotFoundError``, ``AlreadyExistsError``,
access denied, ...) and ``ArchivedError`` (thaw first, never retry blindly) pass through at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from drvault.errors import TransientError
from drvault.transport.base import Backend, ObjectInfo
from drvault.transport.stack import RetryHook, Wrapper

if TYPE_CHECKING:
    from drvault.transport.metrics import Metrics

T = TypeVar("T")
_MAX_DOUBLINGS = 60  # base * 2**60 exceeds any sensible max_delay; avoids float overflow


class _Attempts:
    """The failures of one call so far, and the deadline they run against."""

    def __init__(self, backend: RetryBackend) -> None:
        self.backend = backend
        self.restart()

    def restart(self) -> None:
        self.start = self.backend.clock()
        self.failures = 0
        self.first: TransientError | None = None

    def backoff(self, op: str, name: str, error: TransientError) -> None:
        """Sleep before the next attempt, or raise when the deadline has passed."""
        b = self.backend
        self.failures += 1
        self.first = self.first or error
        now = b.clock()
        left = self.start + b.deadline - now
        if left <= 0:
            # The first failure says what happened (a lost link); the last, how it ended.
            last = "" if str(error) == str(self.first) else f"; last: {error}"
            raise TransientError(
                f"{self.first} (gave up after {self.failures} attempt(s) in "
                f"{now - self.start:.1f} s{last})"
            ) from error
        ceiling = min(b.max_delay, b.base * 2 ** min(self.failures - 1, _MAX_DOUBLINGS))
        delay = min(ceiling * b.rng(), left)
        if b.metrics is not None:
            b.metrics.record_retry()
        if b.on_retry is not None:
            b.on_retry(op, name, self.failures, error, delay)
        b.sleep(delay)


class RetryBackend(Wrapper):
    """Retries each request failing with ``TransientError`` until ``deadline`` seconds after the
    call, then raises the first error, saying how many attempts were made over how long and
    how the last one failed.

    Before retry number n (1, 2, ...) it sleeps a random time in
    ``[0, min(max_delay, base * 2**(n-1))]`` (full jitter: parallel clients hitting the same
    fault spread out), cut so the last attempt starts at the deadline. Each retry is counted in
    ``metrics`` and reported to ``on_retry(op, name, attempt, error, delay)``, where ``attempt``
    is the number of the attempt that failed.

    A put that failed transiently may still have stored the object (the answer was lost). A
    plain put is simply repeated: objects are immutable and a put is atomic. An *exclusive* put
    whose retry meets ``AlreadyExistsError`` cannot tell whether its own earlier attempt created
    the object or someone else did; callers writing lock objects verify ownership by reading the
    object back. Likewise a retried delete may meet ``NotFoundError`` after its own earlier
    attempt removed the object.

    ``list`` restarts the listing after a transient error and skips names already yielded, so
    each name still comes once. Its deadline runs from the call, and again from the first
    failure after any new name: a long listing that keeps making progress is not cut off.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        deadline: float,
        base: float,
        max_delay: float,
        metrics: Metrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_retry: RetryHook | None = None,
    ) -> None:
        super().__init__(inner)
        self.deadline = deadline
        self.base = base
        self.max_delay = max_delay
        self.metrics = metrics
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.on_retry = on_retry

    def call(self, op: str, name: str, request: Callable[[], T]) -> T:
        """Run ``request`` (any operation on the backend below) under this retry policy."""
        return self._call(op, name, request)

    def _call(self, op: str, name: str, request: Callable[[], T]) -> T:
        attempts = _Attempts(self)
        while True:
            try:
                return request()
            except TransientError as exc:
                attempts.backoff(op, name, exc)

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        self._call(
            "put",
            name,
            lambda: self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class),
        )

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call("get", name, lambda: self.inner.get(name, offset, length))

    def stat(self, name: str) -> ObjectInfo:
        return self._call("stat", name, lambda: self.inner.stat(name))

    def delete(self, name: str) -> None:
        self._call("delete", name, lambda: self.inner.delete(name))

    def exists(self) -> bool:
        return self._call("exists", "", self.inner.exists)

    def create(self) -> None:
        self._call("create", "", self.inner.create)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        seen: set[str] = set()
        attempts = _Attempts(self)
        progressed = False
        while True:
            entries = self.inner_listing(prefix)
            try:
                while True:
                    try:
                        info = next(entries)
                    except StopIteration:
                        return
                    except TransientError as exc:
                        error = exc
                        break
                    if info.name not in seen:
                        seen.add(info.name)
                        progressed = True
                        yield info
            finally:
                entries.close()
            if progressed:
                attempts.restart()
                progressed = False
            attempts.backoff("list", prefix, error)
