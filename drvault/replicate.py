"""Keyless replication: copy a production repository to its DR repositories, byte for byte.

Nothing is decrypted or re-encrypted, so a DR copy opens with the production password and anyone
can check each copied object against its SHA-256 name. Every object read at the source is
verified before it is written anywhere: damage never spreads to a DR center.

Each target gets, in this order: config, key slots, packs, index files, forwarding records,
snapshots. A snapshot is the commit point (docs/format.md section 7), written only once every
pack it needs, every index file naming those packs and every forwarding record it was followed
through has landed, so a run killed at any moment leaves no snapshot with
missing data, and the next run resumes from the listings.

A pack several targets lack is read once and put to all of them. At most ``parallel`` objects
are in flight, each held from its read until its last put ends: about ``parallel`` packs in
memory. All targets move through the phases together; one whose backend fails is stopped and
the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from drvault.errors import DrvaultError, IntegrityError, UsageError
from drvault.replication_plan import ReplicationPlan, TargetPlan, plan, read_verified
from drvault.transport.base import Backend, create_object

__all__ = ["ReplicationPlan", "TargetResult", "plan", "replicate"]

MAX_PARALLEL = 6  # packs of 16-32 MiB in flight: bounds memory
PHASES = ("config", "keys", "packs", "index", "forwards", "snapshots")


@dataclass
class TargetResult:
    name: str
    snapshots_sent: int = 0
    snapshots_present: int = 0  # snapshots the target holds after the run
    packs_sent: int = 0
    index_sent: int = 0
    other_sent: int = 0  # config, key slots and forwarding records
    bytes_sent: int = 0  # sum of sizes of objects put at this target in this run
    seconds: float = 0.0
    error: DrvaultError | None = None  # the first error that stopped this target
    skipped: list[str] = field(default_factory=list)  # "snapshots/<id>: reason"


Progress = Callable[[str, TargetResult], None]


def default_parallel(source: Backend, targets: Mapping[str, Backend]) -> int:
    """Packs in flight: what the targets take (the WAN side sets the pace; a local source's
    small connection count must not throttle it), at least 2, at most MAX_PARALLEL."""
    connections = min((b.capabilities.connections for b in targets.values()), default=2)
    return max(2, min(MAX_PARALLEL, connections))


def replicate(
    source: Backend,
    targets: Mapping[str, Backend],
    *,
    parallel: int | None = None,
    progress: Progress | None = None,
) -> dict[str, TargetResult]:
    """Bring every target up to the source; RepositoryNotFoundError if the source holds no
    repository. Target failures are reported in the results, never raised."""
    if parallel is not None and parallel < 1:
        raise UsageError(f"parallel must be at least 1, not {parallel}")
    width = default_parallel(source, targets) if parallel is None else parallel
    run = _Run(source, targets, width, progress)
    run.execute(plan(source, targets))
    return run.results


@dataclass
class _Outcome:
    """One object's transfer: the read failure, or each target's put failure (None: landed)."""

    path: str
    targets: list[str]
    size: int = 0
    error: DrvaultError | None = None
    puts: dict[str, DrvaultError | None] = field(default_factory=dict)


class _Run:
    def __init__(
        self,
        source: Backend,
        targets: Mapping[str, Backend],
        parallel: int,
        progress: Progress | None,
    ) -> None:
        self.source = source
        self.targets = targets
        self.parallel = parallel
        self.progress = progress
        self.start = time.monotonic()
        self.results = {name: TargetResult(name) for name in targets}
        self.live: set[str] = set()
        self.sent: dict[str, set[str]] = {name: set() for name in targets}
        self.failed: dict[str, str] = {}  # source objects that could not be read, and why
        self.lost: dict[str, dict[bytes, str]] = {}  # per target: packs not usable there, why
        self.config = b""

    def execute(self, the_plan: ReplicationPlan) -> None:
        self.config = the_plan.config
        for name, target in the_plan.targets.items():
            result = self.results[name]
            result.skipped.extend(target.skipped)
            result.snapshots_present = target.snapshots_present
            if target.error is not None:
                self._stop(name, target.error)
                continue
            self.live.add(name)
            if target.create:
                try:
                    self.targets[name].create()
                except DrvaultError as exc:
                    self._stop(name, exc)
        writers = self.parallel * max(1, len(self.targets))
        with (
            ThreadPoolExecutor(self.parallel, "drvault-replicate-read") as readers,
            ThreadPoolExecutor(writers, "drvault-replicate-put") as putters,
        ):
            for kind in PHASES:
                if kind == "index":
                    self._note_lost_packs(the_plan)
                elif kind == "snapshots":
                    self._note_lost_index(the_plan)
                    self._note_lost_forwards(the_plan)
                self._phase(kind, the_plan, readers, putters)
        now = time.monotonic() - self.start
        for name in self.live:
            self.results[name].seconds = now
            self._notify(name)

    # -------------------------------------------------------------------------- phases

    def _phase(
        self,
        kind: str,
        the_plan: ReplicationPlan,
        readers: ThreadPoolExecutor,
        putters: ThreadPoolExecutor,
    ) -> None:
        """Send every object of one kind to the live targets that may have it by now."""
        window: set[Future[_Outcome]] = set()
        for path, names in the_plan.jobs(kind):
            going = []
            for name in names:
                if name not in self.live:
                    continue
                reason = self._blocked(kind, the_plan.targets[name], path)
                if reason is None:
                    going.append(name)
                elif kind == "snapshots":
                    self.results[name].skipped.append(f"{path}: {reason}")
            if not going:
                continue
            while len(window) >= self.parallel:
                done, window = wait(window, return_when=FIRST_COMPLETED)
                for future in done:
                    self._settle(kind, future.result())
            window.add(readers.submit(self._transfer, kind, path, going, putters))
        for future in wait(window).done:
            self._settle(kind, future.result())

    def _note_lost_packs(self, the_plan: ReplicationPlan) -> None:
        """After the packs: each target's packs that did not land, and why."""
        for name in self.live:
            self.lost[name] = {
                p: self.failed.get(path, f"{path} not sent")
                for p, path in the_plan.targets[name].packs.items()
                if path not in self.sent[name]
            }

    def _note_lost_index(self, the_plan: ReplicationPlan) -> None:
        """After the index files: packs named by one that did not land, and why."""
        for name in self.live:
            target = the_plan.targets[name]
            unsent = [
                (index, self.failed.get(index) or self._blocked("index", target, index))
                for index in target.index
                if index not in self.sent[name]
            ]
            for index, why in unsent:
                for p in target.index[index]:
                    self.lost[name].setdefault(p, f"{index} not sent: {why or 'failed'}")

    def _note_lost_forwards(self, the_plan: ReplicationPlan) -> None:
        """After the forwarding records: the forwarded names of one that did not land."""
        for name in self.live:
            for path, olds in the_plan.targets[name].forwards.items():
                if path not in self.sent[name]:
                    why = self.failed.get(path, f"{path} not sent")
                    for p in olds:
                        self.lost[name].setdefault(p, why)

    def _blocked(self, kind: str, target: TargetPlan, path: str) -> str | None:
        """Why ``target`` may not get ``path`` (an index file or snapshot) now, or None."""
        lost = self.lost.get(target.name)
        if not lost or kind not in ("index", "snapshots"):
            return None
        packs = target.index[path] if kind == "index" else target.snapshots[path]
        return next((lost[p] for p in packs if p in lost), None)

    # ------------------------------------------------------------------------ transfers

    def _transfer(
        self, kind: str, path: str, names: list[str], putters: ThreadPoolExecutor
    ) -> _Outcome:
        """Read and verify one object, then put it to each target (in the worker threads)."""
        try:
            data = self.config if kind == "config" else read_verified(self.source, path)
        except DrvaultError as exc:
            return _Outcome(path, names, error=exc)
        exclusive = kind in ("config", "keys")

        def put(name: str) -> DrvaultError | None:
            target = self.targets[name]
            try:
                if exclusive:
                    create_object(target, path, data)
                else:
                    target.put(path, data, storage_class=None)
            except DrvaultError as exc:
                return exc
            return None

        if len(names) == 1:
            puts = {names[0]: put(names[0])}
        else:
            puts = dict(zip(names, putters.map(put, names), strict=True))
        return _Outcome(path, names, len(data), puts=puts)

    def _settle(self, kind: str, outcome: _Outcome) -> None:
        """Account for one transfer (in the calling thread: results have one writer)."""
        if isinstance(outcome.error, IntegrityError):
            self.failed[outcome.path] = f"{outcome.path} unusable at source: {outcome.error.reason}"
        elif outcome.error is not None:
            for name in outcome.targets:
                self._stop(name, outcome.error)
        for name, error in outcome.puts.items():
            if error is not None:
                self._stop(name, error)
                continue
            self.sent[name].add(outcome.path)
            result = self.results[name]
            result.bytes_sent += outcome.size
            if kind == "packs":
                result.packs_sent += 1
            elif kind == "index":
                result.index_sent += 1
            elif kind == "snapshots":
                result.snapshots_sent += 1
                result.snapshots_present += 1
            else:
                result.other_sent += 1
            self._notify(name)

    def _stop(self, name: str, error: DrvaultError) -> None:
        if self.results[name].error is None:
            self.results[name].error = error
            self.results[name].seconds = time.monotonic() - self.start
        self.live.discard(name)
        self._notify(name)

    def _notify(self, name: str) -> None:
        if self.progress is not None:
            self.progress(name, self.results[name])
