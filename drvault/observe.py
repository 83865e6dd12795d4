"""Look at every center holding a backup set and say what is there: the input of ``status``.

Per center: is it reachable, is the set's repository there (its keyless config names the
repository and the crypto suite), and which snapshots it holds. Snapshot times are inside the
encrypted documents, so they are read with the key, but only once per snapshot: a DR center
holds byte-identical copies of production's snapshots (same names), so listing its
``snapshots/`` is enough for every snapshot production also has; only the others are fetched
there. Damaged snapshots are left out (``check`` and ``scrub`` name them).
"""

from __future__ import annotations

from collections.abc import Callable

from drvault.errors import BackendError, DrvaultError, IntegrityError, RepositoryNotFoundError
from drvault.policy.model import BackupSet, Center, Config
from drvault.policy.state import CopyState, SetState
from drvault.repository import layout
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
        return CopyState(
            center=center.id,
            reachable=True,
            exists=True,
            repository_id=repo_config.repository_id.hex(),
            suite=repo_config.suite.name,
            cipher=repo_config.suite.cipher,
            snapshot_times=times,
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
