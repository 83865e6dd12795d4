"""What was observed at the centers: the input of the compliance checks.

``drvault.observe`` fills these from the repositories themselves (listings, the keyless config,
snapshot times, drill records); the checks never look at the configuration's claims about a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class DrillSeen:
    """One restore drill recorded at a center (``drills/`` there), as the checks need it."""

    center: str
    finished: float  # epoch seconds
    passed: bool  # restored, every file verified, within its RTO if it had one
    total_seconds: float | None = None  # thaw + restore + verify
    rto_seconds: float | None = None  # the RTO the drill was judged against, if any
    # The whole record (drvault.drillrecord), for reports; not compared.
    record: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )


@dataclass(frozen=True)
class CopyState:
    """One center's copy of one backup set, as found."""

    center: str
    reachable: bool
    error: str | None = None  # why it could not be read
    exists: bool = False  # a drvault repository is there
    repository_id: str | None = None
    suite: str | None = None  # from the repository config: intl | gm
    cipher: str | None = None
    snapshot_times: tuple[float, ...] = ()  # epoch seconds, ascending
    # Object Lock of the newest snapshot's objects, read from the objects (HEAD): None when the
    # store has no Object Lock; "COMPLIANCE"/"GOVERNANCE" when every one is locked (the weaker
    # mode if mixed); "partial" when some are not.
    lock: str | None = None
    lock_until: float | None = None  # earliest retain-until among them
    lock_detail: str = ""
    newest_classes: tuple[tuple[str, int], ...] = ()  # storage class -> bytes of its data packs
    # (snapshot time, when its object landed here: the listing's mtime, None if unknown) per
    # snapshot, by snapshot time: the replication lag of each one.
    landed: tuple[tuple[float, float | None], ...] = ()
    drills: tuple[DrillSeen, ...] = ()  # drills from this center, oldest first

    @property
    def newest(self) -> float | None:
        return self.snapshot_times[-1] if self.snapshot_times else None


@dataclass(frozen=True)
class SetState:
    set_id: str
    copies: tuple[CopyState, ...]  # production first, then the DR copies in config order

    def copy(self, center: str) -> CopyState | None:
        return next((c for c in self.copies if c.center == center), None)

    @property
    def drills(self) -> tuple[DrillSeen, ...]:
        """Every drill of the set at any center, oldest first."""
        return tuple(sorted((d for c in self.copies for d in c.drills), key=lambda d: d.finished))
