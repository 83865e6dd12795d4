"""Bandwidth limits: a thread-safe token bucket, and a backend that spends tokens per byte.

One bucket per direction is shared by every thread using the backend, so the limit holds for
the whole process's traffic through it, however many uploads run in parallel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from drvault.transport.base import Backend
from drvault.transport.stack import Wrapper

SLICE = 64 << 10  # tokens taken at a time: parallel takers interleave at this grain


class TokenBucket:
    """Tokens (bytes) accrue at ``rate`` a second up to ``burst`` (default: one second's worth).

    The bucket starts full. A taker reserves its tokens at once, even past empty, and sleeps
    off the debt outside the lock; later takers queue behind that debt, so concurrent takers
    together never exceed the rate over time.
    """

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        slice_size: int = SLICE,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.rate = float(rate)
        self.burst = burst if burst is not None else max(1, int(rate))
        self.slice_size = slice_size
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._last = clock()

    def _reserve(self, n: int) -> float:
        """Take ``n`` tokens; the seconds to wait before they are really there."""
        with self._lock:
            now = self._clock()
            if now > self._last:
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
            self._tokens -= n
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def take(self, n: int) -> None:
        """Wait for ``n`` tokens, taken in slices of ``slice_size``: a large transfer does not
        hold the whole budget while other threads wait."""
        while n > 0:
            step = min(n, self.slice_size)
            wait = self._reserve(step)
            if wait > 0:
                self._sleep(wait)
            n -= step


class RateLimitedBackend(Wrapper):
    """Limits the bytes put (``upload``) and got (``download``) per second.

    A put waits for its tokens before it starts; a get pays for the bytes it returned after it
    returns (their number is known only then), which delays the next request instead. Listings
    and stats are not limited. A rate (bytes a second) makes a bucket of its own; pass a
    :class:`TokenBucket` to share one between backends.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        upload: TokenBucket | float | None = None,
        download: TokenBucket | float | None = None,
    ) -> None:
        super().__init__(inner)
        self.upload = TokenBucket(upload) if isinstance(upload, int | float) else upload
        self.download = TokenBucket(download) if isinstance(download, int | float) else download

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        if self.upload is not None:
            self.upload.take(len(data))
        self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(name, offset, length)
        if self.download is not None:
            self.download.take(len(data))
        return data
