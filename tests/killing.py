"""Killing a child process with SIGKILL at a chosen point of its work, for the kill tests of
backup, replication and repair (tests/replicate/test_kill.py, tests/test_kill_points.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def kill_when(
    cmd: list[str],
    landed: Callable[[], int],
    at: int,
    extra: float,
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> int:
    """Run ``cmd``, which prints ``go`` when its work starts; SIGKILL it once ``landed()``
    reaches ``at`` and ``extra`` seconds more have passed, unless it ended first. Its exit code
    (``-9`` when killed); any other failure of the child fails the test."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == b"go\n", (line, proc.stderr.read() if proc.stderr else b"")
        deadline = time.monotonic() + 30
        while landed() < at and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(extra)
        proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode in (-signal.SIGKILL, 0), err.decode(errors="replace")
        return proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def count_objects(root: Path) -> Callable[[], int]:
    """Objects visible under ``root``: neither temporary files nor locks."""

    def count() -> int:
        return sum(
            1
            for directory, _subdirs, files in os.walk(root)
            for f in files
            if not f.startswith(".tmp-") and os.path.basename(directory) != "locks"
        )

    return count
