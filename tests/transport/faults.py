"""Fault-injecting backends for tests: they wrap any backend and fail some of its requests.

``FlakyBackend`` fails every Nth request transiently, before the request (it never happened) or
after it (it happened, the answer was lost). ``DroppingBackend`` loses the link in the middle of
every Nth transfer: a put sends part of its data and fails without the object appearing (puts are
atomic), a get reads the object and fails before returning it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

from drvault.errors import TransientError
from drvault.transport.base import Backend, ObjectInfo
from drvault.transport.stack import Wrapper

OPS = ("put", "get", "stat", "list", "delete")


class _Every:
    """A thread-safe counter saying yes on every Nth call."""

    def __init__(self, every: int) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.every = every
        self.calls = 0
        self.hits = 0
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            self.calls += 1
            hit = self.calls % self.every == 0
            self.hits += hit
            return hit


class FlakyBackend(Wrapper):
    """Every ``every``-th call of ``ops`` (counted together) raises ``TransientError``."""

    def __init__(
        self,
        inner: Backend,
        every: int,
        ops: Iterable[str] = OPS,
        *,
        after: bool = False,
    ) -> None:
        super().__init__(inner)
        self.ops = frozenset(ops)
        unknown = self.ops - set(OPS)
        if unknown:
            raise ValueError(f"unknown ops {sorted(unknown)}")
        self.after = after
        self._every = _Every(every)

    @property
    def injected(self) -> int:
        """Faults raised so far."""
        return self._every.hits

    def _fault(self, op: str) -> bool:
        return op in self.ops and self._every()

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        fault = self._fault("put")
        if fault and not self.after:
            raise TransientError(f"{name}: injected fault")
        self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)
        if fault:
            raise TransientError(f"{name}: injected fault (after the put)")

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        fault = self._fault("get")
        if fault and not self.after:
            raise TransientError(f"{name}: injected fault")
        data = self.inner.get(name, offset, length)
        if fault:
            raise TransientError(f"{name}: injected fault (after the get)")
        return data

    def stat(self, name: str) -> ObjectInfo:
        fault = self._fault("stat")
        if fault and not self.after:
            raise TransientError(f"{name}: injected fault")
        info = self.inner.stat(name)
        if fault:
            raise TransientError(f"{name}: injected fault (after the stat)")
        return info

    def delete(self, name: str) -> None:
        fault = self._fault("delete")
        if fault and not self.after:
            raise TransientError(f"{name}: injected fault")
        self.inner.delete(name)
        if fault:
            raise TransientError(f"{name}: injected fault (after the delete)")

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """A faulty listing fails before its first entry, or (``after``) half way through."""
        fault = self._fault("list")
        if fault and not self.after:
            raise TransientError(f"{prefix}: injected fault")
        if not fault:
            yield from self.inner.list(prefix)
            return
        entries = list(self.inner.list(prefix))
        yield from entries[: len(entries) // 2]
        raise TransientError(f"{prefix}: injected fault (half way through the listing)")


class DroppingBackend(Wrapper):
    """Every ``every``-th put, and every ``every``-th get, loses the link half way through."""

    def __init__(self, inner: Backend, every: int, *, pause: float = 0.002) -> None:
        super().__init__(inner)
        self.pause = pause
        self._puts = _Every(every)
        self._gets = _Every(every)

    @property
    def injected(self) -> int:
        """Transfers dropped so far."""
        return self._puts.hits + self._gets.hits

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        if self._puts():
            sent = bytes(memoryview(data)[: len(data) // 2])  # the part that went out
            time.sleep(self.pause)
            raise TransientError(f"{name}: link lost (injected) after {len(sent)} bytes")
        self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(name, offset, length)
        if self._gets():
            time.sleep(self.pause)
            raise TransientError(f"{name}: link lost (injected) after {len(data) // 2} bytes")
        return data
