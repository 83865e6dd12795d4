"""Restore drills as a library: restore into scratch space, verify every file, time the phases,
judge the RTO, clean up whatever happens, and record the outcome at the repository; drill
records are sealed, content-addressed and read back with damaged ones set aside."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SMALL_CHUNKS, MakeRepo, new_repo, run_drvault

from drvault import drill as drill_module
from drvault import drillrecord, errors
from drvault.backup import BackupRequest, backup
from drvault.drill import DrillRequest, choose_snapshot, drill, remove_tree
from drvault.errors import IntegrityError, UsageError
from drvault.repository import envelope, layout
from drvault.repository.crypto import sha256
from drvault.repository.repository import Repository
from drvault.snapshot.document import Snapshot
from drvault.transport import LocalBackend

KIB = 1 << 10


def make_source(root: Path) -> Path:
    rnd = random.Random(7)
    src = root / "src"
    (src / "db").mkdir(parents=True)
    (src / "db" / "big.bin").write_bytes(rnd.randbytes(300 * KIB))
    (src / "db" / "rows.sql").write_text("".join(f"row {i}\n" for i in range(5000)))
    (src / "empty").write_bytes(b"")
    (src / "ro").mkdir()
    (src / "ro" / "inside.txt").write_text("read-only directory")
    return src


@pytest.fixture
def drilled(make_repo: MakeRepo, tmp_path: Path) -> tuple[Repository, Snapshot, Path]:
    src = make_source(tmp_path)
    repo = make_repo(chunker=SMALL_CHUNKS, pack_size=64 * KIB)
    snapshot = backup(repo, BackupRequest(paths=(os.fsencode(src),))).snapshot
    repo.load_index()
    return repo, snapshot, src


def request(tmp_path: Path, **kw: Any) -> DrillRequest:
    base: dict[str, Any] = {"set_id": "ledger", "center": "gz-prod", "center_role": "production"}
    return DrillRequest(**{**base, "target": str(tmp_path / "scratch"), **kw})


def test_a_drill_restores_verifies_and_records(drilled: Any, tmp_path: Path) -> None:
    repo, snapshot, _ = drilled
    outcome = drill(repo, snapshot, request(tmp_path, rto=3600.0))
    record = outcome.record
    assert outcome.exit_code == 0 and record["passed"] and record["reasons"] == []
    assert set(record) == drillrecord.FIELDS
    assert record["snapshot"] == snapshot.id.hex()
    assert record["files"] == record["verified_files"] == 4
    assert record["bytes"] == 300 * KIB + len("".join(f"row {i}\n" for i in range(5000))) + 19
    assert record["mismatched_files"] == 0 and record["mismatches"] == []
    assert record["ttfb_seconds"] is not None and record["ttfb_seconds"] > 0
    total = record["thaw_seconds"] + record["restore_seconds"] + record["verify_seconds"]
    assert record["total_seconds"] == pytest.approx(total, abs=1e-5)
    assert record["started"] <= record["finished"] and record["throughput_bps"] > 0
    assert record["scratch"] and not os.listdir(tmp_path / "scratch")  # removed again
    assert record["live"] is None and "@" in record["who"]
    # Stored at the repository, sealed, named by its hash, read back as written.
    assert outcome.stored is not None and outcome.stored.startswith(layout.DRILLS)
    raw = repo.backend.get(outcome.stored)
    assert layout.parse_hex_name(outcome.stored) == sha256(raw)
    assert raw[:4] == b"DRVD" and b"ledger" not in raw  # encrypted body
    assert drillrecord.read_drills(repo) == [record]


def test_a_drill_over_its_rto_fails_and_is_still_recorded(drilled: Any, tmp_path: Path) -> None:
    repo, snapshot, _ = drilled
    outcome = drill(repo, snapshot, request(tmp_path, rto=0.000001))
    assert outcome.exit_code == errors.EXIT_NONCOMPLIANT
    assert not outcome.record["passed"]
    [reason] = outcome.record["reasons"]
    assert reason.startswith("took ") and reason.endswith("over the RTO of 0.001ms")
    assert drillrecord.read_drills(repo)[0]["passed"] is False


def test_a_corrupt_data_pack_fails_the_drill_naming_it(drilled: Any, tmp_path: Path) -> None:
    repo, snapshot, _ = drilled
    pack = sorted(i.name for i in repo.backend.list("data/"))[0]
    data = bytearray(repo.backend.get(pack))
    data[len(data) // 2] ^= 0x40
    repo.backend.put(pack, bytes(data))
    outcome = drill(repo, snapshot, request(tmp_path))
    assert outcome.exit_code == errors.EXIT_INTEGRITY
    assert not outcome.record["passed"]
    assert pack in outcome.record["reasons"][0]
    assert drillrecord.read_drills(repo)[0]["reasons"] == outcome.record["reasons"]
    assert not os.listdir(tmp_path / "scratch")


def test_a_restored_file_that_differs_is_a_mismatch(
    drilled: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, snapshot, src = drilled
    real = drill_module.run_restore

    def tampered(repo: Repository, snap: Snapshot, target: bytes, **kw: Any) -> Any:
        result = real(repo, snap, target, **kw)
        victim = os.path.join(target, os.fsencode(src).lstrip(b"/"), b"db", b"big.bin")
        with open(victim, "r+b") as f:
            f.seek(1000)
            f.write(b"X")
        return result

    monkeypatch.setattr(drill_module, "run_restore", tampered)
    outcome = drill(repo, snapshot, request(tmp_path))
    record = outcome.record
    assert outcome.exit_code == errors.EXIT_INTEGRITY
    assert record["mismatched_files"] == 1 and record["verified_files"] == 3
    assert record["mismatches"][0].endswith(
        "db/big.bin: content differs from the snapshot at byte 0"
    )


def test_the_scratch_directory_goes_even_on_ctrl_c(
    drilled: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, snapshot, src = drilled
    real = drill_module.run_restore

    def interrupted(repo: Repository, snap: Snapshot, target: bytes, **kw: Any) -> Any:
        real(repo, snap, target, **kw)
        for dirpath, _dirs, _files in sorted(os.walk(target), reverse=True):
            os.chmod(dirpath, 0o500)  # read-only directories, as a snapshot may hold
        os.chmod(os.path.join(target, os.fsencode(src).lstrip(b"/"), b"ro"), 0)
        raise KeyboardInterrupt

    monkeypatch.setattr(drill_module, "run_restore", interrupted)
    with pytest.raises(KeyboardInterrupt):
        drill(repo, snapshot, request(tmp_path))
    assert not os.listdir(tmp_path / "scratch")
    assert drillrecord.read_drills(repo) == []  # an interrupted drill is no outcome


def test_keep_leaves_the_restored_tree(drilled: Any, tmp_path: Path) -> None:
    repo, snapshot, src = drilled
    outcome = drill(repo, snapshot, request(tmp_path, keep=True))
    target = Path(outcome.record["target"])
    assert not outcome.record["scratch"]
    assert (target / str(src).lstrip("/") / "db" / "big.bin").read_bytes() == (
        src / "db" / "big.bin"
    ).read_bytes()
    remove_tree(str(target))
    assert not target.exists()


def test_live_comparison_reports_changes_without_failing(drilled: Any, tmp_path: Path) -> None:
    repo, snapshot, src = drilled
    (src / "db" / "rows.sql").write_text("changed since the backup\n")
    (src / "empty").unlink()
    outcome = drill(repo, snapshot, request(tmp_path, live=True))
    assert outcome.exit_code == 0 and outcome.record["passed"]
    live = outcome.record["live"]
    assert (live["compared"], live["differ"], live["missing"]) == (4, 1, 1)
    assert sorted(e.rsplit("/", 1)[-1] for e in live["examples"]) == [
        "empty: missing",
        "rows.sql: differs",
    ]


def test_an_unreadable_live_file_fails_the_drill(
    drilled: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, snapshot, _ = drilled

    def unreadable(live: bytes, restored: bytes) -> bool:
        raise PermissionError(13, "Permission denied", live)

    monkeypatch.setattr(drill_module, "_same_file", unreadable)
    outcome = drill(repo, snapshot, request(tmp_path, live=True))
    assert outcome.exit_code == errors.EXIT_NONCOMPLIANT
    assert outcome.record["reasons"][0].startswith("live file unreadable: /")


def test_thaw_time_is_measured_apart(drilled: Any, tmp_path: Path) -> None:
    repo, snapshot, _ = drilled
    asked: list[list[str]] = []

    def slow_thaw(paths: list[str]) -> None:
        asked.append(paths)
        import time

        time.sleep(0.2)

    record = drill(repo, snapshot, request(tmp_path), before_fetch=slow_thaw).record
    assert asked and all(p.startswith("data/") for p in asked[0])
    assert record["thaw_seconds"] >= 0.2
    assert record["ttfb_seconds"] >= 0.2  # the first byte waits for the thaw
    assert record["restore_seconds"] < record["total_seconds"] - 0.2 + 1e-6


def test_snapshot_choice(drilled: Any, tmp_path: Path) -> None:
    repo, first, src = drilled
    (src / "new.txt").write_text("second snapshot")
    second = backup(repo, BackupRequest(paths=(os.fsencode(src),))).snapshot
    damaged: list[IntegrityError] = []
    assert choose_snapshot(repo, "latest", damaged).id == second.id
    assert choose_snapshot(repo, first.id.hex()[:10], damaged).id == first.id
    picks = {choose_snapshot(repo, "random", damaged, random.Random(s)).id for s in range(20)}
    assert picks == {first.id, second.id}
    with pytest.raises(UsageError, match="no snapshot matches"):
        choose_snapshot(repo, "abcdef12", damaged)


def test_a_target_that_is_a_file_is_refused(drilled: Any, tmp_path: Path) -> None:
    repo, snapshot, _ = drilled
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        drill(repo, snapshot, request(tmp_path, target=str(tmp_path / "file")))


# ----------------------------------------------------------------------------- records


def test_damaged_records_are_collected_not_raised(drilled: Any, tmp_path: Path) -> None:
    repo, snapshot, _ = drilled
    good = drill(repo, snapshot, request(tmp_path)).record
    garbage = b"not a drill record"
    repo.backend.put(layout.drill_path(sha256(garbage)), garbage)
    path, raw = drillrecord.seal(repo, good)
    flipped = raw[:-1] + bytes([raw[-1] ^ 1])
    repo.backend.put(path, flipped)  # no longer matches its name
    other = dict(good, finished=good["finished"] + 1)
    wrong_name_path, other_raw = drillrecord.seal(repo, other)
    repo.backend.put(wrong_name_path, other_raw[:40] + b"\x00" + other_raw[41:])
    errors_found: list[IntegrityError] = []
    assert drillrecord.read_drills(repo, errors_found) == [good]
    assert len(errors_found) == 3
    assert {e.name for e in errors_found} >= {path, layout.drill_path(sha256(garbage))}
    assert drillrecord.read_drills(repo) == [good]  # without a list: skipped silently


def test_a_record_is_exactly_the_schema(drilled: Any, tmp_path: Path) -> None:
    repo, snapshot, _ = drilled
    record = drill(repo, snapshot, request(tmp_path)).record
    with pytest.raises(ValueError, match="unexpected"):
        drillrecord.encode({**record, "extra": 1})
    with pytest.raises(ValueError, match="missing"):
        drillrecord.encode({k: v for k, v in record.items() if k != "who"})
    with pytest.raises(ValueError, match="bad passed"):
        drillrecord.encode({**record, "passed": "yes"})
    body = drillrecord.encode(record)
    assert body == json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    # A record sealed for another purpose (an index envelope) is not a drill record.
    raw = envelope.seal(envelope.INDEX_MAGIC, repo.suite, repo.master.enc, [], body)
    with pytest.raises(IntegrityError, match="bad magic"):
        drillrecord.open_drill(repo, layout.drill_path(sha256(raw)), raw)


def test_a_killed_drill_leaves_scratch_space_the_next_one_sweeps(
    tmp_path: Path, password_file: Path
) -> None:
    """SIGKILL in the middle of a drill's restore: no finally runs, so its scratch directory
    stays and no record is written. The next drill there removes it, passes and records."""
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(3)
    for i in range(6):
        (src / f"f{i}.bin").write_bytes(rnd.randbytes(8 << 20))
    repo_path = tmp_path / "repo"
    repo = new_repo(LocalBackend(repo_path), chunker=SMALL_CHUNKS)
    backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    scratch = tmp_path / "drills"
    env = {**os.environ, "DRVAULT_PASSWORD_FILE": str(password_file)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "drvault", "drill", str(repo_path), "--target", str(scratch)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            restored = (
                sum(f.stat().st_size for f in scratch.rglob("*.bin")) if scratch.exists() else 0
            )
            if restored > 4 << 20:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the drill ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (left,) = list(scratch.iterdir())
    assert left.name.startswith(drill_module.SCRATCH_PREFIX)
    assert not list(LocalBackend(repo_path).list(layout.DRILLS))  # nothing recorded

    again = run_drvault(
        "--json", "drill", repo_path, "--target", scratch, cwd=tmp_path, password_file=password_file
    )
    assert again.code == 0, again
    assert f"removed {left}: scratch space of a drill that was killed" in again.err
    assert again.json()["passed"] and again.json()["verified_files"] == 6
    assert list(scratch.iterdir()) == []
    assert len(list(LocalBackend(repo_path).list(layout.DRILLS))) == 1
