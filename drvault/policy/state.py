"""What was observed at the centers: the input of the compliance checks.

``drvault.observe`` fills these from the repositories themselves (listings, the keyless config,
snapshot times); the checks never look at the configuration's claims about a copy.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def newest(self) -> float | None:
        return self.snapshot_times[-1] if self.snapshot_times else None


@dataclass(frozen=True)
class SetState:
    set_id: str
    copies: tuple[CopyState, ...]  # production first, then the DR copies in config order

    def copy(self, center: str) -> CopyState | None:
        return next((c for c in self.copies if c.center == center), None)
