"""RunLock: one holder per name, the holder named when busy, freed by SIGKILL, clear errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from drvault.errors import EXIT_LOCKED, EXIT_USAGE, LockedError, UsageError
from drvault.runlock import RunLock

NAME = "replicate--core-ledger--gz-dr2"
BUSY = re.compile(
    rf"^{NAME} is already running \(pid (\d+) on (\S+), since "
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\)$"
)

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from drvault.runlock import RunLock
    lock = RunLock(Path(sys.argv[1]), sys.argv[2])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding NAME's lock in ``tmp_path``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path), NAME],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_lock_file_names_the_holder(tmp_path: Path) -> None:
    with RunLock(tmp_path, NAME) as lock:
        assert lock.held
        assert lock.path == tmp_path / "locks" / f"{NAME}.lock"
        info = json.loads(lock.path.read_text())
        assert info["pid"] == os.getpid()
        assert info["host"] == socket.gethostname()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["since"])
    assert not lock.held
    assert lock.path.exists()  # never unlinked: that would let two holders lock two inodes


def test_dirs_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = os.umask(0o022)
    try:
        with RunLock(state, NAME):
            pass
    finally:
        os.umask(old)
    for directory in (state, state / "locks"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_second_holder_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with RunLock(tmp_path, NAME):
        with pytest.raises(LockedError) as err:
            RunLock(tmp_path, NAME).acquire()
        match = BUSY.match(str(err.value))
        assert match, str(err.value)
        assert int(match.group(1)) == os.getpid()
        assert err.value.exit_code == EXIT_LOCKED == 12
        with RunLock(tmp_path, "replicate--core-ledger--sh-dr1"):
            pass  # another (set, center) pair runs alongside
    with RunLock(tmp_path, NAME):
        pass  # released on exit


def test_busy_names_the_other_process(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LockedError) as err:
        RunLock(tmp_path, NAME).acquire()
    match = BUSY.match(str(err.value))
    assert match, str(err.value)
    assert int(match.group(1)) == holder.pid
    assert match.group(2) == socket.gethostname()
    assert "\n" not in str(err.value)


def test_sigkill_of_the_holder_frees_the_lock(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LockedError):
        RunLock(tmp_path, NAME).acquire()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path, NAME) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_holder_that_has_not_written_yet(tmp_path: Path) -> None:
    with RunLock(tmp_path, NAME) as lock:
        lock.path.write_text("")  # as between the holder's flock and its write
        with pytest.raises(LockedError, match=f"^{NAME} is already running \\(holder unknown"):
            RunLock(tmp_path, NAME).acquire()


def test_lock_is_not_inherited_by_children(tmp_path: Path) -> None:
    with RunLock(tmp_path, NAME):
        child = subprocess.Popen(["sleep", "30"])
    try:
        with RunLock(tmp_path, NAME):
            pass
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("name", ["", "a/b", "../x", "a\0b", ".", ".."])
def test_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError):
        RunLock(tmp_path, name)


def test_state_dir_that_is_a_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a directory")
    with pytest.raises(UsageError) as err:
        RunLock(state, NAME).acquire()
    message = str(err.value)
    assert str(state) in message and "\n" not in message
    assert err.value.exit_code == EXIT_USAGE


_UNWRITABLE = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from drvault.errors import UsageError
    from drvault.runlock import RunLock
    if os.getuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    try:
        RunLock(Path(sys.argv[1]), "replicate--a--b").acquire()
    except UsageError as exc:
        print(exc)
        sys.exit(exc.exit_code)
    """
)


def test_unwritable_state_dir() -> None:
    """As root the child drops to nobody (root writes anywhere) once it has imported drvault."""
    top = Path(tempfile.mkdtemp(prefix="drvault-runlock-"))  # pytest's tmp is root-only
    try:
        os.chmod(top, 0o755)
        state = top / "state"
        state.mkdir(mode=0o555)
        os.chmod(state, 0o555)
        repo = Path(__file__).resolve().parents[1]
        result = subprocess.run(
            [sys.executable, "-c", _UNWRITABLE, str(state)],
            capture_output=True,
            text=True,
            cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"},
        )
    finally:
        shutil.rmtree(top)
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert str(state) in lines[0] and "Permission denied" in lines[0]
