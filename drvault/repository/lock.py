"""Repository locks: objects under ``locks/`` that coordinate processes on different hosts.

Backup and replication only add objects and take a *shared* lock; prune deletes objects and
takes an *exclusive* one. Shared locks coexist; an exclusive lock excludes every other lock.
Locks work without the repository key (replication and keyless prune at a DR center hold none),
so a lock object is plaintext JSON with nothing secret in it.

Lock object ``locks/<32 hex digits>`` (a random name), JSON with sorted keys, no spaces::

    {"command":"prune","created":1717171717.25,"exclusive":true,"host":"db1",
     "nonce":"<32 hex digits>","pid":4242,"refreshed":1717172017.31,"version":1}

    version    1 (an integer; a reader accepts later versions that keep these fields)
    exclusive  true for an exclusive lock (prune), false for a shared one (backup, replicate)
    host       host name of the holder (``socket.gethostname()``)
    pid        process ID of the holder on that host
    command    what the holder runs: "prune", "backup", "replicate", ...
    created    when the lock was taken, Unix seconds (a JSON number, may have a fraction)
    refreshed  when the holder last rewrote the object, Unix seconds; rewritten every
               ``refresh_every`` (default 5 min) while the lock is held
    nonce      32 random hex digits, new for every lock object: tells the holder's object
               from anything else ever written under the same name

Acquiring (:meth:`RepoLock.acquire`):

1. Create our object with an atomic create-if-absent (S3 conditional put, ``O_EXCL``/link
   locally, exclusive rename on SFTP) and read it back to check the nonce.
2. List ``locks/`` and read every other object. Exclusive: any other live lock conflicts.
   Shared: any other live *exclusive* lock conflicts. Stale locks never conflict, and an
   exclusive locker deletes those it sees.
3. On conflict, delete our object, sleep (jittered backoff from 0.5 s, doubling up to 10 s,
   never past the deadline) and start over until ``wait`` has elapsed; then raise
   :class:`~drvault.errors.LockedError` (exit 12) naming the holders.

Why two lockers never both proceed when one is exclusive: each creates its object before it
lists, so of any two, at least one lists after the other's object exists and sees it (the
backend's list must show every completed put, as local disk, SFTP and today's S3 do). The one
that sees a conflict backs off. Both may back off; the jitter separates them on the retry.

A lock is *stale*, and ignored, when it was not refreshed for ``stale_after`` (default 30 min),
or when it was written on this host (same host name) by a process that no longer exists.
Hence: clocks of hosts sharing a repository must agree to well within ``stale_after``, and
hosts sharing a repository need distinct host names (containers with a fixed host name and
separate PID namespaces would judge each other's live locks dead).

A holder whose lock was removed as stale has lost it. The refresher thread notices (the object
is gone or carries another nonce) and stops; a holder also counts its lock as lost once its own
last successful refresh is older than ``stale_after`` (others may remove it from then on), and
then no longer rewrites it. :meth:`RepoLock.check` raises ``LockedError`` in both cases: prune
calls it right before deleting anything. Like any lease, this cannot stop a holder that stalls
for longer than ``stale_after`` between its ``check()`` and its next write.

Objects under ``locks/`` that are not readable lock objects (garbage, missing fields) are left
out of :func:`list_locks`; they block exclusive lockers (we cannot tell whose they are; the
error names them) but not shared ones, and :func:`remove_stale` (``drvault unlock``) deletes
them with the stale locks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from drvault.errors import (
    AlreadyExistsError,
    BackendError,
    LockedError,
    NotFoundError,
    PermanentError,
)
from drvault.repository.layout import LOCKS
from drvault.transport.base import Backend, create_object

VERSION = 1
STALE_AFTER = 1800.0
REFRESH_EVERY = 300.0
_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 10.0


@dataclasses.dataclass(frozen=True)
class LockInfo:
    """One lock object as read from the repository."""

    name: str  # object name, "locks/<32 hex>"
    exclusive: bool
    host: str
    pid: int
    command: str
    created: float  # unix seconds
    refreshed: float  # unix seconds
    nonce: str

    def stale(self, now: float, stale_after: float, *, this_host: str) -> bool:
        """Not refreshed for more than ``stale_after`` seconds, or taken on ``this_host`` by
        a process that no longer exists."""
        if now - self.refreshed > stale_after:
            return True
        return self.host == this_host and not _pid_alive(self.pid)


class _Overwritten(LockedError):
    """Our freshly created lock object carries another nonce."""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False  # 0 and negatives name process groups, never a holder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but not ours (EPERM), or cannot tell: assume alive
    return True


def _encode(info: LockInfo) -> bytes:
    doc = {
        "version": VERSION,
        "exclusive": info.exclusive,
        "host": info.host,
        "pid": info.pid,
        "command": info.command,
        "created": info.created,
        "refreshed": info.refreshed,
        "nonce": info.nonce,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _decode(name: str, raw: bytes) -> LockInfo | None:
    """The lock in ``raw``, or ``None`` when it is not a lock object this version can read."""
    try:
        doc: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    version, pid = doc.get("version"), doc.get("pid")
    if type(version) is not int or version < 1 or type(pid) is not int:
        return None
    times = (doc.get("created"), doc.get("refreshed"))
    if not all(type(t) in (int, float) for t in times):
        return None
    texts = (doc.get("host"), doc.get("command"), doc.get("nonce"))
    if not all(isinstance(t, str) for t in texts) or type(doc.get("exclusive")) is not bool:
        return None
    return LockInfo(
        name=name,
        exclusive=doc["exclusive"],
        host=doc["host"],
        pid=pid,
        command=doc["command"],
        created=float(doc["created"]),
        refreshed=float(doc["refreshed"]),
        nonce=doc["nonce"],
    )


def _scan(backend: Backend, skip: str = "") -> tuple[list[LockInfo], list[str]]:
    """Every lock object but ``skip``: (readable locks, names of unreadable objects).

    An object deleted between list and read is left out; a transient error propagates (an
    outage is no reason to think a repository unlocked)."""
    locks: list[LockInfo] = []
    unreadable: list[str] = []
    for obj in backend.list(LOCKS):
        if obj.name == skip:
            continue
        try:
            raw = backend.get(obj.name)
        except NotFoundError:
            continue
        except PermanentError:
            unreadable.append(obj.name)
            continue
        info = _decode(obj.name, raw)
        if info is None:
            unreadable.append(obj.name)
        else:
            locks.append(info)
    locks.sort(key=lambda lock: (lock.created, lock.name))
    unreadable.sort()
    return locks, unreadable


def _delete(backend: Backend, name: str) -> None:
    with contextlib.suppress(NotFoundError):
        backend.delete(name)


def list_locks(backend: Backend) -> list[LockInfo]:
    """The repository's readable locks, oldest first (unreadable objects are left out)."""
    return _scan(backend)[0]


def remove_stale(backend: Backend, now: float, stale_after: float = STALE_AFTER) -> list[str]:
    """Delete stale locks and unreadable lock objects (``drvault unlock``); their names."""
    locks, unreadable = _scan(backend)
    host = socket.gethostname()
    doomed = [lock.name for lock in locks if lock.stale(now, stale_after, this_host=host)]
    doomed = sorted(doomed + unreadable)
    for name in doomed:
        _delete(backend, name)
    return doomed


def _age(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _holder(lock: LockInfo, now: float) -> str:
    return _one_line(
        f"{lock.command} on host {lock.host} (pid {lock.pid}, for {_age(now - lock.created)})"
    )


class RepoLock:
    """``with RepoLock(backend, exclusive=True, command="prune"):`` holds the repository lock.

    ``clock`` gives the time (timestamps, staleness, the ``wait`` deadline) and ``sleep``
    waits between attempts; tests inject both, and they must agree with each other.
    ``refresh_every`` must be shorter than ``stale_after`` (``ValueError`` otherwise).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        exclusive: bool,
        command: str,
        wait: float = 0.0,
        stale_after: float = STALE_AFTER,
        refresh_every: float = REFRESH_EVERY,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if wait < 0 or stale_after <= 0 or refresh_every <= 0:
            raise ValueError("wait must be >= 0, stale_after and refresh_every > 0")
        if refresh_every >= stale_after:
            raise ValueError(f"refresh_every ({refresh_every}) must be < stale_after")
        self.backend = backend
        self.exclusive = exclusive
        self.command = command
        self.wait = wait
        self.stale_after = stale_after
        self.refresh_every = refresh_every
        self._clock = clock
        self._sleep = sleep
        self._host = socket.gethostname()
        self._state = threading.Lock()
        self._held: LockInfo | None = None  # our object while held (refreshed: last success)
        self._lost: str | None = None  # why we no longer hold it, once we know
        self._foreign = False  # our name now holds someone else's object: never delete it
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    @property
    def name(self) -> str | None:
        """Our lock object's name while held."""
        held = self._held
        return held.name if held else None

    # ------------------------------------------------------------------ acquire

    def acquire(self) -> None:
        if self._held is not None:
            raise RuntimeError("this RepoLock is already held")
        deadline = self._clock() + self.wait
        delay = _BACKOFF_FIRST
        while True:
            mine, blockers = self._attempt()
            if mine is not None:
                self._start(mine)
                return
            remaining = deadline - self._clock()
            if remaining <= 0:
                waited = f" (waited {_age(self.wait)})" if self.wait else ""
                raise LockedError(f"repository is locked by {'; '.join(blockers)}{waited}")
            self._sleep(min(delay * random.uniform(0.5, 1.0), remaining))
            delay = min(delay * 2, _BACKOFF_MAX)

    def _attempt(self) -> tuple[LockInfo | None, list[str]]:
        """One round: our lock if we hold it now, else the descriptions of what blocks us."""
        now = self._clock()
        mine = LockInfo(
            name=LOCKS + secrets.token_hex(16),
            exclusive=self.exclusive,
            host=self._host,
            pid=os.getpid(),
            command=self.command,
            created=now,
            refreshed=now,
            nonce=secrets.token_hex(16),
        )
        try:
            create_object(self.backend, mine.name, _encode(mine))
        except AlreadyExistsError:
            raise  # a random 128-bit name already taken: never ours to delete
        except BaseException:
            self._discard(mine.name)  # the put may have landed before the error
            raise
        try:
            back = _decode(mine.name, self.backend.get(mine.name))
            if back is None or back.nonce != mine.nonce:
                raise _Overwritten(
                    f"{mine.name}: our new lock object was overwritten at once; the storage's "
                    "create-if-absent is not atomic, so it cannot hold repository locks"
                )
            blockers = self._conflicts(mine)
            if blockers:
                _delete(self.backend, mine.name)
                return None, blockers
        except _Overwritten:
            raise  # the object under our name is someone else's now
        except BaseException:
            self._discard(mine.name)
            raise
        return mine, []

    def _discard(self, name: str) -> None:
        with contextlib.suppress(BackendError):
            _delete(self.backend, name)

    def _conflicts(self, mine: LockInfo) -> list[str]:
        locks, unreadable = _scan(self.backend, skip=mine.name)
        now = self._clock()
        blockers: list[str] = []
        for lock in locks:
            if lock.stale(now, self.stale_after, this_host=self._host):
                if self.exclusive:
                    _delete(self.backend, lock.name)
            elif self.exclusive or lock.exclusive:
                blockers.append(_holder(lock, now))
        if self.exclusive:
            blockers += [
                f"an unreadable lock object {name} (`drvault unlock` removes it)"
                for name in unreadable
            ]
        return blockers

    # ------------------------------------------------------------------ holding

    def _start(self, mine: LockInfo) -> None:
        with self._state:
            self._held, self._lost, self._foreign = mine, None, False
        self._stop = threading.Event()
        self._refresher = threading.Thread(
            target=self._refresh_loop,
            args=(mine, self._stop),
            name=f"drvault-lock-refresh-{mine.name}",
            daemon=True,
        )
        self._refresher.start()

    def _refresh_loop(self, mine: LockInfo, stop: threading.Event) -> None:
        while not stop.wait(self.refresh_every):
            try:
                if self._verify(mine) is not None:
                    return
                now = self._clock()
                fresh = dataclasses.replace(mine, refreshed=now)
                self.backend.put(mine.name, _encode(fresh))
            except BackendError:
                continue  # try again next time; past stale_after the lock counts as lost
            except Exception as exc:  # a bug must not leave a holder that thinks it holds
                self._mark_lost(f"lock refresher failed: {exc!r}")
                return
            with self._state:
                if self._held is not None and self._held.name == mine.name:
                    self._held = fresh

    def _verify(self, mine: LockInfo) -> str | None:
        """Why our lock is lost (and now marked so), or ``None`` while we still hold it."""
        with self._state:
            if self._lost is not None:
                return self._lost
            held = self._held
        last = held.refreshed if held is not None else mine.refreshed
        idle = self._clock() - last
        if idle > self.stale_after:
            return self._mark_lost(
                f"repository lock {mine.name} was not refreshed for {_age(idle)} "
                f"(stale after {_age(self.stale_after)}): another process may have taken over"
            )
        try:
            back = _decode(mine.name, self.backend.get(mine.name))
        except NotFoundError:
            return self._mark_lost(
                f"repository lock {mine.name} was removed by another process "
                "(it judged the lock stale)"
            )
        if back is None or back.nonce != mine.nonce:
            return self._mark_lost(
                f"repository lock {mine.name} was replaced by another process's object",
                foreign=True,
            )
        return None

    def _mark_lost(self, reason: str, *, foreign: bool = False) -> str:
        with self._state:
            if self._lost is None:
                self._lost = reason
            self._foreign = self._foreign or foreign
            reason = self._lost
        self._stop.set()
        return reason

    def check(self) -> None:
        """Raise ``LockedError`` unless we still hold our lock (one read of our object)."""
        held = self._held
        if held is None:
            raise RuntimeError("check() on a RepoLock that is not held")
        reason = self._verify(held)
        if reason is not None:
            raise LockedError(f"{reason}; stopping before changing the repository")

    # ------------------------------------------------------------------ release

    def release(self) -> None:
        """Stop refreshing and delete our object. Idempotent; a failed delete is raised and
        retried by the next call (left alone, the object goes stale)."""
        held = self._held
        if held is None:
            return
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()  # no rewrite may land after our delete
            self._refresher = None
        if not self._foreign:
            _delete(self.backend, held.name)
        with self._state:
            self._held, self._lost, self._foreign = None, None, False

    def __enter__(self) -> RepoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is not None:
            with contextlib.suppress(BackendError):  # the body's error matters more
                self.release()
            return
        self.release()
