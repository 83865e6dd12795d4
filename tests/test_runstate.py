"""Run records: counters across runs, atomic replacement, damaged files read as empty."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drvault.errors import UsageError
from drvault.runstate import RunRecord, load_all, load_record, record_path, record_run


def test_missing_record_is_empty(tmp_path: Path) -> None:
    assert load_record(tmp_path, "core-ledger", "gz-dr2") == RunRecord("core-ledger", "gz-dr2")
    assert load_all(tmp_path) == []


def test_runs_accumulate(tmp_path: Path) -> None:
    first = record_run(
        tmp_path,
        "core-ledger",
        "gz-dr2",
        ok=True,
        bytes_sent=1000,
        seconds=2.5,
        error=None,
        now=1000.0,
    )
    assert first == RunRecord(
        "core-ledger",
        "gz-dr2",
        last_attempt=1000.0,
        last_success=1000.0,
        last_error=None,
        last_bytes=1000,
        bytes_total=1000,
        last_seconds=2.5,
        runs=1,
        failures=0,
    )
    failed = record_run(
        tmp_path,
        "core-ledger",
        "gz-dr2",
        ok=False,
        bytes_sent=300,
        seconds=9.0,
        error="gz-dr2: link lost",
        now=2000.0,
    )
    assert failed.last_attempt == 2000.0
    assert failed.last_success == 1000.0
    assert failed.last_error == "gz-dr2: link lost"
    assert (failed.last_bytes, failed.bytes_total) == (300, 1300)
    assert (failed.runs, failed.failures, failed.last_seconds) == (2, 1, 9.0)
    again = record_run(
        tmp_path,
        "core-ledger",
        "gz-dr2",
        ok=True,
        bytes_sent=0,
        seconds=0.1,
        error=None,
        now=3000.0,
    )
    assert (again.last_success, again.last_error, again.bytes_total) == (3000.0, None, 1300)
    assert (again.runs, again.failures) == (3, 1)
    assert load_record(tmp_path, "core-ledger", "gz-dr2") == again


def test_failure_without_message(tmp_path: Path) -> None:
    rec = record_run(tmp_path, "s", "c", ok=False, bytes_sent=0, seconds=1, error=None, now=5)
    assert rec.last_error and rec.failures == 1 and rec.last_success is None


def test_file_layout_and_atomic_leftovers(tmp_path: Path) -> None:
    record_run(
        tmp_path, "doc-archive", "sh-dr1", ok=True, bytes_sent=5, seconds=1, error=None, now=10
    )
    path = tmp_path / "runs" / "doc-archive--sh-dr1.json"
    assert record_path(tmp_path, "doc-archive", "sh-dr1") == path
    doc = json.loads(path.read_text())
    assert doc["set_id"] == "doc-archive" and doc["bytes_total"] == 5
    assert os.listdir(path.parent) == [path.name]  # no temporary file left


def test_load_all_sorted(tmp_path: Path) -> None:
    for set_id, center in [("b", "x"), ("a", "y"), ("a", "x")]:
        record_run(tmp_path, set_id, center, ok=True, bytes_sent=1, seconds=1, error=None, now=1)
    (tmp_path / "runs" / ".a--x.json.tmp.123").write_text("{")  # a crashed writer's leftover
    (tmp_path / "runs" / "README").write_text("not a record")
    assert [(r.set_id, r.center_id) for r in load_all(tmp_path)] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "x"),
    ]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"[]",
        b'{"set_id": "core-ledger"}',
        b"null",
    ],
)
def test_corrupt_file_reads_empty_and_is_replaced(tmp_path: Path, content: bytes) -> None:
    path = record_path(tmp_path, "core-ledger", "gz-dr2")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    empty = RunRecord("core-ledger", "gz-dr2")
    assert load_record(tmp_path, "core-ledger", "gz-dr2") == empty
    assert load_all(tmp_path) == [empty]
    rec = record_run(
        tmp_path, "core-ledger", "gz-dr2", ok=True, bytes_sent=7, seconds=1, error=None, now=1
    )
    assert (rec.runs, rec.bytes_total) == (1, 7)
    assert load_record(tmp_path, "core-ledger", "gz-dr2") == rec


def _good(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "set_id": "core-ledger",
        "center_id": "gz-dr2",
        "last_attempt": 1.0,
        "last_success": 1.0,
        "last_error": None,
        "last_bytes": 1,
        "bytes_total": 1,
        "last_seconds": 1.0,
        "runs": 1,
        "failures": 0,
    }
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    "changes",
    [
        {"runs": -1},
        {"runs": 1.5},
        {"runs": True},
        {"bytes_total": "12"},
        {"last_attempt": "yesterday"},
        {"last_seconds": None},
        {"last_error": 3},
        {"center_id": "sh-dr1"},  # a record filed under another pair's name
    ],
)
def test_wrong_types_read_empty(tmp_path: Path, changes: dict[str, object]) -> None:
    path = record_path(tmp_path, "core-ledger", "gz-dr2")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_good(**changes)))
    assert load_record(tmp_path, "core-ledger", "gz-dr2") == RunRecord("core-ledger", "gz-dr2")


def test_integral_json_numbers_load_as_floats(tmp_path: Path) -> None:
    path = record_path(tmp_path, "core-ledger", "gz-dr2")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_good(last_attempt=5, last_seconds=2, extra="ignored")))
    rec = load_record(tmp_path, "core-ledger", "gz-dr2")
    assert rec.last_attempt == 5.0 and isinstance(rec.last_attempt, float)
    assert isinstance(rec.last_seconds, float)


def test_unreadable_file_reads_empty(tmp_path: Path) -> None:
    path = record_path(tmp_path, "core-ledger", "gz-dr2")
    path.mkdir(parents=True)  # a directory where the file should be: reading fails
    assert load_record(tmp_path, "core-ledger", "gz-dr2") == RunRecord("core-ledger", "gz-dr2")
    assert load_all(tmp_path) == [RunRecord("core-ledger", "gz-dr2")]


@pytest.mark.parametrize(("set_id", "center"), [("a/b", "c"), ("a", ""), ("", "c"), ("a", "..")])
def test_bad_ids(tmp_path: Path, set_id: str, center: str) -> None:
    with pytest.raises(UsageError):
        load_record(tmp_path, set_id, center)


def test_bad_figures(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        record_run(tmp_path, "s", "c", ok=True, bytes_sent=-1, seconds=1, error=None, now=1)
    with pytest.raises(ValueError):
        record_run(
            tmp_path, "s", "c", ok=True, bytes_sent=1, seconds=float("nan"), error=None, now=1
        )


def test_unwritable_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("a file")
    with pytest.raises(UsageError) as err:
        record_run(state, "s", "c", ok=True, bytes_sent=1, seconds=1, error=None, now=1)
    assert str(state) in str(err.value) and "\n" not in str(err.value)
