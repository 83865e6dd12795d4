"""A one-line progress display on standard error, shown only on a terminal.

Throttled to a few updates a second; cleared when done. Machines get ``--json`` instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class ProgressLine:
    def __init__(self, enabled: bool | None = None, interval: float = 0.2) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.interval = interval
        self._last = 0.0
        self._start = time.monotonic()
        self._width = 0

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def update(self, text: str | Callable[[], str], *, force: bool = False) -> None:
        """Show ``text``; a callable is called only when a line is due (per-file callers
        pass one, so nothing is formatted between updates)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        shown = text() if callable(text) else text
        line = f"[{self.elapsed():6.1f}s] {shown}"[:200]
        pad = max(0, self._width - len(line))
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()
        self._width = len(line)

    def done(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
