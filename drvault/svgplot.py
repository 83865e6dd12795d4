"""Inline SVG charts as strings: scales, axes, ticks and drawing primitives.

A :class:`Plot` is one chart's pixel frame with the linear maps from data into it, its time and
value axes, and the accessible ``<svg class="chart">`` around its parts. Every string drawn is
escaped. Nothing here knows what is plotted; the pages (:mod:`drvault.report_html`) do.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

# Okabe-Ito: distinguishable with the common colour-vision deficiencies; each series also
# gets its own dash pattern, so a greyscale print still tells them apart.
SERIES = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")
TARGET_STROKE = ' stroke-width="2" stroke-dasharray="7 4"'
# A white outline under a label keeps it readable where it crosses lines and points.
_HALO = ' stroke="#fff" stroke-width="3" paint-order="stroke"'

_HOUR = 3600
_DAY = 86400
_TIME_STEPS: tuple[float, ...] = (60, 300, 900, 1800, _HOUR, 3 * _HOUR, 6 * _HOUR, 12 * _HOUR)
_TIME_STEPS += (_DAY, 2 * _DAY, 7 * _DAY, 14 * _DAY, 30 * _DAY, 91 * _DAY, 182 * _DAY, 365 * _DAY)
_VALUE_STEPS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
_VALUE_STEPS += (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800)
_VALUE_STEPS += (_HOUR, 2 * _HOUR, 3 * _HOUR, 6 * _HOUR, 12 * _HOUR, _DAY, 2 * _DAY, 7 * _DAY)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _step(span: float, steps: Sequence[float], most: int) -> float:
    for step in steps:
        if span / step <= most:
            return step
    return steps[-1] * math.ceil(span / (steps[-1] * most))


def nice_range(lo: float, hi: float) -> tuple[float, float, float]:
    """A duration axis from ``lo`` to ``hi`` (widened to whole steps) and its tick step."""
    if hi - lo <= 0:
        hi = lo + max(abs(lo), 1.0)
    step = _step(hi - lo, _VALUE_STEPS, 5)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step, step


def time_range(times: Iterable[float]) -> tuple[float, float]:
    """The domain of a time axis over ``times``, padded so no point sits on the frame."""
    ts = list(times)
    lo, hi = min(ts), max(ts)
    pad = (hi - lo) * 0.04 if hi > lo else _DAY / 2
    return lo - pad, hi + pad


@dataclass(frozen=True)
class Plot:
    """The plot area of one chart: pixel frame and the linear maps from data into it."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, v: float) -> float:
        return self.bottom - (v - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def svg(self, title: str, desc: str, parts: Iterable[str]) -> str:
        """The chart: ``<svg class="chart">`` with a ``<title>`` and ``<desc>`` for readers."""
        w, h = self.width, self.height
        return (
            f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'viewBox="0 0 {w} {h}" width="{w}" height="{h}">'
            f"<title>{_e(title)}</title><desc>{_e(desc)}</desc>{''.join(parts)}</svg>"
        )

    def time_axis(self) -> str:
        """The x axis over ``x0``..``x1`` as UTC times, dates once a tick step is a day."""
        step = _step(self.x1 - self.x0, _TIME_STEPS, 7)
        fmt = "%Y-%m-%d" if step >= _DAY else "%m-%d %H:%M"
        out = [line(self.left, self.bottom, self.right, self.bottom, "#333")]
        t = math.ceil(self.x0 / step) * step
        while t <= self.x1:
            x = self.x(t)
            label = datetime.fromtimestamp(t, UTC).strftime(fmt)
            out.append(line(x, self.bottom, x, self.bottom + 4, "#333"))
            out.append(text(x, self.bottom + 16, label, "middle"))
            t += step
        out.append(text((self.left + self.right) / 2, self.bottom + 32, "time (UTC)", "middle"))
        return "".join(out)

    def value_axis(self, step: float, title: str, label: Callable[[float], str]) -> str:
        """The y axis over ``y0``..``y1``: a gridline every ``step``, named by ``label``."""
        out = [line(self.left, self.top, self.left, self.bottom, "#333")]
        v = self.y0
        while v <= self.y1 + step / 1000:
            y = self.y(v)
            out.append(line(self.left, y, self.right, y, "#e3e3e3"))
            out.append(text(self.left - 6, y + 4, label(v), "end"))
            v += step
        cy = (self.top + self.bottom) / 2
        out.append(
            f'<text x="14" y="{cy:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {cy:.1f})">{_e(title)}</text>'
        )
        return "".join(out)


def line(x1: float, y1: float, x2: float, y2: float, colour: str, extra: str = "") -> str:
    """A ``<line>``; ``extra`` is pre-escaped attributes (stroke width, dashes)."""
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}"{extra}/>'
    )


def text(x: float, y: float, content: str, anchor: str = "start", extra: str = "") -> str:
    """An escaped ``<text>``; ``extra`` is pre-escaped attributes (fill, halo)."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{_e(content)}</text>'


def target_line(plot: Plot, value: float, label: str, colour: str, css: str) -> str:
    """A dashed horizontal target across the plot, labelled at its right end, as ``<g>``."""
    y = plot.y(value)
    drawn = line(plot.left, y, plot.right, y, colour, TARGET_STROKE)
    caption = text(plot.right - 4, y - 5, label, "end", f' fill="{colour}"{_HALO}')
    return f'<g class="{css}">{drawn}{caption}</g>'
