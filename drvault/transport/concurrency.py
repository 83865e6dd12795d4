"""A cap on parallel requests: more threads may use the backend, but at most ``limit`` of
their requests run at once (a connection pool's size, a server's session limit)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from drvault.transport.base import Backend, ObjectInfo
from drvault.transport.stack import Wrapper


class ConcurrencyLimitedBackend(Wrapper):
    """Each request holds one of ``limit`` slots while it runs.

    A listing holds its slot while it reads the whole inner listing into memory, then yields
    from that copy without a slot: listings are small metadata, and a consumer working between
    entries (or abandoning the listing) must not keep a connection busy.
    """

    def __init__(self, inner: Backend, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        super().__init__(inner)
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        with self._slots:
            self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._slots:
            return self.inner.get(name, offset, length)

    def stat(self, name: str) -> ObjectInfo:
        with self._slots:
            return self.inner.stat(name)

    def delete(self, name: str) -> None:
        with self._slots:
            self.inner.delete(name)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._slots:
            entries = list(self.inner.list(prefix))
        yield from entries

    def exists(self) -> bool:
        with self._slots:
            return self.inner.exists()

    def create(self) -> None:
        with self._slots:
            self.inner.create()
