"""Replication in a child process, for tests that kill it: ``python -m tests.replicate.runner
SOURCE TARGET_URL DELAY`` prints ``go`` when it starts replicating and ``done`` at the end.

Each put at the target sleeps ``DELAY`` seconds first, so a kill lands between and inside puts
in every phase. SFTP targets take their key and known_hosts from DRVAULT_SFTP_* variables.
"""

from __future__ import annotations

import sys
import time

from drvault.replicate import replicate
from drvault.transport import LocalBackend, open_backend
from drvault.transport.base import Backend
from drvault.transport.stack import Wrapper


class Slow(Wrapper):
    """Every put takes ``delay`` seconds longer: widens windows for kills and overlap."""

    def __init__(self, inner: Backend, delay: float) -> None:
        super().__init__(inner)
        self.delay = delay

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        time.sleep(self.delay)
        self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)


def main(source: str, target: str, delay: str) -> int:
    dr = Slow(open_backend(target), float(delay))
    print("go", flush=True)
    result = replicate(LocalBackend(source), {"dr": dr}, parallel=2)["dr"]
    print("done" if result.error is None else f"error: {result.error}", flush=True)
    return 0 if result.error is None else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
