"""Wrappers around a backend, and the one function that stacks them.

Each concern is its own wrapper (a ``Backend`` holding an ``inner`` backend): retrying transient
errors, counting requests, capping parallel requests, limiting bandwidth. :func:`stack` puts them
together in one fixed order, retry outermost:

``Retry(Metered(ConcurrencyLimited(RateLimited(backend))))``

so every attempt is counted and holds a connection slot only while it runs, and a backoff sleep
holds no slot. :func:`unwrap` reaches the raw backend below any stack.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING

from drvault.transport.base import Backend, Capabilities, ObjectInfo
from drvault.transport.options import TransportOptions

if TYPE_CHECKING:
    from drvault.transport.metrics import Metrics

RetryHook = Callable[[str, str, int, Exception, float], None]


class Wrapper:
    """A backend that forwards everything to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(name, offset, length)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def inner_listing(self, prefix: str) -> Generator[ObjectInfo, None, None]:
        """``inner.list(prefix)`` as a generator: its errors come from ``next``, never earlier,
        and ``close`` closes the inner listing."""
        yield from self.inner.list(prefix)

    def exists(self) -> bool:
        return self.inner.exists()

    def create(self) -> None:
        self.inner.create()

    def close(self) -> None:
        self.inner.close()


def unwrap(backend: Backend) -> Backend:
    """The innermost backend below any number of wrappers."""
    while (inner := getattr(backend, "inner", None)) is not None:
        backend = inner
    return backend


def stack(
    backend: Backend,
    options: TransportOptions,
    metrics: Metrics | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    on_retry: RetryHook | None = None,
) -> Backend:
    """``backend`` wrapped as the options ask: retry, metrics (when given), connection cap and
    bandwidth limits (when set). ``sleep``, ``clock`` and ``rng`` are for tests."""
    # Imported here: each wrapper module imports Wrapper from this one.
    from drvault.transport.concurrency import ConcurrencyLimitedBackend
    from drvault.transport.metrics import MeteredBackend
    from drvault.transport.ratelimit import RateLimitedBackend, TokenBucket
    from drvault.transport.retry import RetryBackend

    def bucket(rate: int | None) -> TokenBucket | None:
        return TokenBucket(rate, clock=clock, sleep=sleep) if rate else None

    out = backend
    if options.limit_upload or options.limit_download:
        up, down = bucket(options.limit_upload), bucket(options.limit_download)
        out = RateLimitedBackend(out, upload=up, download=down)
    out = ConcurrencyLimitedBackend(out, options.connections or backend.capabilities.connections)
    if metrics is not None:
        out = MeteredBackend(out, metrics, clock=clock)
    return RetryBackend(
        out,
        deadline=options.retry_deadline,
        base=options.retry_base,
        max_delay=options.retry_max,
        metrics=metrics,
        sleep=sleep,
        clock=clock,
        rng=rng,
        on_retry=on_retry,
    )
