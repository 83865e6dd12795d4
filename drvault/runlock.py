"""One run at a time per job: a non-blocking ``flock`` on ``<state_dir>/locks/<name>.lock``.

Cron and systemd timers start ``drvault replicate`` every few minutes; a run that is still
copying when the next one starts must not be joined by a second copier of the same (set,
center). :class:`RunLock` takes an exclusive ``flock`` without waiting: if another process
holds it, :class:`~drvault.errors.LockedError` (exit 12) names the holder's pid, host and start
time, which the holder wrote into the lock file after locking.

The kernel drops an ``flock`` when its holder's last descriptor closes, so a holder killed with
SIGKILL, or a crashed host's reboot, frees the lock with no stale-lock cleanup. The file is
never deleted (unlinking a lock file lets two processes lock two different inodes); the lock
descriptor is close-on-exec, so child processes (ssh, hooks) never inherit the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from drvault.errors import LockedError, UsageError

LOCKS_DIR = "locks"
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def check_name(name: str, what: str = "lock name") -> str:
    """``name`` if it can be one file name inside the state directory; else ``UsageError``."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise UsageError(f"{what} {name!r}: must be non-empty, without '/' or NUL")
    return name


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700 (whatever the umask)."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return  # a file in the way fails the open below it, naming the path
    except FileNotFoundError:
        if path.parent == path:
            raise
        make_private_dirs(path.parent)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            return
    os.chmod(path, 0o700)


def utc_iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _at(exc: OSError, path: Path) -> str:
    """`` (at PARENT)`` when the failure is on another path than ``path`` (a parent)."""
    return f" (at {exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""


def _holder(fd: int) -> str:
    """``pid P on HOST, since T`` from the lock file, or a placeholder while it is unwritten."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        text = f"pid {int(info['pid'])} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown: it has not written its pid yet"
    return " ".join(text.split())  # one line, whatever the file holds


class RunLock:
    """``with RunLock(state_dir, "replicate--core-ledger--gz-dr2"):`` runs the body alone."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.name = check_name(name)
        self.path = Path(state_dir) / LOCKS_DIR / f"{name}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.name}: lock already held by this object")
        try:
            make_private_dirs(self.path.parent)
            fd = os.open(self.path, _OPEN_FLAGS, 0o600)
        except OSError as exc:
            raise UsageError(
                f"{self.path}: cannot create the lock file: {exc.strerror or exc}"
                f"{_at(exc, self.path)}; is the state directory writable?"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LockedError(f"{self.name} is already running ({holder})") from None
        except OSError as exc:
            os.close(fd)
            raise UsageError(f"{self.path}: cannot lock ({exc.strerror or exc})") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_iso(time.time())}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise UsageError(f"{self.path}: cannot write the lock file ({exc.strerror})") from None
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
