"""Forget: apply a retention policy to a repository's snapshots and remove the ones it drops.

Snapshots are grouped (by default by host and paths, as restic does) and the policy is applied
to each group by ``drvault.policy.retention.decide``, which gives every snapshot a keep/forget
decision with its reasons. Forgetting a snapshot writes a tombstone ``forgotten/<id>`` first and
then deletes the snapshot object: replication never sends a forgotten snapshot to this
repository again. Data is not touched; ``prune`` reclaims it. A snapshot that an Object Lock
protects is kept and said so. Damaged snapshots are never touched (their time is unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

from drvault.errors import AlreadyExistsError, DrvaultError, IntegrityError, UsageError
from drvault.objectlock import cold_storage, protected
from drvault.policy.model import Retention
from drvault.policy.retention import Decision, Item, decide, is_empty
from drvault.repository import layout
from drvault.repository.repository import Repository
from drvault.snapshot.document import Snapshot
from drvault.snapshots import load_all
from drvault.transport.base import create_object

GROUP_KEYS = ("host", "paths", "tags", "set")


@dataclass(frozen=True)
class Judged:
    snapshot: Snapshot
    group: str
    decision: Decision
    locked_until: float | None = None  # forgotten by the policy, kept by an Object Lock
    locked: bool = False

    @property
    def removed(self) -> bool:
        return not self.decision.keep and not self.locked


@dataclass
class ForgetResult:
    judged: list[Judged] = field(default_factory=list)  # newest first within each group
    damaged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def removed(self) -> list[Judged]:
        return [j for j in self.judged if j.removed]

    @property
    def kept(self) -> list[Judged]:
        return [j for j in self.judged if not j.removed]


def group_of(snapshot: Snapshot, group_by: Sequence[str]) -> str:
    parts: list[str] = []
    for key in group_by:
        if key == "host":
            parts.append(f"host={snapshot.hostname}")
        elif key == "paths":
            paths = ",".join(p.decode("utf-8", "backslashreplace") for p in snapshot.paths)
            parts.append(f"paths={paths}")
        elif key == "tags":
            parts.append(f"tags={','.join(sorted(snapshot.tags))}")
        elif key == "set":
            parts.append(f"set={snapshot.backup_set or '-'}")
        else:
            raise UsageError(f"--group-by {key}: unknown (known: {', '.join(GROUP_KEYS)})")
    return " ".join(parts) or "all"


def forget(
    repo: Repository,
    policy: Retention,
    *,
    now: float,
    tz: tzinfo | None = None,
    group_by: Sequence[str] = ("host", "paths"),
    dry_run: bool = False,
) -> ForgetResult:
    """Judge every snapshot by ``policy`` and (unless ``dry_run``) remove the forgotten ones.
    An empty policy is refused: forgetting needs at least one rule."""
    if is_empty(policy):
        raise UsageError("no retention rule given (e.g. --keep-daily 7): nothing would be kept")
    damaged: list[IntegrityError] = []
    snapshots = load_all(repo, damaged)
    result = ForgetResult(damaged=[str(e) for e in damaged], dry_run=dry_run)
    groups: dict[str, list[Snapshot]] = {}
    for snapshot in snapshots:
        groups.setdefault(group_of(snapshot, group_by), []).append(snapshot)
    decided: list[tuple[str, Snapshot, Decision]] = []
    for group, members in sorted(groups.items()):
        by_id = {s.id: s for s in members}
        items = [Item(s.id, s.time_ns / 1e9, s.tags) for s in members]
        for decision in decide(policy, items, now, tz):
            decided.append((group, by_id[decision.item.id], decision))
    dropping = [layout.snapshot_path(s.id) for _g, s, d in decided if not d.keep]
    locks = protected(repo.backend, dropping, now)
    for group, snapshot, decision in decided:
        state = locks.get(layout.snapshot_path(snapshot.id))
        if state is None:
            result.judged.append(Judged(snapshot, group, decision))
        else:
            until = None if state.legal_hold else state.retain_until
            result.judged.append(Judged(snapshot, group, decision, until, locked=True))
    if not dry_run:
        _remove(repo, result)
    return result


def _remove(repo: Repository, result: ForgetResult) -> None:
    cold = cold_storage(repo.backend)
    for judged in result.removed:
        snapshot_id = judged.snapshot.id
        try:
            create_object(repo.backend, layout.tombstone_path(snapshot_id), b"")
        except AlreadyExistsError:
            pass  # forgotten before, and the snapshot came back (an old replica): remove it
        except DrvaultError as exc:
            result.errors.append(f"{layout.tombstone_path(snapshot_id)}: not written: {exc}")
            continue
        path = layout.snapshot_path(snapshot_id)
        try:
            if cold is not None:
                cold.purge(path)
            else:
                repo.backend.delete(path)
        except DrvaultError as exc:
            result.errors.append(f"{path}: not deleted: {exc}")
