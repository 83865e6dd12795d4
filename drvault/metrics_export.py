"""The Prometheus textfile: replication and compliance state for node_exporter.

``replicate`` and ``status`` both rewrite the whole file from what the state directory holds
(the run records of every (set, center) pair and the last status), so neither overwrites the
other's metrics. Timestamps are exported rather than ages, so a file that cron stopped
refreshing does not freeze a lag: alert on
``time() - drvault_replication_last_success_timestamp_seconds``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from drvault.policy.model import Config
from drvault.promfile import Family, Sample, write_textfile
from drvault.runstate import load_all

STATUS_FILE = "status.json"
DRILLS_FILE = "drills.json"
_VERDICT = {"pass": 0.0, "warn": 1.0, "fail": 2.0, "n/a": -1.0}


def save_status(state_dir: Path, sets: list[dict[str, Any]], now: float) -> None:
    """Keep the last ``status`` result for the metrics file (atomic replace)."""
    _save(state_dir / STATUS_FILE, {"time": now, "sets": sets})


def _save(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(doc, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_status(state_dir: Path, name: str = STATUS_FILE) -> dict[str, Any] | None:
    try:
        doc = json.loads((state_dir / name).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def save_drill_success(state_dir: Path, set_id: str, center: str, finished: float) -> None:
    """Remember the end of a passed drill of the set from the center (atomic replace)."""
    doc = _load_status(state_dir, DRILLS_FILE) or {}
    last = doc.setdefault("last_success", {}).setdefault(set_id, {})
    last[center] = max(float(finished), float(last.get(center, 0.0)))
    _save(state_dir / DRILLS_FILE, doc)


def _drill_family(state_dir: Path) -> Family:
    doc = _load_status(state_dir, DRILLS_FILE) or {}
    name = "drvault_last_drill_success_timestamp_seconds"
    samples = tuple(
        Sample(name, (("set", set_id), ("center", center)), float(finished))
        for set_id, centers in sorted(doc.get("last_success", {}).items())
        for center, finished in sorted(centers.items())
    )
    return Family(
        name, "End of the last passed restore drill, per set and center.", "gauge", samples
    )


def families(config: Config, now: float) -> list[Family]:
    state_dir = Path(config.state_dir)
    records = load_all(state_dir)

    def pair(r: Any) -> tuple[tuple[str, str], ...]:
        return (("set", r.set_id), ("center", r.center_id))

    out = [
        Family(
            "drvault_replication_last_success_timestamp_seconds",
            "Start of the last replication run that completed, per set and center.",
            "gauge",
            tuple(
                Sample(
                    "drvault_replication_last_success_timestamp_seconds", pair(r), r.last_success
                )
                for r in records
                if r.last_success
            ),
        ),
        Family(
            "drvault_replication_last_run_ok",
            "1 if the last replication run succeeded, else 0.",
            "gauge",
            tuple(
                Sample(
                    "drvault_replication_last_run_ok",
                    pair(r),
                    1.0 if r.last_success is not None and r.last_error is None else 0.0,
                )
                for r in records
                if r.last_attempt
            ),
        ),
        Family(
            "drvault_replication_lag_seconds",
            "Seconds since the center was last known to hold everything production had "
            "(at the time this file was written).",
            "gauge",
            tuple(
                Sample("drvault_replication_lag_seconds", pair(r), max(0.0, now - r.last_success))
                for r in records
                if r.last_success
            ),
        ),
        Family(
            "drvault_replication_bytes_total",
            "Bytes sent to the center by replication, over all runs.",
            "counter",
            tuple(
                Sample("drvault_replication_bytes_total", pair(r), float(r.bytes_total))
                for r in records
            ),
        ),
        Family(
            "drvault_replication_failures_total",
            "Replication runs that failed, over all runs.",
            "counter",
            tuple(
                Sample("drvault_replication_failures_total", pair(r), float(r.failures))
                for r in records
            ),
        ),
    ]
    status = _load_status(state_dir)
    if status is not None:
        out.extend(_status_families(status))
    drills = _drill_family(state_dir)
    if drills.samples:
        out.append(drills)
    return out


def _status_families(status: dict[str, Any]) -> list[Family]:
    sets = status.get("sets", [])
    compliant, level, newest, checks = [], [], [], []
    for s in sets:
        labels = (("set", s["set"]),)
        compliant.append(Sample("drvault_compliance_ok", labels, 1.0 if s["compliant"] else 0.0))
        level.append(Sample("drvault_gbt20988_data_level", labels, float(s["level"]["level"])))
        for c in s["centers"]:
            if c.get("newest") is not None:
                newest.append(
                    Sample(
                        "drvault_copy_newest_snapshot_timestamp_seconds",
                        (*labels, ("center", c["center"])),
                        float(c["newest"]),
                    )
                )
        for c in s["checks"]:
            checks.append(
                Sample(
                    "drvault_compliance_check",
                    (*labels, ("check", c["id"]), ("center", c.get("center") or "")),
                    _VERDICT[c["verdict"]],
                )
            )
    return [
        Family(
            "drvault_status_timestamp_seconds",
            "When status last judged compliance.",
            "gauge",
            (Sample("drvault_status_timestamp_seconds", (), float(status.get("time", 0))),),
        ),
        Family(
            "drvault_compliance_ok", "1 if the set is in compliance.", "gauge", tuple(compliant)
        ),
        Family(
            "drvault_gbt20988_data_level",
            "Estimated GB/T 20988 level of the data-backup element.",
            "gauge",
            tuple(level),
        ),
        Family(
            "drvault_copy_newest_snapshot_timestamp_seconds",
            "Time of the newest snapshot found at the center.",
            "gauge",
            tuple(newest),
        ),
        Family(
            "drvault_compliance_check",
            "Each check: 0 pass, 1 warn, 2 fail, -1 not applicable.",
            "gauge",
            tuple(checks),
        ),
    ]


def export(config: Config, now: float) -> None:
    if config.metrics_file:
        write_textfile(Path(config.metrics_file), families(config, now))
