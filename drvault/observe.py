"""Look at every center holding a backup set and say what is there: the input of ``status``.

Per center: is it reachable, is the set's repository there (its keyless config names the
repository and the crypto suite), and which snapshots it holds. Snapshot times are inside the
encrypted documents, so they are read with the key, but only once per snapshot: a DR center
holds byte-identical copies of production's snapshots (same names), so listing its
``snapshots/`` is enough for every snapshot production also has; only the others are fetched
there. Damaged snapshots are left out (``check`` and ``scrub`` name them).

Each center also yields when each snapshot's object landed there (the listing's modification
time: the replication lag of that snapshot) and the restore drills recorded there
(``drills/``, see ``drvault.drillrecord``), of this set or of its repository drilled by URL.
Reading drills needs the key: it is derived once per repository and reused at every center
holding the same repository. A damaged drill record is ignored, and a failure to read drills
at all leaves the center without drills: it never fails ``status``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import MappingProxyType

from drvault.drillrecord import read_drills
from drvault.errors import BackendError, DrvaultError, IntegrityError, RepositoryNotFoundError
from drvault.objectlock import immutable_copy
from drvault.policy.model import BackupSet, Center, Config
from drvault.policy.state import CopyState, DrillSeen, SetState
from drvault.repository import envelope, forward, layout
from drvault.repository.config import RepoConfig
from drvault.repository.repository import Repository, read_config
from drvault.snapshot.document import Snapshot
from drvault.transport import Backend

OpenCenter = Callable[[Center], Backend]


def observe(
    config: Config, backup_set: BackupSet, open_center: OpenCenter, password: bytes
) -> SetState:
    known: dict[bytes, float] = {}  # snapshot ID -> time, shared across centers
    keys = _Keys(password)
    copies = [
        _observe_center(center, open_center, keys, known, backup_set.id)
        for center in config.holders(backup_set)
    ]
    return SetState(backup_set.id, tuple(copies))


class _Keys:
    """The repository key, derived from the password once per repository (the KDF is slow on
    purpose) and reused, with the config it verified, at every center holding a copy of the
    same repository (same repository ID)."""

    def __init__(self, password: bytes) -> None:
        self.password = password
        self.opened: dict[bytes, Repository] = {}

    def open(self, backend: Backend, repo_config: RepoConfig) -> Repository:
        first = self.opened.get(repo_config.repository_id)
        if first is None:
            repo = Repository.open(backend, self.password, load_index=False)
            self.opened[repo_config.repository_id] = repo
            return repo
        return Repository(backend, first.config, first.master, first.slot_id)


def _drills(
    center: str, set_id: str, backend: Backend, repo_config: RepoConfig, keys: _Keys
) -> tuple[DrillSeen, ...]:
    """The drills of the set recorded at the center; none when they cannot be read."""
    try:
        records = read_drills(keys.open(backend, repo_config))
    except DrvaultError:
        return ()
    return tuple(
        DrillSeen(
            center,
            float(r["finished"]),
            bool(r["passed"]),
            r["total_seconds"],
            r["rto_seconds"],
            MappingProxyType(r),
        )
        for r in records
        if r["set"] in (set_id, "")
    )


def _newest_storage(
    backend: Backend, newest: bytes | None
) -> tuple[tuple[str, float | None, str] | None, tuple[tuple[str, int], ...]]:
    """Where the newest snapshot's data lies (bytes per storage class, from one listing) and
    how its objects are locked: (mode or "partial", earliest retain-until, detail)."""
    if newest is None:
        return None, ()
    path = layout.snapshot_path(newest)
    try:
        listed = envelope.parse(backend.get(path), envelope.SNAPSHOT_MAGIC).packs
    except envelope.MalformedEnvelope as exc:
        raise IntegrityError(path, str(exc)) from exc
    forwards = forward.read_all(backend, max(1, backend.capabilities.connections), [])
    packs = forwards.closure(listed)
    classes: dict[str, int] = {}
    pack_paths: list[str] = []
    for kind in layout.PACK_KINDS:
        for info in backend.list(kind + "/"):
            name = layout.parse_hex_name(info.name)
            if name in packs:
                pack_paths.append(info.name)
                if kind == "data":
                    cls = info.storage_class or "STANDARD"
                    classes[cls] = classes.get(cls, 0) + info.size
    others = [i.name for prefix in (layout.INDEX, layout.KEYS) for i in backend.list(prefix)]
    others += list(forwards.files)
    found = immutable_copy(backend, [path, layout.CONFIG, *pack_paths, *others], time.time())
    lock = None
    if found is not None:
        mode = found.mode if found.whole and found.mode else "partial"
        detail = f"{found.locked} of {found.objects} objects locked"
        lock = (mode, found.until, detail)
    return lock, tuple(sorted(classes.items()))


def _observe_center(
    center: Center, open_center: OpenCenter, keys: _Keys, known: dict[bytes, float], set_id: str
) -> CopyState:
    backend: Backend | None = None
    try:
        backend = open_center(center)
        repo_config, _, _ = read_config(backend)
        mtimes = {
            parsed: info.mtime
            for info in backend.list(layout.SNAPSHOTS)
            if (parsed := layout.parse_hex_name(info.name)) is not None
        }
        ids = list(mtimes)
        missing = [i for i in ids if i not in known]
        if missing:
            repo = keys.open(backend, repo_config)
            for snapshot_id in missing:
                try:
                    record = repo.load_snapshot(snapshot_id)
                except IntegrityError:
                    continue
                snap = Snapshot.decode(record.body, record.id, record.packs)
                known[snapshot_id] = snap.time_ns / 1e9
        times = tuple(sorted(known[i] for i in ids if i in known))
        dated = [i for i in ids if i in known]
        newest = max(dated, key=lambda i: (known[i], i)) if dated else None
        lock, classes = _newest_storage(backend, newest)
        landed = tuple(sorted(((known[i], mtimes[i]) for i in dated), key=lambda p: p[0]))
        return CopyState(
            center=center.id,
            reachable=True,
            exists=True,
            repository_id=repo_config.repository_id.hex(),
            suite=repo_config.suite.name,
            cipher=repo_config.suite.cipher,
            snapshot_times=times,
            lock=None if lock is None else lock[0],
            lock_until=None if lock is None else lock[1],
            lock_detail="" if lock is None else lock[2],
            newest_classes=classes,
            landed=landed,
            drills=_drills(center.id, set_id, backend, repo_config, keys),
        )
    except RepositoryNotFoundError as exc:
        return CopyState(center.id, reachable=True, error=str(exc), exists=False)
    except BackendError as exc:
        return CopyState(center.id, reachable=False, error=str(exc))
    except IntegrityError as exc:
        return CopyState(center.id, reachable=True, error=f"damaged: {exc}", exists=False)
    except DrvaultError as exc:  # wrong password at one center: say so, look at the others
        return CopyState(center.id, reachable=True, error=str(exc), exists=False)
    finally:
        if backend is not None:
            backend.close()
