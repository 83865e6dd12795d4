"""Self-contained HTML reports of restore drills and their audit history.

Two pure renderers, data in and one HTML5 document out: :func:`render_drill` for one drill
record and :func:`render_history` for every set's compliance checks, drills and replication lag
across its centers. A page needs nothing but a browser opening the file: the CSS is inline, the
charts are inline SVG drawn here, and there is no script, font or image to fetch. Every string
from the data is escaped. Times are UTC ISO 8601 with an age relative to the page's reference
time (the drill's end, or the history's ``generated``), so a page reads the same whenever it is
opened; the verdict is always spelled out, never shown by colour alone.

The charts are the pages' own (RTO achieved, RPO lag, drill timeline, drill stages); the
drawing they share (scales, axes, lines, text) is :mod:`drvault.svgplot`.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from drvault import svgplot
from drvault.durations import format_duration
from drvault.progress import human_bytes

_VERDICTS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "n/a": "N/A"}
_RANK = {"n/a": 0, "pass": 1, "warn": 2, "fail": 3}
_PASS_COLOUR = "#2e7d32"
_FAIL_COLOUR = "#c62828"
_MAX_LISTED = 50
_MAX_DOTS = 400  # a longer lag series is drawn as its line only, to keep the page small

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC",
  "Microsoft YaHei", "PingFang SC", sans-serif; color: #1a1a1a; max-width: 1100px;
  margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.3rem; border-bottom: 2px solid #333; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .3rem; }
p.meta { color: #444; margin: .2rem 0; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { border: 1px solid #bbb; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #eef0f3; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
caption { text-align: left; color: #444; padding: .2rem 0; }
tbody th[colspan] { background: #dde3ea; font-size: 1.05em; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: .92em; }
.age { color: #555; white-space: nowrap; }
time { white-space: nowrap; }
.badge { display: inline-block; padding: 0 .45rem; border: 1px solid; border-radius: 3px;
  font-weight: 700; font-size: .85em; }
.v-pass { background: #e3f4e6; color: #14532d; border-color: #2e7d32; }
.v-warn { background: #fff4d6; color: #6b4500; border-color: #b7791f; }
.v-fail { background: #fde4e4; color: #7f1d1d; border-color: #c62828; }
.v-na { background: #eceff1; color: #37474f; border-color: #78909c; }
.banner { border: 2px solid; border-left-width: 12px; padding: .6rem 1rem; margin: 1rem 0; }
.banner .word { font-size: 1.6rem; font-weight: 800; letter-spacing: .05em; margin-right: .6rem; }
ul.reasons { margin: .2rem 0 0 1.2rem; padding: 0; }
.empty { padding: .8rem 1rem; border: 1px dashed #888; background: #fafafa; }
svg.chart { display: block; width: 100%; max-width: 900px; height: auto; margin: .3rem 0 1rem;
  border: 1px solid #ddd; background: #fff; }
svg.chart text { font-family: inherit; font-size: 11px; }
svg.chart text:not([fill]) { fill: #222; }
@media print {
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { max-width: none; margin: 0; font-size: 10pt; }
  nav { display: none; }
  a { color: inherit; text-decoration: none; }
  h2, h3 { break-after: avoid; }
  tr, svg.chart, .banner, .empty { break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


# ---- text --------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    """``850 ms``, ``4.2 s``, ``45 s``, ``2h 5m``, ``3d 4h``."""
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 0.9995:
        return f"{sign}{round(s * 1000)} ms"
    if s < 9.95:
        return f"{sign}{s:.1f} s"
    if s < 59.5:
        return f"{sign}{round(s)} s"
    return sign + re.sub(r"(?<=[a-z])(?=\d)", " ", format_duration(s))


def _age(t: float, now: float) -> str:
    delta = now - t
    if abs(delta) < 1:
        return "at reference time"
    return f"{_duration(delta)} ago" if delta > 0 else f"{_duration(-delta)} in the future"


def _time(t: float) -> str:
    return f'<time datetime="{_iso(t)}">{_iso(t)}</time>'


def _when(t: float, now: float) -> str:
    return f'{_time(t)} <span class="age">({_age(t, now)})</span>'


def _mbps(bytes_per_second: float) -> str:
    mb = bytes_per_second / 1e6
    return f"{mb:.1f} MB/s" if mb >= 1 else f"{mb:.2f} MB/s"


def _css(verdict: str) -> str:
    return verdict if verdict in ("pass", "warn", "fail") else "na"


def _badge(verdict: str) -> str:
    word = _VERDICTS.get(verdict, verdict.upper())
    return f'<span class="badge v-{_css(verdict)}">{_e(word)}</span>'


def _drill_verdict(record: Mapping[str, Any]) -> str:
    return "pass" if record["passed"] else "fail"


def _reasons(reasons: Sequence[str]) -> str:
    if not reasons:
        return ""
    return '<ul class="reasons">' + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>"


def _listing(items: Sequence[str]) -> str:
    """Up to ``_MAX_LISTED`` items as a list, then how many more the record holds."""
    shown = "".join(f"<li><code>{_e(item)}</code></li>" for item in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    tail = f"<li>… and {more} more (see the JSON record)</li>" if more > 0 else ""
    return f"<ul>{shown}{tail}</ul>"


def _short(text: str, units: int = 18) -> str:
    """``text`` cut to ``units`` columns, East Asian wide characters counting two."""
    used = 0
    for i, ch in enumerate(text):
        used += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if used > units:
            return text[:i] + "…"
    return text


def _vs_rto(total: float, rto: float | None) -> str:
    if rto is None:
        return f"{_duration(total)} (no RTO target)"
    share = f"{total / rto:.0%} of RTO {_duration(rto)}" if rto > 0 else f"RTO {_duration(rto)}"
    over = f", over by {_duration(total - rto)}" if total > rto else ""
    return f"{_duration(total)} ({share}{over})"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # An empty icon: otherwise a browser may ask for /favicon.ico next to the file.
        '<link rel="icon" href="data:,">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table of pre-escaped cells; a header ending in ``|num`` right-aligns its column."""
    nums = [h.endswith("|num") for h in head]
    ths = "".join(
        f'<th{" class=num" if n else ""} scope="col">{h.removesuffix("|num")}</th>'
        for h, n in zip(head, nums, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if n else ''}>{c}</td>" for c, n in zip(row, nums, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>"


# ---- charts ------------------------------------------------------------------------------


def _tick(seconds: float) -> str:
    """A duration axis label: ``0`` for zero, else as :func:`_duration`."""
    return _duration(seconds) if seconds else "0"


def _marker(x: float, y: float, passed: bool, tip: str) -> str:
    """A filled circle for a pass, a cross for a failure: the shape says it, not the colour."""
    if passed:
        shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{_PASS_COLOUR}"/>'
    else:
        a, b, c, e = x - 5, x + 5, y - 5, y + 5
        d = f"M{a:.1f},{c:.1f}L{b:.1f},{e:.1f}M{a:.1f},{e:.1f}L{b:.1f},{c:.1f}"
        shape = f'<path d="{d}" stroke="{_FAIL_COLOUR}" stroke-width="3"/>'
    return f'<g class="drill-{"pass" if passed else "fail"}"><title>{_e(tip)}</title>{shape}</g>'


def _pass_fail_legend(x: float, y: float) -> str:
    return (
        _marker(x, y - 4, True, "passed")
        + svgplot.text(x + 10, y, "passed")
        + _marker(x + 80, y - 4, False, "failed")
        + svgplot.text(x + 90, y, "failed")
    )


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _tip(d: Mapping[str, Any]) -> str:
    word = "PASS" if d["passed"] else "FAIL"
    return f"{_iso(d['started'])} {d['center']}: {word}, total {_duration(d['total_seconds'])}"


def _rto_chart(
    drills: Sequence[Mapping[str, Any]], rto: float | None, span: tuple[float, float]
) -> str:
    totals = [float(d["total_seconds"]) for d in drills]
    y0, y1, step = svgplot.nice_range(0, max([*totals, rto or 0]) * 1.1)
    plot = svgplot.Plot(760, 290, 80, 740, 20, 235, *span, y0, y1)
    parts = [plot.value_axis(step, "total drill time", _tick), plot.time_axis()]
    if rto is not None:
        label = f"RTO target {_duration(rto)}"
        parts.append(svgplot.target_line(plot, rto, label, _FAIL_COLOUR, "rto-marker"))
    for d in drills:
        parts.append(
            _marker(plot.x(d["started"]), plot.y(d["total_seconds"]), d["passed"], _tip(d))
        )
    parts.append(_pass_fail_legend(plot.left + 10, 282))
    target = f"RTO target {_duration(rto)}" if rto is not None else "no RTO target set"
    return plot.svg("RTO achieved vs target", f"{len(drills)} drills; {target}", parts)


def _lag_chart(
    centers: Sequence[Mapping[str, Any]], rpo: float | None, span: tuple[float, float]
) -> str:
    series = [
        sorted((float(snap), float(landed) - float(snap)) for snap, landed in c["lag"])
        for c in centers
    ]
    lags = [v for points in series for _, v in points]
    targets = [t for t in (rpo, *(c.get("rpo_seconds") for c in centers)) if t is not None]
    y0, y1, step = svgplot.nice_range(min(0.0, *lags), max([*lags, *targets]) * 1.1)
    legend_top = 280  # below the time axis and its title
    height = legend_top + 18 * len(centers)
    plot = svgplot.Plot(760, height, 80, 740, 20, 225, *span, y0, y1)
    parts = [plot.value_axis(step, "lag (landed − snapshot)", _tick), plot.time_axis()]
    if rpo is not None:
        parts.append(
            svgplot.target_line(plot, rpo, f"RPO target {_duration(rpo)}", "#333", "rpo-marker")
        )
    for i, (center, points) in enumerate(zip(centers, series, strict=True)):
        name = str(center["id"])
        colour = svgplot.SERIES[i % len(svgplot.SERIES)]
        dash = svgplot.DASHES[i % len(svgplot.DASHES)]
        stroke = f' stroke-width="2.5" stroke-dasharray="{dash}"' if dash else ' stroke-width="2.5"'
        own = center.get("rpo_seconds")
        if own is not None and own != rpo:
            label = f"RPO {_short(name)} {_duration(own)}"
            parts.append(svgplot.target_line(plot, own, label, colour, "rpo-marker"))
        if points:
            xy = [(plot.x(t), plot.y(v)) for t, v in points]
            dots = "".join(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}">'
                f"<title>{_e(name)}: snapshot {_iso(t)}, lag {_duration(v)}</title></circle>"
                for (x, y), (t, v) in zip(xy, points, strict=True)
                if len(points) <= _MAX_DOTS
            )
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(
                f'<g class="series" data-center="{_e(name)}"><polyline points="{coords}" '
                f'fill="none" stroke="{colour}"{stroke}/>{dots}</g>'
            )
            worst = max(v for _, v in points)
            summary = f"latest {_duration(points[-1][1])}, worst {_duration(worst)}"
        else:
            summary = "no lag points"
        where = ", ".join(str(x) for x in (center.get("role"), center.get("city")) if x)
        y = legend_top + 18 * i - 4
        swatch = svgplot.line(plot.left, y - 4, plot.left + 30, y - 4, colour, stroke)
        text = svgplot.text(plot.left + 38, y, _short(f"{name} ({where}): {summary}", 105))
        parts.append(f'<g class="legend-item">{swatch}{text}</g>')
    desc = f"replication lag of {len(centers)} centers against snapshot time"
    return plot.svg("RPO lag per center over time", desc, parts)


def _timeline_chart(
    drills: Sequence[Mapping[str, Any]], centers: Sequence[str], span: tuple[float, float]
) -> str:
    rows = list(dict.fromkeys([*centers, *(str(d["center"]) for d in drills)]))
    height = 30 * len(rows) + 90
    plot = svgplot.Plot(760, height, 150, 740, 20, 30 * len(rows) + 30, *span, 0, len(rows))
    parts = [plot.time_axis()]
    for i, name in enumerate(rows):
        y = plot.top + 30 * i + 15
        parts.append(svgplot.line(plot.left, y, plot.right, y, "#e3e3e3"))
        label = svgplot.text(plot.left - 8, y + 4, _short(name), "end")
        parts.append(f"<g><title>{_e(name)}</title>{label}</g>")
        parts += [
            _marker(plot.x(d["started"]), y, d["passed"], _tip(d))
            for d in drills
            if d["center"] == name
        ]
    parts.append(_pass_fail_legend(plot.left + 10, height - 8))
    desc = f"pass and fail of {len(drills)} drills at {len(rows)} centers"
    return plot.svg("Drill timeline", desc, parts)


def _stages_chart(record: Mapping[str, Any]) -> str:
    """One horizontal bar of the drill's stages, with the RTO as a vertical line."""
    total = float(record["total_seconds"])
    stages = [
        ("thaw wait", float(record["thaw_seconds"]), "#56B4E9"),
        ("restore", float(record["restore_seconds"]), "#0072B2"),
        ("verify", float(record["verify_seconds"]), "#009E73"),
    ]
    rest = total - sum(s for _, s, _ in stages)
    if rest > 0.005 * total:
        stages.append(("other (planning, listing)", rest, "#9e9e9e"))
    length = sum(s for _, s, _ in stages)
    rto = record.get("rto_seconds")
    x0, x1, step = svgplot.nice_range(0, max(total, length, rto or 0) * 1.08)
    height = 150 + 18 * len(stages)
    plot = svgplot.Plot(760, height, 30, 730, 40, 90, x0, x1, 0, 1)
    parts, start = [], 0.0
    for name, seconds, colour in stages:
        x, w = plot.x(start), plot.x(start + seconds) - plot.x(start)
        tip = f"{name}: {_duration(seconds)}"
        parts.append(
            f'<rect class="stage" x="{x:.1f}" y="{plot.top}" width="{w:.1f}" '
            f'height="{plot.bottom - plot.top}" fill="{colour}" stroke="#fff">'
            f"<title>{_e(tip)}</title></rect>"
        )
        start += seconds
    parts.append(svgplot.line(plot.left, plot.bottom, plot.right, plot.bottom, "#333"))
    v = x0
    while v <= x1 + step / 1000:
        parts.append(svgplot.line(plot.x(v), plot.bottom, plot.x(v), plot.bottom + 4, "#333"))
        parts.append(svgplot.text(plot.x(v), plot.bottom + 16, _tick(v), "middle"))
        v += step
    parts.append(
        svgplot.text((plot.left + plot.right) / 2, plot.bottom + 32, "elapsed time", "middle")
    )
    if rto is not None:
        rx = plot.x(rto)
        line = svgplot.line(
            rx, plot.top - 14, rx, plot.bottom + 4, _FAIL_COLOUR, svgplot.TARGET_STROKE
        )
        label = f"RTO target {_duration(rto)}"
        text = svgplot.text(rx, plot.top - 18, label, "middle", f' fill="{_FAIL_COLOUR}"')
        parts.append(f'<g class="rto-marker">{line}{text}</g>')
    for i, (name, seconds, colour) in enumerate(stages):
        y = plot.bottom + 58 + 18 * i
        share = f" ({seconds / total:.0%} of total)" if total > 0 else ""
        swatch = f'<rect x="{plot.left}" y="{y - 10}" width="14" height="12" fill="{colour}"/>'
        parts.append(
            swatch + svgplot.text(plot.left + 22, y, f"{name}: {_duration(seconds)}{share}")
        )
    against = f" against RTO target {_duration(rto)}" if rto is not None else ", no RTO target"
    return plot.svg("Drill stages", f"total {_duration(total)}{against}", parts)


# ---- pages -------------------------------------------------------------------------------


def _banner(verdict: str, text: str, reasons: Sequence[str]) -> str:
    word = _VERDICTS.get(verdict, verdict.upper())
    return (
        f'<div class="banner v-{_css(verdict)}" role="status"><span class="word">{_e(word)}</span>'
        f"{_e(text)}{_reasons(reasons)}</div>"
    )


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table of labels and pre-escaped values."""
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{v}</td></tr>' for k, v in rows)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def _snapshot_cell(record: Mapping[str, Any]) -> str:
    snapshot = str(record["snapshot"])
    age = float(record["started"]) - float(record["snapshot_time"])
    return (
        f'<code title="{_e(snapshot)}">{_e(snapshot[:8])}</code><br>'
        f"{_time(record['snapshot_time'])}<br>"
        f'<span class="age">{_e(_duration(age))} old at the drill</span>'
    )


def render_drill(record: Mapping[str, Any], *, now: float | None = None) -> str:
    """One drill as a page: what was restored where and by whom, the verdict with its reasons,
    the measurements, and the drill's stages as one bar against the RTO.

    Ages are relative to ``now``, by default the drill's end.
    """
    ref = float(record["finished"]) if now is None else now
    verdict = _drill_verdict(record)
    where = f"{record['set']} at {record['center']}"
    rto = record.get("rto_seconds")
    total = float(record["total_seconds"])
    reasons = list(record["reasons"]) or ([] if record["passed"] else ["no reason recorded"])
    summary = f"Restore drill of {where} " + ("passed." if record["passed"] else "failed.")
    snapshot = str(record["snapshot"])
    scratch = (
        "scratch directory, removed after the drill"
        if record["scratch"]
        else "kept after the drill"
    )
    header = _facts([
        ("Backup set", _e(record["set"])),
        ("Center", f"{_e(record['center'])} ({_e(record['center_role'] or 'role not recorded')})"),
        ("Snapshot", f"<code>{_e(snapshot[:8])}</code> taken {_when(record['snapshot_time'], ref)}"
                     f"<br><code>{_e(snapshot)}</code>"),
        ("Drill started", _when(record["started"], ref)),
        ("Drill finished", _when(record["finished"], ref)),
        ("Run by", _e(record["who"])),
        ("Restored to", f"<code>{_e(record['target'])}</code> ({scratch})"),
        ("drvault version", _e(record["drvault_version"])),
    ])  # fmt: skip
    ttfb = record.get("ttfb_seconds")
    files, verified = int(record["files"]), int(record["verified_files"])
    mismatches: list[str] = list(record["mismatches"])
    live = record.get("live")
    live_text = (
        "not performed"
        if live is None
        else f"{live['compared']:,} files compared: {live['differ']:,} differ, "
        f"{live['missing']:,} missing"
    )
    measurements = _table(
        ["Measurement", "Value|num", "Detail"],
        [
            ["Thaw wait (cold storage)", _duration(record["thaw_seconds"]), ""],
            ["Time to first byte", "not measured" if ttfb is None else _duration(ttfb), ""],
            ["Restore", _duration(record["restore_seconds"]), ""],
            ["Verify", _duration(record["verify_seconds"]), ""],
            ["Total", _duration(total), _e(_vs_rto(total, rto))],
            ["RTO target", "not set" if rto is None else _duration(rto), ""],
            ["Data restored", human_bytes(record["bytes"]), f"{record['bytes']:,} bytes"],
            ["Files restored", f"{files:,}", ""],
            ["Throughput", _mbps(record["throughput_bps"]), "1 MB = 10<sup>6</sup> bytes"],
            ["Verified files", f"{verified:,} of {files:,}", ""],
            ["Mismatched files", f"{record['mismatched_files']:,}",
             "listed below" if mismatches else ""],
            ["Live comparison", _e(live_text), ""],
        ],
    )  # fmt: skip
    body = [
        f"<h1>Restore drill: {_e(where)}</h1>",
        f'<p class="meta">Ages are relative to {_e(_iso(ref))}'
        f"{' (the end of the drill)' if now is None else ''}.</p>",
        _banner(verdict, summary, reasons),
        header,
        "<h2>Measurements</h2>",
        measurements,
        "<h2>Time spent per stage</h2>",
        _stages_chart(record),
    ]
    if mismatches:
        body += [f"<h2>Mismatched files ({len(mismatches):,})</h2>", _listing(mismatches)]
    if live is not None:
        body += [
            "<h2>Comparison with the live source</h2>",
            f"<p>{_e(live_text)}.</p>",
            _listing(list(live["examples"])) if live["examples"] else "",
        ]
    return _page(f"drvault drill {where}: {_VERDICTS[verdict]}", "\n".join(body))


def _last_success(drills: Sequence[Mapping[str, Any]], since: float, now: float) -> str:
    passed = [d for d in drills if d["passed"]]
    if not passed:
        return f"none since {_e(_iso(since))}"
    last = max(passed, key=lambda d: float(d["finished"]))
    return f"{_when(last['finished'], now)} at {_e(last['center'])}"


def _target(seconds: float | None) -> str:
    return "not set" if seconds is None else _duration(seconds)


def _set_section(index: int, s: Mapping[str, Any], since: float, now: float) -> str:
    drills: list[Mapping[str, Any]] = list(s["drills"])
    centers: list[Mapping[str, Any]] = list(s["centers"])
    failed = sum(1 for d in drills if not d["passed"])
    where = "; ".join(
        f"{c['id']} ({', '.join(str(x) for x in (c.get('role'), c.get('city')) if x)})"
        for c in centers
    )
    facts = _facts([
        ("Verdict", _badge(s["verdict"])),
        ("Classification", _e(s["classification"])),
        ("Last successful drill", _last_success(drills, since, now)),
        ("Drills", f"{len(drills)} ({len(drills) - failed} passed, {failed} failed)"),
        ("RTO target", _target(s.get("rto_seconds"))),
        ("RPO target", _target(s.get("rpo_seconds"))),
        ("Centers", _e(where) or "none"),
    ])  # fmt: skip
    checks = _table(
        ["Check", "Center", "Verdict", "Reason"],
        [
            [_e(c["id"]), _e(c["center"] if c.get("center") is not None else "whole set"),
             _badge(c["verdict"]), _e(c["reason"])]
            for c in s["checks"]
        ],
    ) if s["checks"] else _empty("No compliance checks recorded.")  # fmt: skip
    no_drills = _empty(f"No drills recorded since {_iso(since)} ({_age(since, now)}).")
    has_lag = any(c["lag"] for c in centers)
    times = [since, now, *(float(d["started"]) for d in drills)]
    times += [float(snap) for c in centers for snap, _ in c["lag"]]
    span = svgplot.time_range(times)
    names = [str(c["id"]) for c in centers]
    parts = [
        f'<section id="set-{index}">',
        f"<h2>Set {_e(s['id'])}</h2>",
        facts,
        "<h3>Compliance checks</h3>",
        checks,
        "<h3>RTO achieved vs target</h3>",
        _rto_chart(drills, s.get("rto_seconds"), span) if drills else no_drills,
        "<h3>RPO lag per center over time</h3>",
        _lag_chart(centers, s.get("rpo_seconds"), span)
        if has_lag
        else _empty(f"No replication lag points recorded since {_iso(since)}."),
        "<h3>Drill timeline</h3>",
        _timeline_chart(drills, names, span) if drills else no_drills,
        f'<p>Every drill of this set: <a href="#drills-{index}">drill log</a>.</p>',
        "</section>",
    ]
    return "\n".join(parts)


_DRILL_COLUMNS = (
    "Started (UTC), run by",
    "Center",
    "Snapshot (id, time, age)",
    "Total time vs RTO",
    "Restored (bytes, files)",
    "Throughput (MB/s)",
    "Result",
)


def _drill_rows(index: int, s: Mapping[str, Any], since: float, now: float) -> str:
    """The drill log's ``<tbody>`` for one set, oldest drill first."""
    drills = s["drills"]
    head = f"Set {s['id']}: {len(drills)} drills, oldest first"
    rows = [f'<tr><th colspan="{len(_DRILL_COLUMNS)}" scope="rowgroup">{_e(head)}</th></tr>']
    if not drills:
        text = f"No drills recorded since {_iso(since)} ({_age(since, now)})."
        rows.append(f'<tr><td colspan="{len(_DRILL_COLUMNS)}">{_e(text)}</td></tr>')
    for d in drills:
        rto = d.get("rto_seconds")
        cells = [
            f"{_when(d['started'], now)}<br>{_e(d['who'])}",
            f"{_e(d['center'])}<br>{_e(d['center_role'])}",
            _snapshot_cell(d),
            _e(_vs_rto(float(d["total_seconds"]), rto)),
            f"{_e(human_bytes(d['bytes']))}<br>{int(d['files']):,} files",
            _e(_mbps(d["throughput_bps"])),
            _badge(_drill_verdict(d)) + _reasons(d["reasons"]),
        ]
        rows.append('<tr class="drill">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<tbody id="drills-{index}">{"".join(rows)}</tbody>'


def render_history(doc: Mapping[str, Any]) -> str:
    """Every set's audit history as one page: an overall verdict, then per set its summary,
    compliance checks and charts (RTO achieved, RPO lag per center, drill timeline), and at
    the end the log of every drill (``<table id="drills">``, one ``<tbody>`` per set).

    Ages are relative to ``doc["generated"]``.
    """
    now, since = float(doc["generated"]), float(doc["since"])
    sets: list[Mapping[str, Any]] = list(doc["sets"])
    overall = max((str(s["verdict"]) for s in sets), key=lambda v: _RANK.get(v, 3), default="n/a")
    counts = {v: sum(1 for s in sets if s["verdict"] == v) for v in _VERDICTS}
    tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "none"
    not_passing = [
        f"{s['id']}: {_VERDICTS.get(s['verdict'], s['verdict'])}"
        + "".join(
            f"; {c['id']}{'' if c.get('center') is None else ' at ' + str(c['center'])}"
            f" {_VERDICTS.get(c['verdict'], c['verdict'])}: {c['reason']}"
            for c in s["checks"]
            if c["verdict"] in ("warn", "fail")
        )
        for s in sets
        if s["verdict"] in ("warn", "fail")
    ]
    body = [
        "<h1>Restore drills and DR compliance history</h1>",
        f'<p class="meta">Generated {_e(_iso(now))}; covers {_e(_iso(since))} to '
        f"{_e(_iso(now))} ({_e(_duration(now - since))}). "
        "Ages are relative to the generation time.</p>",
        _banner(
            overall, f"{len(sets)} {'set' if len(sets) == 1 else 'sets'}: {tally}.", not_passing
        ),
    ]
    if not sets:
        body.append(_empty(f"No backup sets and no drills recorded since {_iso(since)}."))
        return _page("drvault drill and compliance history", "\n".join(body))
    summary = _table(
        ["Set", "Classification", "Verdict", "Last successful drill", "Drills (passed / failed)",
         "RTO target", "RPO target"],
        [
            [f'<a href="#set-{i}">{_e(s["id"])}</a>', _e(s["classification"]),
             _badge(s["verdict"]), _last_success(s["drills"], since, now),
             f"{sum(1 for d in s['drills'] if d['passed'])} / "
             f"{sum(1 for d in s['drills'] if not d['passed'])}",
             _target(s.get("rto_seconds")), _target(s.get("rpo_seconds"))]
            for i, s in enumerate(sets)
        ],
    )  # fmt: skip
    body += ["<h2>Summary</h2>", summary]
    body += [_set_section(i, s, since, now) for i, s in enumerate(sets)]
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in _DRILL_COLUMNS)
    tbodies = "".join(_drill_rows(i, s, since, now) for i, s in enumerate(sets))
    body += [
        "<h2>Drill log</h2>",
        f'<table id="drills"><thead><tr>{head}</tr></thead>{tbodies}</table>',
    ]
    return _page("drvault drill and compliance history", "\n".join(body))
