"""The Prometheus text format, exactly; and a textfile that is never seen half written."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import pytest

from drvault.errors import UsageError
from drvault.promfile import Family, Sample, format_value, render, write_textfile


def _replication_families() -> list[Family]:
    last = "drvault_replication_last_success_timestamp_seconds"
    sent = "drvault_replication_bytes_total"
    return [
        Family(
            last,
            "Unix time of the last successful replication.",
            "gauge",
            (
                Sample(last, (("set", "core-ledger"), ("center", "gz-dr2")), 1795316401.0),
                Sample(last, (("set", "doc-archive"), ("center", "gz-dr2")), 1795312800.5),
            ),
        ),
        Family(
            sent,
            "Bytes sent by replication, all runs.",
            "counter",
            (Sample(sent, (("set", "core-ledger"), ("center", "gz-dr2")), 123456789),),
        ),
        Family("drvault_up", "1 if status ran.", "gauge", (Sample("drvault_up", (), 1),)),
    ]


def test_render_exact() -> None:
    assert render(_replication_families()) == (
        "# HELP drvault_replication_last_success_timestamp_seconds"
        " Unix time of the last successful replication.\n"
        "# TYPE drvault_replication_last_success_timestamp_seconds gauge\n"
        'drvault_replication_last_success_timestamp_seconds{set="core-ledger",center="gz-dr2"}'
        " 1795316401\n"
        'drvault_replication_last_success_timestamp_seconds{set="doc-archive",center="gz-dr2"}'
        " 1795312800.5\n"
        "# HELP drvault_replication_bytes_total Bytes sent by replication, all runs.\n"
        "# TYPE drvault_replication_bytes_total counter\n"
        'drvault_replication_bytes_total{set="core-ledger",center="gz-dr2"} 123456789\n'
        "# HELP drvault_up 1 if status ran.\n"
        "# TYPE drvault_up gauge\n"
        "drvault_up 1\n"
    )


def test_render_nothing() -> None:
    assert render([]) == ""
    assert render([Family("a", "h", "gauge", ())]) == "# HELP a h\n# TYPE a gauge\n"


def test_escaping() -> None:
    text = render(
        [
            Family(
                "m",
                'help with \\ backslash, "quotes" kept\nand a newline',
                "gauge",
                (Sample("m", (("error", 'C:\\dir "x"\nnext'),), 0),),
            )
        ]
    )
    assert text == (
        '# HELP m help with \\\\ backslash, "quotes" kept\\nand a newline\n'
        "# TYPE m gauge\n"
        'm{error="C:\\\\dir \\"x\\"\\nnext"} 0\n'
    )
    assert text.count("\n") == 3


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.0, "0"),
        (-0.0, "0"),
        (42, "42"),
        (42.0, "42"),
        (-3.0, "-3"),
        (0.25, "0.25"),
        (1e-7, "1e-07"),
        (2.0**53, "9007199254740992"),
        (1e300, "1e+300"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_values(value: float, text: str) -> None:
    assert format_value(value) == text
    assert float(text) == value or math.isnan(value)


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "é", "a{b}"])
def test_bad_metric_names(name: str) -> None:
    with pytest.raises(ValueError):
        render([Family(name, "h", "gauge", ())])


def test_good_metric_names() -> None:
    for name in ("a", "_a", ":a", "a:b_c9", "drvault:rpo_ratio"):
        assert f"# TYPE {name} gauge\n" in render([Family(name, "h", "gauge", ())])


@pytest.mark.parametrize(
    "family",
    [
        Family("m", "h", "gauge", (Sample("other", (), 1),)),
        Family("m", "h", "gauge", (Sample("m", (("1x", "v"),), 1),)),
        Family("m", "h", "gauge", (Sample("m", (("__name__", "v"),), 1),)),
        Family("m", "h", "gauge", (Sample("m", (("a", "1"), ("a", "2")), 1),)),
        Family("m", "h", "gauge", (Sample("m", (("a", "1"),), 1), Sample("m", (("a", "1"),), 2))),
        Family("m", "h", "histogram", ()),  # type: ignore[arg-type]
    ],
)
def test_bad_families(family: Family) -> None:
    with pytest.raises(ValueError):
        render([family])


def test_duplicate_family() -> None:
    with pytest.raises(ValueError):
        render([Family("m", "h", "gauge", ()), Family("m", "h", "counter", ())])


def test_write_textfile(tmp_path: Path) -> None:
    target = tmp_path / "drvault.prom"
    write_textfile(target, _replication_families())
    assert target.read_text() == render(_replication_families())
    assert os.stat(target).st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["drvault.prom"]


def _version(n: int) -> list[Family]:
    """A large file whose every line carries ``n``: a torn read would mix or cut versions."""
    samples = tuple(Sample("m", (("i", str(i)),), n) for i in range(10000))
    return [Family("m", f"version {n}", "gauge", samples)]


def test_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "drvault.prom"
    families = [_version(n) for n in range(2)]
    versions = [render(f) for f in families]
    write_textfile(target, families[0])
    stop = threading.Event()
    seen: list[str] = []
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            text = target.read_text()
            seen.append(text[:20])
            if text not in versions:
                bad.append(f"{len(text)} bytes: {text[:40]!r}...{text[-40:]!r}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            write_textfile(target, families[i % 2])
    finally:
        stop.set()
        thread.join()
    assert not bad, bad[:3]
    assert len(seen) > 1
    assert sorted(os.listdir(tmp_path)) == ["drvault.prom"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "drvault.prom"
    write_textfile(target, _version(0))
    before = target.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(UsageError) as err:
        write_textfile(target, _version(1))
    assert str(target) in str(err.value) and "Input/output error" in str(err.value)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["drvault.prom"]


def test_invalid_families_do_not_touch_the_file(tmp_path: Path) -> None:
    target = tmp_path / "drvault.prom"
    target.write_text("old\n")
    with pytest.raises(ValueError):
        write_textfile(target, [Family("bad name", "h", "gauge", ())])
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["drvault.prom"]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no-such-dir"):
        write_textfile(tmp_path / "no-such-dir" / "drvault.prom", [])
