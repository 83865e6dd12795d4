"""Backup or repair in a child process, for tests that kill it with SIGKILL::

    python -m tests.kill_runner backup REPO SRC DELAY
    python -m tests.kill_runner repair TARGET SOURCE DELAY

The repository password (backup) comes from the environment variable DRVAULT_TEST_PASSWORD.
It prints ``go`` when the work starts and ``done`` at the end. Every put at the repository
written to sleeps ``DELAY`` seconds first, so a kill lands between and inside puts."""

from __future__ import annotations

import os
import sys

from drvault.backup import BackupRequest, backup
from drvault.repair import repair
from drvault.repository.repository import Repository
from drvault.transport import LocalBackend
from tests.replicate.runner import Slow


def main(command: str, target: str, other: str, delay: str) -> int:
    slow = Slow(LocalBackend(target), float(delay))
    if command == "backup":
        repo = Repository.open(slow, os.environb[b"DRVAULT_TEST_PASSWORD"])
        print("go", flush=True)
        backup(repo, BackupRequest(paths=(os.fsencode(other),), hostname="prod"))
        print("done", flush=True)
        return 0
    print("go", flush=True)
    result = repair(slow, {"source": LocalBackend(other)})
    print("done" if result.ok else f"error: {result.unrepaired} {result.errors}", flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
