"""The backend protocol every transport implements.

Promises (each implementation's tests check them, see tests/transport/):
- ``put`` is atomic: a reader sees the old state or the whole new object, never a part.
  With ``exclusive=True`` it fails with ``AlreadyExistsError`` if the name exists.
- ``get`` of a missing name raises ``NotFoundError``; a ranged ``get`` that cannot return
  ``length`` bytes raises ``ShortReadError`` (a truncated object is an error, not a short answer).
- ``list`` yields every object under a prefix exactly once, in no particular order.
- ``delete`` of a missing name raises ``NotFoundError``.
- ``get`` of an object in a cold storage class raises ``ArchivedError`` (thaw it first).
- Errors are drvault's own: ``PermanentError`` (and subclasses), ``TransientError`` (worth a
  retry: connection lost, throttled, timeout) or ``ArchivedError``; never an SDK's exception.
Names are relative, ``/``-separated, and never contain ``..``.

``storage_class`` on ``put`` is a hint: a backend without storage classes ignores it, and
``None`` lets the backend choose by object kind (``data/`` packs vs metadata).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from drvault.errors import PermanentError


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    name: str
    size: int
    storage_class: str | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do beyond the basic promises."""

    storage_classes: bool = False  # honours the storage-class hint of put
    connections: int = 4  # parallel requests worth making (latency hiding)
    atomic_create: bool = True  # put(exclusive=True) is an atomic create-if-absent


def kind_of(name: str) -> str:
    """``data`` for data packs, ``metadata`` for everything else (trees, index, snapshots)."""
    return "data" if name.startswith("data/") else "metadata"


class ShortReadError(PermanentError):
    """A ranged read reached the end of the object before ``length`` bytes."""

    def __init__(self, name: str, wanted: int, got: int) -> None:
        super().__init__(f"{name}: short read ({got} of {wanted} bytes): object truncated")
        self.name = name


class Backend(Protocol):
    """A flat namespace of immutable objects."""

    @property
    def location(self) -> str:
        """Where the objects live, for messages (never contains secrets)."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None: ...

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    def stat(self, name: str) -> ObjectInfo: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def delete(self, name: str) -> None: ...

    def exists(self) -> bool:
        """Whether the backend's root (directory, bucket prefix) exists at all."""
        ...

    def create(self) -> None:
        """Create the root (directory, bucket prefix) if absent."""
        ...

    def close(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...
