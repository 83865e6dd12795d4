"""Durations as operators write them: ``90s``, ``15m``, ``4h``, ``7d``, ``2w``, ``1h30m``.

A plain number is seconds. Units go from largest to smallest, each at most once.
"""

from __future__ import annotations

import re

from drvault.errors import UsageError

_UNITS: tuple[tuple[str, int], ...] = (
    ("w", 7 * 86400),
    ("d", 86400),
    ("h", 3600),
    ("m", 60),
    ("s", 1),
)
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_PLAIN = re.compile(rf"^{_NUMBER}$")
_COMPOUND = re.compile("^" + "".join(rf"(?:({_NUMBER}){unit})?" for unit, _ in _UNITS) + "$")
_EXAMPLES = "examples: 90s, 15m, 4h, 7d, 2w, 1h30m"


def parse_duration(text: str) -> float:
    """Seconds in ``text``; :class:`UsageError` for anything that is not a duration."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise UsageError(f"empty duration ({_EXAMPLES})")
    if cleaned.startswith("-"):
        raise UsageError(f"negative duration {text!r}")
    if _PLAIN.match(cleaned):
        return float(cleaned)
    m = _COMPOUND.match(cleaned)
    if m is None or not any(m.groups()):
        raise UsageError(f"invalid duration {text!r} ({_EXAMPLES})")
    return float(
        sum(
            float(value) * size
            for value, (_, size) in zip(m.groups(), _UNITS, strict=True)
            if value
        )
    )


def format_duration(seconds: float) -> str:
    """Compact text such as ``4h``, ``1h30m``, ``2d3h``, ``45s``.

    Whole seconds, at most two adjacent units (days down to seconds); a smaller remainder is
    dropped, so ``1d1h1m`` shows as ``1d1h``.
    """
    sign = "-" if seconds < 0 else ""
    rest = round(abs(seconds))
    units = [(unit, size) for unit, size in _UNITS if unit != "w"]
    for i, (unit, size) in enumerate(units):
        if rest >= size:
            text = f"{rest // size}{unit}"
            if i + 1 < len(units):
                next_unit, next_size = units[i + 1]
                remainder = rest % size // next_size
                if remainder:
                    text += f"{remainder}{next_unit}"
            return sign + text
    return "0s"
