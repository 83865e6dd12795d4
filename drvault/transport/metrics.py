"""Counters of backend traffic: requests, bytes, retries, errors and time spent.

:class:`MeteredBackend` counts every request that passes through it; below the retry wrapper
(see :mod:`drvault.transport.stack`) that is every attempt. ``NotFoundError`` and
``AlreadyExistsError`` are answers, not failures, and are not counted as errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from drvault.errors import (
    AlreadyExistsError,
    ArchivedError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from drvault.progress import human_bytes
from drvault.transport.base import Backend, ObjectInfo
from drvault.transport.stack import Wrapper

OPS = ("put", "get", "stat", "list", "delete")


class Metrics:
    """Thread-safe counters shared by the wrappers of one backend stack."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = dict.fromkeys(OPS, 0)
        self.bytes_uploaded = 0
        self.bytes_downloaded = 0
        self.retries = 0
        self.transient_errors = 0
        self.permanent_errors = 0
        self.seconds = 0.0

    def record(
        self,
        op: str,
        seconds: float,
        *,
        uploaded: int = 0,
        downloaded: int = 0,
        error: BaseException | None = None,
    ) -> None:
        """One finished request (successful or not)."""
        with self._lock:
            self.requests[op] = self.requests.get(op, 0) + 1
            self.seconds += seconds
            self.bytes_uploaded += uploaded
            self.bytes_downloaded += downloaded
            if isinstance(error, TransientError):
                self.transient_errors += 1
            elif isinstance(error, NotFoundError | AlreadyExistsError):
                pass
            elif isinstance(error, PermanentError | ArchivedError):
                self.permanent_errors += 1

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def snapshot(self) -> dict[str, int | float]:
        """All counters as one flat mapping, for ``--json`` output."""
        with self._lock:
            out: dict[str, int | float] = {"requests": sum(self.requests.values())}
            out.update({f"requests_{op}": n for op, n in self.requests.items()})
            out.update(
                bytes_uploaded=self.bytes_uploaded,
                bytes_downloaded=self.bytes_downloaded,
                retries=self.retries,
                transient_errors=self.transient_errors,
                permanent_errors=self.permanent_errors,
                seconds=round(self.seconds, 3),
            )
            return out

    def summary(self) -> str:
        """One line: ``412 requests, 1.2 GiB up, 35.0 MiB down, 3 retries``."""
        s = self.snapshot()
        return (
            f"{s['requests']} requests, {human_bytes(s['bytes_uploaded'])} up, "
            f"{human_bytes(s['bytes_downloaded'])} down, {s['retries']} retries"
        )


class MeteredBackend(Wrapper):
    """Counts each request, its bytes, its outcome and its duration in ``metrics``.

    A listing counts as one request; its time is what the inner listing took to produce its
    entries, not what the consumer spent between them.
    """

    def __init__(
        self, inner: Backend, metrics: Metrics, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(inner)
        self.metrics = metrics
        self._clock = clock

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        start = self._clock()
        try:
            self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)
        except BaseException as exc:
            self.metrics.record("put", self._clock() - start, error=exc)
            raise
        self.metrics.record("put", self._clock() - start, uploaded=len(data))

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        start = self._clock()
        try:
            data = self.inner.get(name, offset, length)
        except BaseException as exc:
            self.metrics.record("get", self._clock() - start, error=exc)
            raise
        self.metrics.record("get", self._clock() - start, downloaded=len(data))
        return data

    def stat(self, name: str) -> ObjectInfo:
        start = self._clock()
        try:
            info = self.inner.stat(name)
        except BaseException as exc:
            self.metrics.record("stat", self._clock() - start, error=exc)
            raise
        self.metrics.record("stat", self._clock() - start)
        return info

    def delete(self, name: str) -> None:
        start = self._clock()
        try:
            self.inner.delete(name)
        except BaseException as exc:
            self.metrics.record("delete", self._clock() - start, error=exc)
            raise
        self.metrics.record("delete", self._clock() - start)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        spent = 0.0
        error: BaseException | None = None
        entries = self.inner_listing(prefix)
        try:
            while True:
                start = self._clock()
                try:
                    info = next(entries)
                except StopIteration:
                    return
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    spent += self._clock() - start
                yield info
        finally:
            entries.close()
            self.metrics.record("list", spent, error=error)
