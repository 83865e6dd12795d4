"""Object Lock as drvault sees it: which objects are protected, keeping needed ones protected,
and whether a center holds an immutable copy.

The lock state is read from the objects themselves (HEAD), never taken from the configuration:
a center configured for COMPLIANCE whose objects carry no retention holds no immutable copy.
Only S3 backends (``ColdStorage``) have Object Lock; elsewhere nothing is protected by the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from drvault.errors import NotFoundError
from drvault.repository.fanout import fan_out
from drvault.transport.base import Backend, ColdStorage, ObjectState
from drvault.transport.retry import RetryBackend
from drvault.transport.stack import unwrap

T = TypeVar("T")

DAY = 86400.0


class _RetriedCold:
    """A ``ColdStorage`` whose requests run under the stack's retry policy (the wrappers of a
    stack forward only the Backend methods, so these calls would otherwise go unretried)."""

    def __init__(self, cold: ColdStorage, retry: RetryBackend | None) -> None:
        self._cold, self._retry = cold, retry

    def _call(self, op: str, name: str, request: Callable[[], T]) -> T:
        return request() if self._retry is None else self._retry.call(op, name, request)

    def object_state(self, name: str) -> ObjectState:
        return self._call("head", name, lambda: self._cold.object_state(name))

    def thaw(self, name: str, days: int, tier: str) -> bool:
        return self._call("thaw", name, lambda: self._cold.thaw(name, days, tier))

    def set_storage_class(self, name: str, storage_class: str) -> None:
        self._call("copy", name, lambda: self._cold.set_storage_class(name, storage_class))

    def object_lock(self) -> tuple[str, int | None] | None:
        return self._call("lock-config", "/", self._cold.object_lock)

    def extend_retention(self, name: str, until: float) -> bool:
        return self._call("retention", name, lambda: self._cold.extend_retention(name, until))

    def purge(self, name: str) -> None:
        self._call("purge", name, lambda: self._cold.purge(name))


def cold_storage(backend: Backend) -> ColdStorage | None:
    """The S3 side of ``backend`` when it has one (storage classes, thaws, Object Lock), its
    requests retried as the backend's stack retries its own."""
    raw = unwrap(backend)
    if not isinstance(raw, ColdStorage):
        return None
    retry: RetryBackend | None = None
    layer: object = backend
    while layer is not None:
        if isinstance(layer, RetryBackend):
            retry = layer
            break
        layer = getattr(layer, "inner", None)
    return _RetriedCold(raw, retry)


def lock_enabled(backend: Backend) -> bool:
    cold = cold_storage(backend)
    return cold is not None and cold.object_lock() is not None


def states(backend: Backend, paths: Iterable[str], parallel: int = 16) -> dict[str, ObjectState]:
    """HEAD each path (missing ones are left out)."""
    cold = cold_storage(backend)
    out: dict[str, ObjectState] = {}
    if cold is None:
        return out
    for path, state, exc in fan_out(cold.object_state, list(paths), parallel):
        if isinstance(exc, NotFoundError):
            continue
        if exc is not None:
            raise exc
        assert state is not None
        out[path] = state
    return out


def protected(backend: Backend, paths: Iterable[str], now: float) -> dict[str, ObjectState]:
    """The paths an Object Lock (retention or legal hold) forbids deleting now."""
    if not lock_enabled(backend):
        return {}
    return {p: s for p, s in states(backend, paths).items() if s.locked(now)}


@dataclass
class ExtendResult:
    checked: int = 0
    extended: int = 0


def extend(
    backend: Backend, paths: Iterable[str], days: int, now: float, parallel: int = 16
) -> ExtendResult:
    """Keep needed objects locked: any whose retention ends within ``days / 2`` gets ``days``
    from now (retention is only ever lengthened)."""
    result = ExtendResult()
    cold = cold_storage(backend)
    if cold is None or days <= 0 or cold.object_lock() is None:
        return result
    until = now + days * DAY
    found = states(backend, paths, parallel)
    result.checked = len(found)
    due = [
        p
        for p, s in found.items()
        if not s.legal_hold and (s.retain_until is None or s.retain_until < now + days * DAY / 2)
    ]
    for _path, changed, exc in fan_out(lambda p: cold.extend_retention(p, until), due, parallel):
        if exc is not None:
            raise exc
        if changed:
            result.extended += 1
    return result


@dataclass(frozen=True)
class Immutable:
    """How well the newest snapshot at a center is protected, read from its objects."""

    objects: int  # the snapshot, its packs and the index files naming them
    locked: int  # of those, locked now
    mode: str | None  # the weakest mode among them: GOVERNANCE if any, else COMPLIANCE
    until: float | None  # the earliest retain-until among them

    @property
    def whole(self) -> bool:
        return self.objects > 0 and self.locked == self.objects


def immutable_copy(backend: Backend, paths: Iterable[str], now: float) -> Immutable | None:
    """None when the center has no Object Lock at all; else the lock state of ``paths``."""
    if not lock_enabled(backend):
        return None
    found = states(backend, paths)
    locked = [s for s in found.values() if s.locked(now)]
    modes = {s.lock_mode for s in locked if s.lock_mode}
    mode = "GOVERNANCE" if "GOVERNANCE" in modes else ("COMPLIANCE" if modes else None)
    untils = [s.retain_until for s in locked if s.retain_until is not None and not s.legal_hold]
    return Immutable(
        objects=len(found), locked=len(locked), mode=mode, until=min(untils) if untils else None
    )
