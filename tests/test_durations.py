"""Durations: parsing what operators write and formatting what status prints."""

from __future__ import annotations

import pytest

from drvault.durations import format_duration, parse_duration
from drvault.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("4h", 14400.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("90", 90.0),
        ("0.5", 0.5),
        ("1.5h", 5400.0),
        (" 30M ", 1800.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("-5m", "negative duration '-5m'"),
        ("-5", "negative duration"),
        ("5x", "invalid duration '5x'"),
        ("h", "invalid duration"),
        ("1h30", "invalid duration"),
        ("30m1h", "invalid duration"),
        ("1h1h", "invalid duration"),
        ("1:30", "invalid duration"),
        ("inf", "invalid duration"),
        ("nan", "invalid duration"),
        ("5ms", "invalid duration"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(UsageError, match="^" + message) as info:
        parse_duration(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (900, "15m"),
        (5400, "1h30m"),
        (14400, "4h"),
        (183600, "2d3h"),
        (1209600, "14d"),
        (3661, "1h1m"),
        (90061, "1d1h"),
        (59.6, "1m"),
        (-5400, "-1h30m"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1, 45, 60, 90, 900, 3600, 5400, 14400, 86400, 183600, 93600])
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["1m30s", "15m", "4h", "1h30m", "2d3h", "45s", "7d"])
def test_parse_then_format_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
