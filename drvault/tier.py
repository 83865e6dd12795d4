"""Tier: move a repository's data packs at an S3 center to colder storage classes by age.

The ladder (``centers.<id>.storage.ladder``) is applied by drvault itself: each pack due for a
colder class is copied onto itself with that class (S3 CopyObject), so it works on stores whose
lifecycle rules are absent or not executed. Only ``data/`` is ever listed: trees, index files
and snapshots stay instantly readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drvault.errors import DrvaultError, UsageError
from drvault.objectlock import cold_storage
from drvault.policy.model import Storage
from drvault.policy.tiering import TierPlan, plan_moves
from drvault.repository import layout
from drvault.repository.fanout import fan_out
from drvault.transport.base import Backend


@dataclass
class TierResult:
    plan: TierPlan
    moved: int = 0
    bytes_moved: int = 0
    errors: list[str] = field(default_factory=list)


def tier(
    backend: Backend, storage: Storage, *, now: float, dry_run: bool = False, parallel: int = 8
) -> TierResult:
    cold = cold_storage(backend)
    if cold is None:
        raise UsageError(f"{backend.location}: storage classes need an S3 center")
    packs = [
        info
        for info in backend.list("data/")
        if (name := layout.parse_hex_name(info.name)) is not None
        and info.name == layout.pack_path("data", name)
    ]
    result = TierResult(plan_moves(storage, packs, now))
    if dry_run:
        return result
    moves = list(result.plan.moves)
    for move, _none, exc in fan_out(
        lambda m: cold.set_storage_class(m.name, m.to_class), moves, parallel
    ):
        if exc is None:
            result.moved += 1
            result.bytes_moved += move.size
        elif isinstance(exc, DrvaultError):
            result.errors.append(f"{move.name}: not moved to {move.to_class}: {exc}")
        else:
            raise exc
    return result
