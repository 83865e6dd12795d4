"""Look at every center holding a backup set and say what is there: the input of ``status``.

Per center: is it reachable, is the set's repository there (its keyless config names the
repository and the crypto suite), and which snapshots it holds. Snapshot times are inside the
encrypted documents, so they are read with the key, but only once per snapshot: a DR center
holds byte-identical copies of production's snapshots (same names), so listing its
``snapshots/`` is enough for every snapshot production also has; only the others are fetched
there. Damaged snapshots are left out (``check`` and ``scrub`` name them).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drvault.errors import BackendError, DrvaultError, IntegrityError, RepositoryNotFoundError
from drvault.objectlock import immutable_copy
from drvault.policy.model import BackupSet, Center, Config
from drvault.policy.state import CopyState, SetState
from drvault.repository import envelope, forward, layout
from drvault.repository.repository import Repository, read_config
from drvault.snapshot.document import Snapshot
from drvault.transport import Backend

OpenCenter = Callable[[Center], Backend]


def observe(
    config: Config, backup_set: BackupSet, open_center: OpenCenter, password: bytes
) -> SetState:
    known: dict[bytes, float] = {}  # snapshot ID -> time, shared across centers
    copies = [
        _observe_center(center, open_center, password, known)
        for center in config.holders(backup_set)
    ]
    return SetState(backup_set.id, tuple(copies))


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
    center: Center, open_center: OpenCenter, password: bytes, known: dict[bytes, float]
) -> CopyState:
    backend: Backend | None = None
    try:
        backend = open_center(center)
        repo_config, _, _ = read_config(backend)
        ids = [
            parsed
            for info in backend.list(layout.SNAPSHOTS)
            if (parsed := layout.parse_hex_name(info.name)) is not None
        ]
        missing = [i for i in ids if i not in known]
        if missing:
            repo = Repository.open(backend, password, load_index=False)
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
