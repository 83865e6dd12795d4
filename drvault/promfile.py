"""Metrics as a Prometheus text-format file for node_exporter's textfile collector.

:func:`render` produces the text exposition format, version 0.0.4: for each family a ``# HELP``
and a ``# TYPE`` line, then one ``name{label="value",...} value`` line per sample, with no
timestamps (the textfile collector refuses them). :func:`write_textfile` replaces the file
atomically: node_exporter reads it at any moment and must see the old file or the new one,
never half of either.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from drvault.errors import UsageError

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INT_LIMIT = 2.0**63  # integral values below this print as integers, larger ones as floats


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    type: Literal["gauge", "counter"]
    samples: tuple[Sample, ...]


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """``3`` for 3.0, ``0.25``, ``1e+300``, ``+Inf``, ``-Inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < _INT_LIMIT:
        return str(int(value))
    return repr(float(value))


def _check_sample(family: Family, sample: Sample) -> str:
    if sample.name != family.name:
        raise ValueError(f"sample {sample.name!r} in family {family.name!r}: names differ")
    seen: set[str] = set()
    for label, _ in sample.labels:
        if not LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"{family.name}: invalid label name {label!r}")
        if label in seen:
            raise ValueError(f"{family.name}: label {label!r} given twice")
        seen.add(label)
    if not sample.labels:
        return sample.name
    pairs = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sample.labels)
    return f"{sample.name}{{{pairs}}}"


def render(families: Iterable[Family]) -> str:
    """The families in the text format; ``ValueError`` on a bad name or a duplicate."""
    lines: list[str] = []
    names: set[str] = set()
    for family in families:
        if not METRIC_NAME.fullmatch(family.name):
            raise ValueError(f"invalid metric name {family.name!r}")
        if family.type not in ("gauge", "counter"):
            raise ValueError(f"{family.name}: unsupported metric type {family.type!r}")
        if family.name in names:
            raise ValueError(f"metric family {family.name!r} given twice")
        names.add(family.name)
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        series: set[frozenset[tuple[str, str]]] = set()
        for sample in family.samples:
            head = _check_sample(family, sample)
            key = frozenset(sample.labels)
            if key in series:
                raise ValueError(f"{head}: the same series twice")
            series.add(key)
            lines.append(f"{head} {format_value(sample.value)}")
    return "".join(line + "\n" for line in lines)


def write_textfile(path: Path, families: Iterable[Family]) -> None:
    """Replace ``path`` with the rendered families: written to ``path.tmp.<pid>`` beside it
    (which the collector ignores: it reads ``*.prom`` only), fsynced, renamed over ``path``."""
    data = render(families).encode()
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        with open(fd, "wb") as f:
            os.fchmod(fd, 0o644)  # whatever the umask: the collector runs as another user
            f.write(data)
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UsageError(f"{path}: cannot write the metrics file: {exc.strerror or exc}") from None
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
