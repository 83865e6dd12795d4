"""Byte counts and byte rates as operators write them: ``64K``, ``16M``, ``1.5GiB``, ``20M/s``.

Units are binary (K = 1024); a plain number is bytes.
"""

from __future__ import annotations

import re

from drvault.errors import UsageError

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMG]?)(?:I?B)?\s*$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _bytes(text: str) -> int | None:
    m = _SIZE.match(text.upper())
    return int(float(m.group(1)) * _UNITS[m.group(2)]) if m else None


def parse_size(text: str) -> int:
    """A byte count: ``64K``, ``16M``, ``1G`` or plain bytes."""
    value = _bytes(text)
    if value is None:
        raise UsageError(f"invalid size {text!r} (examples: 64K, 1M)")
    return value


def parse_rate(text: str) -> int:
    """A positive rate in bytes per second: ``500K``, ``12M``, ``1.5G/s`` or plain bytes."""
    value = _bytes(text.strip().removesuffix("/s").removesuffix("/S"))
    if value is None or value < 1:
        raise UsageError(f"{text!r}: not a rate (examples: 500K, 12M, 1G bytes per second)")
    return value
