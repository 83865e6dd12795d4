"""Restore drills: prove that a center gives a snapshot back intact, and how fast.

A drill restores one snapshot from one center into a fresh scratch directory with the restore
service (thawing archived packs first, as ``restore`` does), re-reads every restored file and
checks each chunk against its blob ID, optionally compares the tree with the live source
paths, and judges the total time (thaw + restore + verify) against the RTO. The scratch
directory is removed afterwards (unless kept), whatever happened, Ctrl-C included. The outcome
is a drill record (``drvault.drillrecord``) stored at the drilled center, passed or not, so
``status`` and ``report`` can show when each center last proved itself.

Times, all measured here, around the restore service:

- ``thaw_seconds``: time spent in the thaw hook (``before_fetch``), which waits until every
  archived pack the restore needs is readable;
- ``ttfb_seconds``: from the start of the restore (planning and thaw included) until the
  restore's progress callback first reports file data written: the end of the first write
  task, so at the granularity of one piece (a few MiB) of a pack; None when the snapshot holds
  no file data;
- ``restore_seconds``: the restore without the thaw; ``verify_seconds``: the re-read;
- ``throughput_bps``: bytes written per second of ``restore_seconds``.

A drill fails when the restore or verification finds damage (a mismatch, or a corrupt or
missing object named by the restore: exit 13), when the total exceeds the RTO (exit 4), when a
live file cannot be read for the comparison (exit 4), or with the error's own exit code when
the restore cannot go on (an outage, a full disk). Differences from the live tree are expected
(files change after a backup) and only reported.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from drvault import drillrecord, errors
from drvault.durations import format_duration
from drvault.errors import DrvaultError, IntegrityError, UsageError
from drvault.repository.repository import Repository
from drvault.restore import RestoreStats, default_workers
from drvault.restore import restore as run_restore
from drvault.snapshot import NodeType, display_name
from drvault.snapshot.document import Snapshot
from drvault.snapshots import Entry, load_all, resolve, walk
from drvault.version import __version__

SHOWN = 20  # mismatches and live differences listed by name
_BLOCK = 1 << 20

BeforeFetch = Callable[[list[str]], None]


@dataclass(frozen=True)
class DrillRequest:
    set_id: str = ""  # "" for a drill of a repository URL
    center: str = ""  # the center's id, or the URL
    center_role: str = ""  # production | same-city | remote | ""
    rto: float | None = None  # seconds; None: no time limit
    target: str | None = None  # directory to make the scratch directory in; None: the temp dir
    keep: bool = False  # leave the restored tree in place
    live: bool = False  # also compare with the live source paths


@dataclass(frozen=True)
class DrillOutcome:
    record: dict[str, Any]  # as stored (drvault.drillrecord)
    exit_code: int  # 0 when passed
    stored: str | None  # the record's object path at the center; None if it was not stored
    store_error: DrvaultError | None  # why it was not stored
    # stale scratch directories swept, then the restore's (a socket not recreated, an owner
    # not set)
    warnings: tuple[str, ...]


def center_role(role: str) -> str:
    """The record's role of a configured center's role: archive vaults are remote copies."""
    return {
        "production": "production",
        "same_city_dr": "same-city",
        "remote_dr": "remote",
        "archive_vault": "remote",
    }.get(role, "")


def choose_snapshot(
    repo: Repository, ref: str, damaged: list[IntegrityError], rng: random.Random | None = None
) -> Snapshot:
    """``latest``, ``random`` (any intact snapshot; seeded by the clock unless ``rng``), or an
    ID or unique prefix. Damaged snapshots passed over are collected in ``damaged``."""
    if ref != "random":
        return resolve(repo, ref, damaged)
    snapshots = load_all(repo, damaged)
    if not snapshots:
        if damaged:
            raise damaged[0]
        raise UsageError("the repository has no snapshots")
    return (rng or random.Random(time.time_ns())).choice(snapshots)


def span(seconds: float) -> str:
    """A duration for humans: ``format_duration`` from 10 s up, finer below (``2.5s``,
    ``14.3ms``), so a fast drill still shows what it took."""
    if seconds >= 10:
        return format_duration(seconds)
    if seconds >= 1:
        return f"{seconds:.1f}s"
    return f"{seconds * 1000:.3g}ms"


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def drill(
    repo: Repository,
    snapshot: Snapshot,
    request: DrillRequest,
    *,
    before_fetch: BeforeFetch | None = None,
    progress: Callable[[RestoreStats], None] | None = None,
) -> DrillOutcome:
    """Run one drill of ``snapshot`` (the repository's index loaded) and store its record."""
    started = time.time()
    scratch, swept = _make_scratch(request.target)
    try:
        run = _Run(repo, snapshot, os.fsencode(scratch), before_fetch, progress)
        run.execute(request.live)
    finally:
        if not request.keep:
            remove_tree(scratch)
    finished = time.time()
    reasons, code = run.verdict(request.rto)
    record = run.record(request, scratch, started, finished, reasons)
    stored: str | None = None
    store_error: DrvaultError | None = None
    try:
        stored = drillrecord.write_drill(repo, record)
    except DrvaultError as exc:
        store_error = exc
    swept_notes = tuple(f"removed {p}: scratch space of a drill that was killed" for p in swept)
    return DrillOutcome(record, code, stored, store_error, swept_notes + run.warnings)


SCRATCH_PREFIX = "drvault-drill-"


def _make_scratch(target: str | None) -> tuple[str, list[str]]:
    """A fresh scratch directory named ``drvault-drill-<host>-<pid>-<random>`` under ``target``
    (else the temp dir), and the stale ones swept there first: left by drills on this host
    whose process is gone (killed: no ``finally`` ran)."""
    if target is not None and os.path.lexists(target) and not os.path.isdir(target):
        raise UsageError(f"--target {target}: exists and is not a directory")
    parent = target if target is not None else tempfile.gettempdir()
    host = socket.gethostname().replace("-", "_")
    try:
        if target is not None:
            os.makedirs(target, exist_ok=True)
        swept = _sweep(parent, host)
        path = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{host}-{os.getpid()}-", dir=parent)
        return path, swept
    except OSError as exc:
        raise UsageError(f"--target {parent}: {exc.strerror}") from None


def _sweep(parent: str, host: str) -> list[str]:
    """Remove scratch directories of dead drills of this host under ``parent``."""
    swept: list[str] = []
    for name in os.listdir(parent):
        parts = name[len(SCRATCH_PREFIX) :].split("-")
        if not name.startswith(SCRATCH_PREFIX) or len(parts) != 3 or parts[0] != host:
            continue
        try:
            os.kill(int(parts[1]), 0)
            continue  # that drill still runs
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue  # not a pid, or another user's live process
        path = os.path.join(parent, name)
        remove_tree(path)
        swept.append(path)
    return swept


def remove_tree(path: str) -> None:
    """Remove a restored tree, unreadable and read-only directories included (their modes came
    from the snapshot): every directory is made the owner's to change first, never through a
    symlink. What still cannot be removed stays: a drill never fails for its cleanup."""

    def writable(directory: str) -> None:
        with contextlib.suppress(OSError):
            os.chmod(directory, stat.S_IRWXU)

    if os.path.islink(path) or not os.path.isdir(path):
        return
    writable(path)
    for parent, dirs, _files in os.walk(path):  # top down: a child is opened after its chmod
        for name in dirs:
            child = os.path.join(parent, name)
            if not os.path.islink(child):
                writable(child)
    shutil.rmtree(path, ignore_errors=True)


class _Run:
    """One drill's phases and what they measured."""

    def __init__(
        self,
        repo: Repository,
        snapshot: Snapshot,
        root: bytes,
        before_fetch: BeforeFetch | None,
        progress: Callable[[RestoreStats], None] | None,
    ) -> None:
        self.repo, self.snapshot, self.root = repo, snapshot, root
        self.before_fetch, self.progress = before_fetch, progress
        self.thaw = 0.0
        self.ttfb: float | None = None
        self.restore_seconds = 0.0
        self.verify_seconds = 0.0
        self.files = 0
        self.bytes = 0
        self.verified = 0
        self.mismatched = 0
        self.mismatches: list[str] = []
        self.warnings: tuple[str, ...] = ()
        self.error: DrvaultError | None = None
        self.live: dict[str, Any] | None = None
        self.unreadable: list[str] = []

    def execute(self, live: bool) -> None:
        try:
            self._restore()
            self._verify()
            if live:
                self._compare_live()
        except (DrvaultError, OSError) as exc:
            self.error = exc if isinstance(exc, DrvaultError) else _disk_error(exc)

    def _restore(self) -> None:
        begin = time.monotonic()

        def thaw(paths: list[str]) -> None:
            if self.before_fetch is None:
                return
            t = time.monotonic()
            try:
                self.before_fetch(paths)
            finally:
                self.thaw += time.monotonic() - t

        def progress(stats: RestoreStats) -> None:
            if self.ttfb is None and stats.bytes_written:
                self.ttfb = time.monotonic() - begin
            if self.progress is not None:
                self.progress(stats)

        try:
            result = run_restore(
                self.repo, self.snapshot, self.root, before_fetch=thaw, progress=progress
            )
        finally:
            self.restore_seconds = max(0.0, time.monotonic() - begin - self.thaw)
        self.warnings = result.warnings
        self.files = result.stats.files
        self.bytes = result.stats.bytes_written

    def _files(self) -> Iterator[Entry]:
        return (e for e in walk(self.repo, self.snapshot.tree) if e.node.type == NodeType.FILE)

    def _verify(self) -> None:
        begin = time.monotonic()
        entries = list(self._files())
        try:
            with ThreadPoolExecutor(default_workers(), "drvault-drill-verify") as pool:
                problems = list(pool.map(self._check_file, entries))
        finally:
            self.verify_seconds = time.monotonic() - begin
        for entry, problem in zip(entries, problems, strict=True):
            if problem is None:
                self.verified += 1
                continue
            self.mismatched += 1
            if len(self.mismatches) < SHOWN:
                self.mismatches.append(f"/{display_name(entry.path)}: {problem}")

    def _check_file(self, entry: Entry) -> str | None:
        """Why the restored file differs from the snapshot, or None: every chunk is re-read
        and hashed to its blob ID, and nothing may follow the last."""
        path = os.path.join(self.root, entry.path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            return f"cannot re-read: {exc.strerror}"
        try:
            offset = 0
            for blob_id in entry.node.content:
                index = self.repo.index.get(blob_id)
                if index is None:
                    return f"chunk {blob_id.hex()[:16]} is in no index"
                data = os.pread(fd, index.raw_length, offset)
                if self.repo.blob_id(data) != blob_id:
                    return f"content differs from the snapshot at byte {offset}"
                offset += index.raw_length
            if os.pread(fd, 1, offset):
                return "longer than in the snapshot"
        except OSError as exc:
            return f"cannot re-read: {exc.strerror}"
        finally:
            os.close(fd)
        return None

    def _compare_live(self) -> None:
        compared = differ = missing = 0
        examples: list[str] = []
        for entry in self._files():
            compared += 1
            name = "/" + display_name(entry.path)
            live = b"/" + entry.path
            try:
                same = _same_file(live, os.path.join(self.root, entry.path))
            except FileNotFoundError:
                missing += 1
                if len(examples) < SHOWN:
                    examples.append(f"{name}: missing")
                continue
            except OSError as exc:
                if len(self.unreadable) < SHOWN:
                    self.unreadable.append(f"{name}: {exc.strerror}")
                continue
            if not same:
                differ += 1
                if len(examples) < SHOWN:
                    examples.append(f"{name}: differs")
        self.live = {"compared": compared, "differ": differ, "missing": missing}
        self.live["examples"] = examples

    def verdict(self, rto: float | None) -> tuple[list[str], int]:
        """The reasons the drill failed (none: passed) and its exit code."""
        reasons: list[str] = []
        codes: list[int] = []
        if self.error is not None:
            reasons.append(str(self.error))
            codes.append(self.error.exit_code)
        if self.mismatched:
            reasons.append(f"{self.mismatched} restored file(s) differ from the snapshot")
            codes.append(errors.EXIT_INTEGRITY)
        if self.unreadable:
            reasons.append(f"live file unreadable: {self.unreadable[0]}")
            codes.append(errors.EXIT_NONCOMPLIANT)
        total = self.total
        if rto is not None and total > rto:
            reasons.append(f"took {span(total)}, over the RTO of {span(rto)}")
            codes.append(errors.EXIT_NONCOMPLIANT)
        return reasons, _worst(codes)

    @property
    def total(self) -> float:
        return self.thaw + self.restore_seconds + self.verify_seconds

    def record(
        self,
        request: DrillRequest,
        scratch: str,
        started: float,
        finished: float,
        reasons: list[str],
    ) -> dict[str, Any]:
        return {
            "version": drillrecord.VERSION,
            "set": request.set_id,
            "center": request.center,
            "center_role": request.center_role,
            "snapshot": self.snapshot.id.hex(),
            "snapshot_time": self.snapshot.time_ns / 1e9,
            "started": started,
            "finished": finished,
            "who": who(),
            "target": scratch,
            "scratch": not request.keep,
            "passed": not reasons,
            "reasons": reasons,
            "rto_seconds": request.rto,
            "thaw_seconds": round(self.thaw, 6),
            "ttfb_seconds": None if self.ttfb is None else round(self.ttfb, 6),
            "restore_seconds": round(self.restore_seconds, 6),
            "verify_seconds": round(self.verify_seconds, 6),
            "total_seconds": round(self.total, 6),
            "files": self.files,
            "bytes": self.bytes,
            "throughput_bps": (
                round(self.bytes / self.restore_seconds, 3) if self.restore_seconds > 0 else 0.0
            ),
            "verified_files": self.verified,
            "mismatched_files": self.mismatched,
            "mismatches": self.mismatches,
            "live": self.live,
            "drvault_version": __version__,
        }


def _same_file(live: bytes, restored: bytes) -> bool:
    """Whether the live file has the restored file's bytes (FileNotFoundError: no live file;
    another OSError: it cannot be read). A live entry that is not a regular file differs."""
    st = os.lstat(live)
    if not stat.S_ISREG(st.st_mode):
        return False
    if st.st_size != os.lstat(restored).st_size:
        return False
    with open(live, "rb") as a, open(restored, "rb") as b:
        while True:
            block = a.read(_BLOCK)
            if block != b.read(_BLOCK):
                return False
            if not block:
                return True


def _disk_error(exc: OSError) -> DrvaultError:
    """A failure of the local disk under the scratch directory (full, no permission)."""
    where = f" ({os.fsdecode(exc.filename)})" if exc.filename else ""
    return UsageError(f"scratch directory: {exc.strerror or exc}{where}")


def _worst(codes: list[int]) -> int:
    """Damage first, then whatever stopped the restore, then a missed target."""
    if not codes:
        return errors.EXIT_OK
    if errors.EXIT_INTEGRITY in codes:
        return errors.EXIT_INTEGRITY
    others = [c for c in codes if c != errors.EXIT_NONCOMPLIANT]
    return others[0] if others else errors.EXIT_NONCOMPLIANT
