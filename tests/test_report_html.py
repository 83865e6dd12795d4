"""HTML reports of drills and their history: content and escaping, then a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from drvault.report_html import render_drill, render_history

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
HOUR = 3600.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NOW = T0 + 90 * DAY
EVIL = "<script>alert(1)</script>"
REMOTE = "东江湖"
VOID = {"meta", "link", "br", "hr", "img", "input", "wbr", "col", "area", "base", "source"}
SVG_LEAVES = {"line", "circle", "rect", "path", "polyline"}


def drill(**overrides: Any) -> dict[str, Any]:
    started = overrides.pop("started", NOW - DAY)
    record: dict[str, Any] = {
        "version": 1,
        "set": "core-banking",
        "center": "prod-local",
        "center_role": "production",
        "snapshot": "ab" * 32,
        "snapshot_time": started - 3 * HOUR,
        "started": started,
        "finished": started + 2 * HOUR + 5 * 60,
        "who": "ops@dr-host",
        "target": "/srv/drill/scratch",
        "scratch": True,
        "passed": True,
        "reasons": [],
        "rto_seconds": 4 * HOUR,
        "thaw_seconds": 1800.0,
        "ttfb_seconds": 0.85,
        "restore_seconds": 5000.0,
        "verify_seconds": 600.0,
        "total_seconds": 7500.0,
        "files": 120_000,
        "bytes": 5 * 1024**3,
        "throughput_bps": 123.4e6,
        "verified_files": 120_000,
        "mismatched_files": 0,
        "mismatches": [],
        "live": None,
        "drvault_version": "0.1.0",
    }
    record.update(overrides)
    return record


def center(name: str, role: str, city: str, lag: list[list[float]]) -> dict[str, Any]:
    return {"id": name, "role": role, "city": city, "rpo_seconds": None, "lag": lag}


def history(drills: list[dict[str, Any]], centers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": 1,
        "generated": NOW,
        "since": T0,
        "sets": [
            {
                "id": "core-banking",
                "classification": "tier 1 (critical)",
                "rto_seconds": 4 * HOUR,
                "rpo_seconds": 30 * 60.0,
                "verdict": "fail" if any(not d["passed"] for d in drills) else "pass",
                "checks": [
                    {"id": "rto", "verdict": "pass", "reason": "last drill 2h 5m", "center": None},
                    {"id": "rpo", "verdict": "warn", "reason": "lag 41m", "center": REMOTE},
                ],
                "centers": centers,
                "drills": drills,
            }
        ],
    }


def realistic_history() -> dict[str, Any]:
    """Three centers over 90 days: 10 drills (one failed over its RTO) and lag every 6 hours."""
    names = [("prod-local", "production", "Shenzhen"), ("sz-nanshan", "same-city", "Shenzhen")]
    names.append((REMOTE, "remote", "郴州"))
    drills = []
    for i in range(10):
        name, role, _ = names[i % 3]
        over = i == 6
        total = 5 * HOUR + 600 if over else 1.5 * HOUR + 900 * i
        drills.append(
            drill(
                started=T0 + 4 * DAY + 9 * DAY * i,
                center=name,
                center_role=role,
                snapshot=f"{i:02x}" * 32,
                total_seconds=total,
                restore_seconds=total - 900,
                passed=not over,
                reasons=["total 5h 10m exceeds the RTO of 4h"] if over else [],
            )
        )
    # Snapshots every 6 hours; production has them at once, the DR copies minutes later.
    times = [T0 + 6 * HOUR * k for k in range(360)]
    delays = [lambda k: 2.0, lambda k: 90.0 + k % 7 * 30, lambda k: 600.0 + k % 11 * 240]
    centers = [
        center(name, role, city, [[t, t + delay(k)] for k, t in enumerate(times)])
        for (name, role, city), delay in zip(names, delays, strict=True)
    ]
    return history(drills, centers)


class _Balance(HTMLParser):
    """Fails on a closing tag that does not match the innermost open element."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in VOID | SVG_LEAVES, f"<{tag}/> is not a void or SVG leaf element"

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def assert_well_formed(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    checker = _Balance()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    for svg in re.findall(r"<svg .*?</svg>", page, re.S):
        root = ET.fromstring(svg)  # SVG must be well-formed XML too
        assert root.find("{http://www.w3.org/2000/svg}title") is not None
    # Self-contained: nothing to fetch, nothing to run.
    assert not re.search(r"<script|\bsrc=|@import|url\(|https?://(?!www\.w3\.org/2000/svg)", page)
    assert not re.search(r"\b(?:nan|inf)\b", page)


def history_page(doc: dict[str, Any]) -> str:
    page = render_history(doc)
    assert_well_formed(page)
    return page


def test_drill_page_shows_measurements_in_human_units() -> None:
    page = render_drill(drill())
    assert_well_formed(page)
    assert '<div class="banner v-pass" role="status"><span class="word">PASS</span>' in page
    for text in ("850 ms", "2h 5m", "30m", "123.4 MB/s", "5.0 GiB", "5,368,709,120 bytes"):
        assert text in page
    assert "2026-03-31T00:00:00Z" in page  # started, UTC ISO
    assert "abababab" in page and "ab" * 32 in page
    assert "@media print" in page


def test_failing_drill_shows_fail_and_its_reasons() -> None:
    record = drill(
        passed=False,
        reasons=["total 5h 10m exceeds the RTO of 4h", "2 files differ & 1 <missing>"],
        total_seconds=5 * HOUR + 600,
        mismatched_files=2,
        mismatches=["etc/a.conf", "var/<b>.db"],
        live={"compared": 10, "differ": 1, "missing": 0, "examples": ["etc/hosts"]},
    )
    page = render_drill(record)
    assert_well_formed(page)
    banner = re.search(r'<div class="banner v-fail".*?</div>', page, re.S)
    assert banner is not None
    assert '<span class="word">FAIL</span>' in banner.group()
    assert "<li>total 5h 10m exceeds the RTO of 4h</li>" in banner.group()
    assert "<li>2 files differ &amp; 1 &lt;missing&gt;</li>" in banner.group()
    assert "over by 1h 10m" in page
    assert "var/&lt;b&gt;.db" in page and "etc/hosts" in page
    assert "10 files compared: 1 differ, 0 missing" in page


def test_rto_marker_only_when_an_rto_is_set() -> None:
    assert render_drill(drill()).count('class="rto-marker"') == 1
    page = render_drill(drill(rto_seconds=None))
    assert 'class="rto-marker"' not in page
    assert "no RTO target" in page

    doc = history([drill()], [])
    assert history_page(doc).count('class="rto-marker"') == 1
    doc["sets"][0]["rto_seconds"] = None
    assert 'class="rto-marker"' not in history_page(doc)


def test_names_are_escaped_and_unicode_kept() -> None:
    odd = "a&b \"quoted\" 'x'"
    record = drill(center=EVIL, set=odd, who=f"{REMOTE}@host")
    lag = [[T0, T0 + 60.0]]
    doc = history(
        [record], [center(EVIL, "remote", REMOTE, lag), center(REMOTE, "remote", "郴州", lag)]
    )
    doc["sets"][0]["id"] = odd
    for page in (render_drill(record), history_page(doc)):
        assert EVIL not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "a&amp;b &quot;quoted&quot; &#x27;x&#x27;" in page
        assert f"{REMOTE}@host" in page
    assert f'data-center="{REMOTE}"' in history_page(doc)


def test_empty_history_says_no_drills_since() -> None:
    page = history_page(history([], [center("prod-local", "production", "Shenzhen", [])]))
    assert page.count("No drills recorded since 2026-01-01T00:00:00Z (90d ago).") == 3
    assert "No replication lag points recorded since 2026-01-01T00:00:00Z." in page
    assert 'class="chart"' not in page
    assert '<table id="drills">' in page
    assert "Last successful drill</th><td>none since 2026-01-01T00:00:00Z" in page

    no_sets = history_page({"version": 1, "generated": NOW, "since": T0, "sets": []})
    assert "No backup sets and no drills recorded since 2026-01-01T00:00:00Z." in no_sets
    assert "N/A" in no_sets


def test_lag_chart_has_one_series_and_legend_label_per_center() -> None:
    doc = realistic_history()
    page = history_page(doc)
    lag = re.search(r"<svg [^>]*><title>RPO lag per center over time</title>.*?</svg>", page, re.S)
    assert lag is not None
    series = re.findall(r'<g class="series" data-center="([^"]*)"', lag.group())
    assert series == ["prod-local", "sz-nanshan", REMOTE]
    legend = re.findall(r'<g class="legend-item">.*?<text[^>]*>([^<]*)</text>', lag.group())
    assert [label.split(" (")[0] for label in legend] == series
    assert f"{REMOTE} (remote, 郴州): latest" in legend[2]
    colours = re.findall(r'<polyline [^>]*stroke="(#[0-9A-Fa-f]{6})"', lag.group())
    assert len(set(colours)) == 3
    assert 'class="rpo-marker"' in lag.group() and "RPO target 30m" in lag.group()


def test_degenerate_data_draws_without_dividing_by_zero() -> None:
    zero = drill(
        thaw_seconds=0.0, ttfb_seconds=None, restore_seconds=0.0, verify_seconds=0.0,
        total_seconds=0.0, rto_seconds=None, bytes=0, files=0, throughput_bps=0.0,
    )  # fmt: skip
    assert "0 ms" in render_drill(zero)
    same = [[T0 + DAY, T0 + DAY + 60.0]]  # one point, so every lag is equal
    doc = history([zero], [center("prod-local", "production", "Shenzhen", same)])
    doc["since"] = doc["generated"] = T0 + DAY
    page = history_page(doc)
    assert page.count('class="chart"') == 3


def test_several_sets_keep_ids_unique() -> None:
    doc = realistic_history()
    second = dict(doc["sets"][0], id="payments", drills=[], verdict="warn")
    doc["sets"].append(second)
    page = history_page(doc)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert {"drills", "drills-0", "drills-1", "set-0", "set-1"} <= set(ids)
    assert page.count('<tr class="drill">') == 10


# ---- a real browser ----------------------------------------------------------------------

# Chromium writes every page console message (log, warning, error, uncaught exception) to
# stderr as "[pid:tid:time:INFO:CONSOLE:LINE] "text", source: URL (LINE)"; older builds wrote
# "...:ERROR:CONSOLE(LINE)]". The reports run no script, so any console line at all is a
# complaint about the page (a failed load, a parse error). Everything else on stderr is the
# browser's own start-up noise on a machine without a desktop (dbus/bus.cc, bluez, UPower,
# vaapi "drmGetDevices2", gpu sandbox, mojo "Message rejected") and says nothing about the page.
CONSOLE = re.compile(r":[A-Z]+:CONSOLE(?:\(\d+\)|:\d+)\]|Uncaught")


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: run `scripts/bootstrap.sh test` (Debian package)"
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    command += ["--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", *args]
    command.append(page.as_uri())
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


def test_console_filter_catches_a_page_error(tmp_path: Path) -> None:
    """Guards the assertion below: a page that errs must show up through the filter."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><meta charset="utf-8"><script>missing();</script>')
    found = console_lines(chromium(page, tmp_path / "profile", "--dump-dom").stderr)
    assert any("Uncaught ReferenceError: missing is not defined" in line for line in found)


def test_history_renders_in_headless_chromium(tmp_path: Path) -> None:
    doc = realistic_history()
    page = tmp_path / "history.html"
    page.write_text(render_history(doc), encoding="utf-8")

    dumped = chromium(page, tmp_path / "profile", "--dump-dom")
    assert console_lines(dumped.stderr) == []
    dom = dumped.stdout
    table = re.search(r'<table id="drills">.*?</table>', dom, re.S)
    assert table is not None, dom[:2000]
    assert table.group().count('<tr class="drill">') == len(doc["sets"][0]["drills"])
    for d in doc["sets"][0]["drills"]:
        assert d["snapshot"][:8] in table.group()
    assert table.group().count('<span class="badge v-fail">FAIL</span>') == 1
    assert len(re.findall(r'<svg class="chart"', dom)) == 3
    assert REMOTE in dom

    png = tmp_path / "history.png"
    shot = chromium(page, tmp_path / "profile", f"--screenshot={png}", "--window-size=1280,3000")
    assert console_lines(shot.stderr) == []
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 3000)
    # A blank 1280x3000 page compresses to about 17 KB; this one, with its text, tables and
    # charts, to about 400 KB.
    assert len(data) > 60_000, len(data)

    artifacts = Path(os.environ.get("DRVAULT_TEST_ARTIFACTS") or ROOT / "build" / "test-artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, artifacts / "report-history.png")
    shutil.copy(page, artifacts / "report-history.html")
