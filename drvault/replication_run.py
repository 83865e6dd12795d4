"""One run of ``drvault replicate``: every chosen backup set to its DR centers, as cron runs it.

For each set: take the run lock of each (set, center) pair (a pair another run holds is skipped,
not waited on), replicate from the production center to the pairs held, and record every pair's
outcome in the state directory (the metrics file is rendered from those records). A target
that received every snapshot but some had to be held back (a damaged source pack) counts as
failed: the DR copy is not complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from drvault.errors import DrvaultError, IntegrityError, LockedError
from drvault.policy.model import BackupSet, Center, Config
from drvault.replicate import TargetResult, replicate
from drvault.repository.lock import RepoLock
from drvault.runlock import RunLock
from drvault.runstate import record_run
from drvault.transport import Backend

OpenCenter = Callable[[Center, str], Backend]


@dataclass(frozen=True)
class PairOutcome:
    set_id: str
    center: str
    result: TargetResult | None  # None: not attempted (locked) or the source failed
    error: DrvaultError | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def bytes_sent(self) -> int:
        return self.result.bytes_sent if self.result is not None else 0


def replicate_sets(
    config: Config,
    sets: Sequence[BackupSet],
    open_center: OpenCenter,
    *,
    to_centers: Sequence[str] = (),
    parallel: int | None = None,
    on_pair: Callable[[PairOutcome], None] | None = None,
    lock_wait: float = 600.0,
) -> list[PairOutcome]:
    """Replicate each set to its copies (only those in ``to_centers`` when given)."""
    state_dir = Path(config.state_dir)
    outcomes: list[PairOutcome] = []

    def done(outcome: PairOutcome) -> None:
        outcomes.append(outcome)
        if on_pair is not None:
            on_pair(outcome)

    for backup_set in sets:
        names = [c.center for c in backup_set.copies if not to_centers or c.center in to_centers]
        if not names:
            continue
        with ExitStack() as locks:
            held = []
            for name in names:
                try:
                    locks.enter_context(RunLock(state_dir, f"replicate--{backup_set.id}--{name}"))
                except LockedError as exc:
                    done(PairOutcome(backup_set.id, name, None, exc))
                    continue
                held.append(name)
            if held:
                _replicate_set(config, backup_set, held, open_center, parallel, lock_wait, done)
    return outcomes


def _replicate_set(
    config: Config,
    backup_set: BackupSet,
    names: list[str],
    open_center: OpenCenter,
    parallel: int | None,
    lock_wait: float,
    done: Callable[[PairOutcome], None],
) -> None:
    state_dir = Path(config.state_dir)
    production = config.center(backup_set.production)
    started = time.time()

    def failed(name: str, exc: DrvaultError) -> None:
        record_run(
            state_dir, backup_set.id, name, ok=False, bytes_sent=0,
            seconds=time.time() - started, error=str(exc), now=started,
        )  # fmt: skip
        done(PairOutcome(backup_set.id, name, None, exc))

    with ExitStack() as opened:
        source = open_center(production, backup_set.id)
        opened.callback(source.close)
        targets = {}
        for name in names:
            target = open_center(config.center(name), backup_set.id)
            opened.callback(target.close)
            try:
                # A shared lock: a prune at the center (exclusive) must not delete packs this
                # run has sent but no snapshot names yet.
                if not target.exists():
                    target.create()
                lock = RepoLock(target, exclusive=False, command="replicate", wait=lock_wait)
                lock.acquire()
            except DrvaultError as exc:
                failed(name, exc)
                continue
            opened.callback(lock.release)
            targets[name] = target
        if not targets:
            return
        try:
            results = replicate(source, targets, parallel=parallel)
        except DrvaultError as exc:  # the source itself failed: every target is affected
            for name in targets:
                failed(name, exc)
            return
    for name, result in results.items():
        error = result.error
        if error is None and result.skipped:
            error = IntegrityError(
                f"{backup_set.id} at {production.id}",
                f"{len(result.skipped)} snapshot(s) not replicated: {result.skipped[0]}",
            )
        record_run(
            state_dir, backup_set.id, name, ok=error is None, bytes_sent=result.bytes_sent,
            seconds=result.seconds, error=None if error is None else str(error), now=started,
        )  # fmt: skip
        done(PairOutcome(backup_set.id, name, result, error))
