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
Names are relative, ``/``-separated, and never contain ``..``. :func:`create_object` is the
create-if-absent every layer above uses (repository, locks, tombstones, replication): it makes
a retried exclusive ``put`` whose first answer was lost succeed.

``storage_class`` on ``put`` is a hint: a backend without storage classes ignores it, and
``None`` lets the backend choose by object kind (``data/`` packs vs metadata).

:class:`ColdStorage` is what an S3 backend offers beyond :class:`Backend`: the state of one object
(:class:`ObjectState`: storage class, thaw progress, Object Lock), thaws, class changes, retention
extension and a purge that removes every version. Reach it below a wrapper stack with
``stack.unwrap`` and ``isinstance(raw, ColdStorage)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from drvault.errors import AlreadyExistsError, NotFoundError, PermanentError

RestoreStatus = Literal["none", "ongoing", "done"]
LockMode = Literal["COMPLIANCE", "GOVERNANCE"]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    name: str
    size: int
    storage_class: str | None = None
    mtime: float | None = None  # unix seconds when the object was written (S3 LastModified)


@dataclass(frozen=True, slots=True)
class ObjectState:
    """One object as a HEAD request sees it: where it sits, whether it reads, what protects it."""

    name: str
    size: int
    storage_class: str  # "STANDARD" when S3 omits it
    archived: bool  # a GET needs a thaw first: GLACIER, DEEP_ARCHIVE, Intelligent-Tiering archive
    restore: RestoreStatus  # thaw progress, from x-amz-restore
    restore_expiry: float | None  # unix seconds the thawed copy lasts until (restore "done")
    lock_mode: LockMode | None
    retain_until: float | None  # unix seconds
    legal_hold: bool
    mtime: float | None

    def readable(self) -> bool:
        """Whether a GET answers now (not archived, or a thawed copy exists)."""
        return not self.archived or self.restore == "done"

    def locked(self, now: float) -> bool:
        """Whether Object Lock refuses deleting this version at ``now`` (unix seconds)."""
        if self.legal_hold:
            return True
        return self.lock_mode is not None and (self.retain_until or 0.0) > now


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


@runtime_checkable
class ColdStorage(Protocol):
    """What an S3 backend can do beyond Backend: storage classes, thaws, Object Lock."""

    def object_state(self, name: str) -> ObjectState:
        """The object's state from one HEAD request; ``NotFoundError`` if it is missing."""
        ...

    def thaw(self, name: str, days: int, tier: str) -> bool:
        """Ask for a readable copy of an archived object for ``days`` (``tier``: Expedited,
        Standard or Bulk). True if a request was issued; False if a thaw is already under way or
        done (nothing is requested twice). ``PermanentError`` if the object is not archived."""
        ...

    def set_storage_class(self, name: str, storage_class: str) -> None:
        """Move the object to ``storage_class`` (a copy onto itself); keeps its Object Lock."""
        ...

    def object_lock(self) -> tuple[str, int | None] | None:
        """The bucket's Object Lock: None if not enabled, else (default mode or "NONE",
        default retention in days or None)."""
        ...

    def extend_retention(self, name: str, until: float) -> bool:
        """Make the current version's retain-until at least ``until`` (unix seconds); never
        shortens. True if the retention was changed."""
        ...

    def purge(self, name: str) -> None:
        """Delete every version and delete marker of the object, or nothing: if any version is
        locked, ``ObjectLockedError`` and no version is touched."""
        ...


def create_object(backend: Backend, name: str, raw: bytes) -> None:
    """Create ``name`` only if absent. When a retried create finds the object already there
    with exactly our bytes, our own first attempt made it (its answer was lost): success."""
    try:
        backend.put(name, raw, exclusive=True)
    except AlreadyExistsError:
        try:
            if backend.get(name) == raw:
                return
        except NotFoundError:
            pass
        raise
