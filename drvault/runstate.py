"""What each replication run of a (set, center) pair did, kept across runs for status and metrics.

One JSON file per pair at ``<state_dir>/runs/<set>--<center>.json``, replaced atomically
(temporary file, fsync, rename, fsync of the directory), so a crash or power cut leaves the old
record or the new one. The caller holds the pair's :class:`~drvault.runlock.RunLock`, so no two
processes update one record at once.

A missing file is a pair that never ran; an unreadable or malformed one (a disk error, a hand
edit) reads as an empty record rather than failing the run that wants to update it: the next
update replaces it, and the counters restart from zero (which Prometheus counters tolerate).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drvault.errors import UsageError
from drvault.runlock import check_name, make_private_dirs

RUNS_DIR = "runs"
SUFFIX = ".json"
SEPARATOR = "--"


@dataclass(frozen=True)
class RunRecord:
    set_id: str
    center_id: str
    last_attempt: float | None = None  # Unix time of the last run (``now`` of record_run)
    last_success: float | None = None  # Unix time of the last successful run
    last_error: str | None = None  # None after a success
    last_bytes: int = 0  # bytes sent by the last run
    bytes_total: int = 0  # bytes sent by all runs, failed ones included (a counter)
    last_seconds: float = 0.0  # duration of the last run
    runs: int = 0
    failures: int = 0


def record_path(state_dir: Path, set_id: str, center_id: str) -> Path:
    check_name(set_id, "backup set id")
    check_name(center_id, "center id")
    return Path(state_dir) / RUNS_DIR / _file_name(set_id, center_id)


def _number(value: Any, *, optional: bool = False) -> bool:
    if value is None:
        return optional
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _file_name(set_id: str, center_id: str) -> str:
    return f"{set_id}{SEPARATOR}{center_id}{SUFFIX}"


def _decode(raw: bytes, name: str) -> RunRecord | None:
    """The record in ``raw`` if it is a well-formed one stored under its own file ``name``."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    names = [f.name for f in dataclasses.fields(RunRecord)]
    if not isinstance(doc, dict) or any(n not in doc for n in names):
        return None
    ok = (
        isinstance(doc["set_id"], str)
        and isinstance(doc["center_id"], str)
        and _file_name(doc["set_id"], doc["center_id"]) == name
        and _number(doc["last_attempt"], optional=True)
        and _number(doc["last_success"], optional=True)
        and (doc["last_error"] is None or isinstance(doc["last_error"], str))
        and all(_count(doc[k]) for k in ("last_bytes", "bytes_total", "runs", "failures"))
        and _number(doc["last_seconds"])
    )
    if not ok:
        return None
    values = {n: doc[n] for n in names}
    for key in ("last_attempt", "last_success", "last_seconds"):
        if values[key] is not None:
            values[key] = float(values[key])
    return RunRecord(**values)


def _read(path: Path, set_id: str, center_id: str) -> RunRecord:
    try:
        record = _decode(path.read_bytes(), path.name)
    except OSError:
        record = None
    return record or RunRecord(set_id, center_id)


def load_record(state_dir: Path, set_id: str, center_id: str) -> RunRecord:
    """The pair's record; an empty one if it never ran or its file is damaged."""
    return _read(record_path(state_dir, set_id, center_id), set_id, center_id)


def load_all(state_dir: Path) -> list[RunRecord]:
    """Every pair's record, sorted by (set, center). A damaged file reads as an empty record of
    the pair its name gives (split at the first ``--``)."""
    directory = Path(state_dir) / RUNS_DIR
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{directory}: cannot list run records: {exc.strerror}") from None
    out: list[RunRecord] = []
    for name in names:
        stem = name.removesuffix(SUFFIX)
        set_id, _, center_id = stem.partition(SEPARATOR)
        if name.startswith(".") or stem == name or not set_id or not center_id:
            continue
        try:
            record = _decode((directory / name).read_bytes(), name)
        except OSError:
            record = None
        out.append(record or RunRecord(set_id, center_id))
    return sorted(out, key=lambda r: (r.set_id, r.center_id))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        make_private_dirs(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UsageError(f"{path}: cannot write the run record: {exc.strerror or exc}") from None


def record_run(
    state_dir: Path,
    set_id: str,
    center_id: str,
    *,
    ok: bool,
    bytes_sent: int,
    seconds: float,
    error: str | None,
    now: float,
) -> RunRecord:
    """Add one run at ``now`` (Unix time) to the pair's record, persist it, and return it."""
    if bytes_sent < 0 or not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"bad run figures: bytes_sent={bytes_sent}, seconds={seconds}")
    path = record_path(state_dir, set_id, center_id)
    old = _read(path, set_id, center_id)
    new = dataclasses.replace(
        old,
        last_attempt=now,
        last_success=now if ok else old.last_success,
        last_error=None if ok else (error or "failed (no error message)"),
        last_bytes=bytes_sent,
        bytes_total=old.bytes_total + bytes_sent,
        last_seconds=float(seconds),
        runs=old.runs + 1,
        failures=old.failures + (0 if ok else 1),
    )
    body = json.dumps(dataclasses.asdict(new), indent=1, sort_keys=True) + "\n"
    _write_atomic(path, body.encode())
    return new
