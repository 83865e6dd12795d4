"""``drvault forget``, ``prune`` and ``unlock`` through the command line, in subprocesses: one-line
errors and exit codes, the ``--json`` documents, repository locks between processes, and the
``--config`` path over three local centers (retention per copy, forget and prune per center,
DR copies pruned without the key unless ``--keyed``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    CHEAP_KDF_OPTION,
    PASSWORD,
    CliResult,
    RunCli,
    assert_one_error_line,
    run_drvault,
)

from drvault.errors import EXIT_LOCKED, EXIT_USAGE
from drvault.repository import layout
from tests.sites import Site

DAY = 86_400


def when(day: int) -> str:
    """Noon UTC of day ``day`` of March 2024: distinct calendar days in any time zone."""
    return f"2024-03-{day:02d}T12:00:00Z"


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, result
    assert "Traceback" not in result.err
    return result


@dataclass
class World:
    """A repository on the test's site with four snapshots, one a day, of a changing file."""

    site: Site
    url: str
    src: Path
    ids: list[str]  # oldest first
    run: RunCli


@pytest.fixture
def world(run_cli: RunCli, site: Site, tmp_path: Path) -> World:
    url = site.url("repo")
    ok(run_cli("init", url, "--kdf", CHEAP_KDF_OPTION))
    src = tmp_path / "src"
    src.mkdir()
    ids = []
    for day in range(1, 5):
        (src / "file").write_bytes(os.urandom(20_000) + b"day %d" % day)
        made = ok(run_cli("--json", "backup", url, src, "--time", when(day))).json()
        ids.append(made["snapshot"]["id"])
    return World(site, url, src, ids, run_cli)


def snapshot_ids(world: World) -> list[str]:
    return [s["id"] for s in ok(world.run("--json", "snapshots", world.url)).json()]


# ------------------------------------------------------------------------------ errors


def test_an_empty_policy_is_a_usage_error(world: World) -> None:
    result = world.run("forget", world.url)
    assert_one_error_line(result, EXIT_USAGE, "no retention rule")
    assert snapshot_ids(world) == world.ids
    assert world.site.objects(prefix=layout.LOCKS) == []  # the lock taken meanwhile is gone


USAGE_ERRORS = [
    (("forget", "--set", "ledger", "--keep-last", "1"), "--set and --center need --config"),
    (("forget", "--center", "dr", "--keep-last", "1"), "--set and --center need --config"),
    (("prune", "--set", "ledger"), "--set, --center and --keyed need --config"),
    (("prune", "--keyed"), "--set, --center and --keyed need --config"),
    (("prune", "--keyless", "--keyed"), "give --keyless or --keyed, not both"),
    (("forget", "--keep-within", "soon"), "soon"),
    (("prune", "--lock-wait-x"), "--lock-wait-x"),
    (("prune", "--max-unused", "five"), "--max-unused wants a percentage"),
    (("prune", "--max-unused", "5"), "--max-unused wants a percentage"),
    (("prune", "--max-repack", "lots"), "invalid size 'lots'"),
]


def test_usage_errors_are_one_line(world: World) -> None:
    before = world.site.objects()
    for args, needle in USAGE_ERRORS:
        result = world.run(args[0], world.url, *args[1:])
        assert_one_error_line(result, EXIT_USAGE, needle)
    assert world.site.objects() == before


HOLD = """\
import sys
from drvault.repository.lock import RepoLock
from drvault.transport import open_backend
from drvault.transport.options import from_environment
lock = RepoLock(open_backend(sys.argv[1], from_environment()), exclusive=True, command=sys.argv[2])
lock.acquire()
print("held", flush=True)
sys.stdin.read()
lock.release()
"""


@contextmanager
def held_elsewhere(world: World, command: str) -> Iterator[int]:
    """Another process holds the repository's exclusive lock; yields its pid."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRVAULT_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, world.url, command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**env, **world.site.env},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
        yield proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0


def test_prune_waits_for_the_lock_then_names_the_holder(world: World) -> None:
    ok(world.run("forget", world.url, "--keep-last", "1"))
    before = world.site.objects()
    with held_elsewhere(world, "holder-under-test") as pid:
        start = time.monotonic()
        result = world.run("--lock-wait", "1s", "prune", world.url)
        waited = time.monotonic() - start
        line = assert_one_error_line(
            result, EXIT_LOCKED, "holder-under-test", socket.gethostname(), f"pid {pid}"
        )
        assert "waited 1 s" in line
        assert waited >= 1.0
        backup = world.run("--lock-wait", "0s", "backup", world.url, world.src)
        assert_one_error_line(backup, EXIT_LOCKED, "holder-under-test")
    assert world.site.objects() == before  # nothing deleted, nothing added
    ok(world.run("--lock-wait", "1s", "prune", world.url))  # and once it is released, it runs


def test_unlock_removes_stale_and_unreadable_locks_only(world: World) -> None:
    now = time.time()

    def lock_doc(host: str, pid: int, refreshed: float) -> bytes:
        doc = {
            "command": "backup",
            "created": refreshed,
            "exclusive": False,
            "host": host,
            "nonce": "0" * 32,
            "pid": pid,
            "refreshed": refreshed,
            "version": 1,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    garbage = layout.LOCKS + "a" * 32
    old = layout.LOCKS + "b" * 32  # another host, last refreshed 20 minutes ago
    fresh = layout.LOCKS + "c" * 32  # another host, refreshed just now
    world.site.write(garbage, b"not a lock")
    world.site.write(old, lock_doc("elsewhere", 4242, now - 1200))
    world.site.write(fresh, lock_doc("elsewhere", 4243, now))

    blocked = world.run("--lock-wait", "0s", "prune", world.url, "--dry-run")
    assert_one_error_line(blocked, EXIT_LOCKED, "unreadable lock object", "drvault unlock")

    assert ok(world.run("--json", "unlock", world.url)).json() == {"removed": [garbage]}
    assert world.site.objects(prefix=layout.LOCKS) == sorted([old, fresh])
    removed = ok(world.run("--json", "unlock", world.url, "--stale-after", "10m")).json()
    assert removed == {"removed": [old]}
    assert world.site.objects(prefix=layout.LOCKS) == [fresh]
    human = ok(world.run("unlock", world.url))
    assert human.out.startswith("removed 0 stale lock(s)")

    # The live shared lock still keeps prune out; a backup (shared) is let in.
    still = world.run("--lock-wait", "0s", "prune", world.url)
    assert_one_error_line(still, EXIT_LOCKED, "backup on host elsewhere (pid 4243")
    ok(world.run("--lock-wait", "0s", "backup", world.url, world.src))


# ------------------------------------------------------------------------------- --json


def test_forget_json_gives_every_decision_with_its_reasons(world: World) -> None:
    dry = ok(world.run("--json", "forget", world.url, "--keep-daily", "2", "--dry-run")).json()
    assert list(dry) == ["repositories"] and len(dry["repositories"]) == 1
    doc = dry["repositories"][0]
    assert set(doc) == {
        "repository",
        "policy",
        "dry_run",
        "snapshots",
        "forgotten",
        "damaged",
        "errors",
    }
    assert (doc["repository"], doc["policy"], doc["dry_run"]) == (world.url, "daily 2", True)
    assert (doc["forgotten"], doc["damaged"], doc["errors"]) == (2, [], [])
    rows = doc["snapshots"]
    assert [r["id"] for r in rows] == world.ids[::-1]  # newest first
    assert all(set(r) == {"id", "time", "group", "keep", "reasons", "locked_until"} for r in rows)
    assert [r["keep"] for r in rows] == [True, True, False, False]
    assert rows[0]["reasons"] == ["daily #1 (2024-03-04)"]
    assert rows[1]["reasons"] == ["daily #2 (2024-03-03)"]
    assert rows[2]["reasons"] == rows[3]["reasons"] == ["matches no rule"]
    assert rows[0]["time"].startswith("2024-03-04T12:00:00")
    assert {r["group"] for r in rows} == {f"host={socket.gethostname()} paths={world.src}"}
    assert all(r["locked_until"] is None for r in rows)
    assert snapshot_ids(world) == world.ids  # a dry run

    human = ok(world.run("forget", world.url, "--keep-daily", "2"))
    assert "policy daily 2" in human.out
    assert f"forget 2024-03-01 12:00:00  {world.ids[0][:8]}" in human.out.replace("T", " ")
    assert "forgot 2 of 4 snapshot(s) (run prune to reclaim their data)" in human.out
    assert snapshot_ids(world) == world.ids[2:]


def test_prune_json_reports_the_plan_and_what_was_done(world: World, tmp_path: Path) -> None:
    ok(world.run("forget", world.url, "--keep-last", "2"))
    before = world.site.objects()
    dry = ok(world.run("--json", "prune", world.url, "--dry-run")).json()["repositories"][0]
    assert world.site.objects() == before
    assert set(dry) == {
        "repository",
        "mode",
        "dry_run",
        "snapshots",
        "packs",
        "pack_bytes",
        "unneeded_bytes",
        "delete_packs",
        "delete_bytes",
        "delete_index",
        "repack_packs",
        "repack_bytes",
        "repack_needed_bytes",
        "partly_needed_packs",
        "partly_unneeded_bytes",
        "partly_archived_packs",
        "superseded_packs",
        "forwards_deleted",
        "packs_written",
        "bytes_written",
        "held_packs",
        "locked_objects",
        "packs_deleted",
        "bytes_deleted",
        "bytes_reclaimed",
        "locks_extended",
        "errors",
    }
    assert (dry["mode"], dry["dry_run"], dry["snapshots"]) == ("keyed", True, 2)
    assert dry["delete_packs"] >= 2 and dry["unneeded_bytes"] >= 2 * 20_000
    assert dry["packs_deleted"] == dry["bytes_deleted"] == 0

    keyless = ok(world.run("--json", "prune", world.url, "--keyless", "--dry-run")).json()
    assert keyless["repositories"][0]["mode"] == "keyless"

    done = ok(world.run("--json", "prune", world.url)).json()["repositories"][0]
    assert (done["mode"], done["dry_run"], done["errors"]) == ("keyed", False, [])
    assert done["packs_deleted"] == dry["delete_packs"]
    assert done["bytes_reclaimed"] >= 2 * 20_000
    gone = set(before) - set(world.site.objects())
    assert len([g for g in gone if g.startswith(("data/", "tree/"))]) == done["packs_deleted"]

    again = ok(world.run("prune", world.url))
    assert "deleted 0 pack(s)" in again.out
    limited = world.run("prune", world.url, "--max-unused", "unlimited", "--max-repack", "1G")
    assert "would" not in ok(limited).out and "repack" not in limited.out
    target = tmp_path / "restored"
    ok(world.run("restore", world.url, "latest", "--target", target))
    restored = target / str(world.src).lstrip("/") / "file"
    assert restored.read_bytes() == (world.src / "file").read_bytes()


# ------------------------------------------------------------------------------ --config


CONFIG = """\
version: 1
state_dir: {root}/state
centers:
  prod:
    role: production
    site: {{city: Guangzhou, province: Guangdong, lat: 23.13, lon: 113.26}}
    url: {root}/centers/prod
  same-city:
    role: same_city_dr
    site: {{city: Guangzhou, province: Guangdong}}
    distance_km: 35
    url: {root}/centers/same-city
  remote:
    role: remote_dr
    site: {{city: Zixing, province: Hunan, lat: 25.97, lon: 113.40}}
    url: {root}/centers/remote
backup_sets:
  ledger:
    paths: [{root}/data]
    classification: important
    rpo: 1h
    rto: 4h
    password_file: {root}/password
    repository: {{chunk_avg: 16K, pack_size: 1M}}
    retention: {{last: 3}}
    copies:
      same-city: {{retention: {{last: 2}}}}
      remote:
"""


@dataclass
class Centers:
    root: Path
    config: Path
    data: Path
    states: dict[str, bytes]  # snapshot id -> contents of data/file

    def run(self, *args: str | os.PathLike[str]) -> CliResult:
        return run_drvault("--config", self.config, *args, cwd=self.root, password_file=None)

    def ids(self, center: str) -> list[str]:
        listed = ok(self.run("--json", "snapshots", "--set", "ledger", "--from", center))
        return [s["id"] for s in listed.json()]


@pytest.fixture
def centers(tmp_path: Path) -> Centers:
    """Five daily snapshots of ``ledger`` at production, replicated to both DR centers."""
    config = tmp_path / "drvault.yaml"
    config.write_text(CONFIG.format(root=tmp_path))
    (tmp_path / "password").write_bytes(PASSWORD + b"\n")
    data = tmp_path / "data"
    data.mkdir()
    c = Centers(tmp_path, config, data, {})
    ok(c.run("init", "--set", "ledger", "--kdf", CHEAP_KDF_OPTION))
    for day in range(1, 6):
        content = os.urandom(300_000) + b"day %d" % day
        (data / "file").write_bytes(content)
        made = ok(c.run("--json", "backup", "--set", "ledger", "--time", when(day))).json()
        c.states[made["snapshot"]["id"]] = content
    ok(c.run("replicate", "--set", "ledger"))
    return c


def by_center(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["repository"].split("@")[1]: d for d in doc["repositories"]}


def test_config_forget_and_prune_at_every_center(centers: Centers, tmp_path: Path) -> None:
    ids = list(centers.states)
    assert all(centers.ids(c) == ids for c in ("prod", "same-city", "remote"))

    plan = by_center(ok(centers.run("--json", "forget", "--dry-run")).json())
    assert {c: (d["policy"], d["forgotten"]) for c, d in plan.items()} == {
        "prod": ("last 3", 2),
        "same-city": ("last 2", 3),  # the copy's own retention
        "remote": ("last 3", 2),  # the set's
    }
    assert all(centers.ids(c) == ids for c in ("prod", "same-city", "remote"))

    one = by_center(ok(centers.run("--json", "forget", "--center", "same-city")).json())
    assert list(one) == ["same-city"]
    assert centers.ids("same-city") == ids[3:]
    assert centers.ids("prod") == ids and centers.ids("remote") == ids

    ok(centers.run("forget", "--set", "ledger"))
    assert centers.ids("prod") == ids[2:] and centers.ids("remote") == ids[2:]
    assert centers.ids("same-city") == ids[3:]

    pruned = by_center(ok(centers.run("--json", "prune")).json())
    assert {c: d["mode"] for c, d in pruned.items()} == {
        "prod": "keyed",
        "same-city": "keyless",
        "remote": "keyless",
    }
    assert all(d["errors"] == [] for d in pruned.values())
    assert pruned["prod"]["packs_deleted"] >= 2  # the two forgotten days' own data
    keyed = by_center(
        ok(centers.run("--json", "prune", "--center", "remote", "--keyed", "--dry-run")).json()
    )
    assert keyed["remote"]["mode"] == "keyed"
    forced = by_center(ok(centers.run("--json", "prune", "--keyless", "--dry-run")).json())
    assert {d["mode"] for d in forced.values()} == {"keyless"}

    latest = ids[-1]
    for center in ("prod", "same-city", "remote"):
        out = tmp_path / f"restore-{center}"
        ok(centers.run("restore", "--set", "ledger", "--from", center, latest, "--target", out))
        restored = out / str(centers.data).lstrip("/") / "file"
        assert restored.read_bytes() == centers.states[latest]
        ok(centers.run("check", "--set", "ledger", "--from", center, "--read-data"))


def test_config_errors(centers: Centers) -> None:
    with_flags = centers.run("forget", "--keep-last", "1")
    assert_one_error_line(with_flags, EXIT_USAGE, "retention comes from the configuration")
    unknown = centers.run("prune", "--set", "nope")
    assert_one_error_line(unknown, EXIT_USAGE, "nope")
    center = centers.run("forget", "--center", "moon")
    assert_one_error_line(center, EXIT_USAGE, "moon")
    assert centers.ids("prod") == list(centers.states)
