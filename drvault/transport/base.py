"""The backend protocol every transport implements.

Promises (each implementation's tests check them, see tests/transport/):
- ``put`` is atomic: a reader sees the old state or the whole new object, never a part.
  With ``exclusive=True`` it fails with ``AlreadyExistsError`` if the name exists.
- ``get`` of a missing name raises ``NotFoundError``; a ranged ``get`` that cannot return
  ``length`` bytes raises ``ShortReadError`` (a truncated object is an error, not a short answer).
- ``list`` yields every object under a prefix exactly once, in no particular order.
- ``delete`` of a missing name raises ``NotFoundError``.
Names are relative, ``/``-separated, and never contain ``..``.
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

    def put(self, name: str, data: bytes | memoryview, *, exclusive: bool = False) -> None: ...

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
