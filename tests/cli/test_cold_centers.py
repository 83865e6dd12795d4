"""Cold and immutable DR centers end to end through the CLI, against the real moto server.

A backup set lives at production (local disk), at an S3 center (``cold``, moto) and at a remote
center (local disk). The S3 center is varied per test: a storage ladder (``tier`` moves data
packs to GLACIER, ``restore`` thaws exactly what it reads), Object Lock (``forget`` and ``prune``
keep what a lock protects, ``status`` reads the lock from the objects), or the remote center is
declared append-only. What drvault did is checked from outside: with a boto3 client of our own,
and by counting RestoreObject requests on the wire (a TCP forwarder between drvault and moto
reads the request lines, whatever SDK sent them).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from conftest import CHEAP_KDF_OPTION, PASSWORD, CliResult, assert_one_error_line, run_drvault
from trees import assert_same_tree, describe

from drvault.repository import envelope
from tests.servers.s3_server import MotoServer

KIB = 1 << 10
MIB = 1 << 20
PREFIX = "dr"
SET = "ledger"
THAW_SECONDS = 3  # how long moto keeps a thaw under way (see MotoServer.set_restore_transition)
CENTERS = ("prod", "cold", "remote")


# ------------------------------------------------------------------------------ helpers


class RequestCounter:
    """A TCP forwarder to the moto server that records the RestoreObject requests passing
    through it (``POST /bucket/key?restore``), read from the bytes clients send."""

    _RESTORE = re.compile(rb"POST (/[^ ?]+)\?restore HTTP/1\.1\r\n")

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.restores: list[str] = []  # "/bucket/key" of each request, in arrival order
        self._mutex = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for src, dst, sniff in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(src, dst, sniff), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, sniff: bool) -> None:
        tail = b""
        try:
            while data := src.recv(64 * KIB):
                dst.sendall(data)
                if sniff:
                    seen = tail + data
                    found = [
                        unquote(m.group(1).decode())
                        for m in self._RESTORE.finditer(seen)
                        if m.end() > len(tail)  # ends in the new bytes: not counted before
                    ]
                    with self._mutex:
                        self.restores.extend(found)
                    tail = seen[-1024:]
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def stop(self) -> None:
        self._listener.close()


@dataclass
class Deployment:
    """Three centers in one configuration file; ``cold`` is the S3 one."""

    root: Path
    server: MotoServer
    bucket: str
    endpoint: str  # what drvault is given for the S3 center (moto itself, or a forwarder)
    cold: dict[str, Any] = field(default_factory=dict)  # extra keys of the S3 center
    remote: dict[str, Any] = field(default_factory=dict)  # extra keys of the remote center
    rto: str = "4h"
    retention: dict[str, Any] | None = None

    @property
    def config(self) -> Path:
        return self.root / "drvault.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def write_config(self) -> None:
        backup_set: dict[str, Any] = {
            "paths": [str(self.data)],
            "classification": "important",
            "rpo": "1h",
            "rto": self.rto,
            "password_file": str(self.root / "password"),
            "repository": {"chunk_avg": "16K", "pack_size": "1M"},
            "copies": {"cold": None, "remote": {"rpo": "2h"}},
        }
        if self.retention is not None:
            backup_set["retention"] = self.retention
        doc = {
            "version": 1,
            "state_dir": str(self.root / "state"),
            "centers": {
                "prod": {
                    "role": "production",
                    "site": {
                        "city": "Guangzhou",
                        "province": "Guangdong",
                        "lat": 23.13,
                        "lon": 113.26,
                    },
                    "url": str(self.root / "prod"),
                },
                "cold": {
                    "role": "same_city_dr",
                    "site": {"city": "Guangzhou", "province": "Guangdong"},
                    "distance_km": 35,
                    "url": f"s3:{self.endpoint}/{self.bucket}/{PREFIX}",
                    **self.cold,
                },
                "remote": {
                    "role": "remote_dr",
                    "site": {"city": "Zixing", "province": "Hunan", "lat": 25.97, "lon": 113.40},
                    "url": str(self.root / "remote"),
                    **self.remote,
                },
            },
            "backup_sets": {SET: backup_set},
        }
        self.config.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))

    def run(self, *args: str | os.PathLike[str], timeout: float = 120) -> CliResult:
        return run_drvault(
            "--config", self.config, *args, cwd=self.root, password_file=None, timeout=timeout
        )

    def ok(self, *args: str | os.PathLike[str]) -> CliResult:
        result = self.run(*args)
        assert result.code == 0, result
        assert "Traceback" not in result.err
        return result

    def key(self, name: str) -> str:
        return f"{PREFIX}/{SET}/{name}"

    def objects(self) -> dict[str, str]:
        """Every current key of the set at the S3 center -> its storage class."""
        client = self.server.client()
        out: dict[str, str] = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{PREFIX}/{SET}/"
        ):
            for obj in page.get("Contents", ()):
                out[obj["Key"]] = obj.get("StorageClass", "STANDARD")
        return out

    def data_keys(self) -> set[str]:
        return {k for k in self.objects() if k.startswith(self.key("data/"))}

    def restore(self, center: str, out: Path, *flags: str) -> CliResult:
        return self.run(
            "restore", "--set", SET, "--from", center, "latest", "--target", out, *flags
        )

    def assert_restored(self, out: Path) -> None:
        assert_same_tree(bytes(self.data), bytes(out / str(self.data).lstrip("/")))


def write_data(root: Path, seed: int) -> None:
    """About 2.5 MiB: several 1 MiB data packs."""
    rnd = random.Random(seed)
    (root / "db").mkdir(parents=True, exist_ok=True)
    rows = "".join(
        f"INSERT INTO ledger VALUES ({i}, {rnd.randrange(10**9)});\n" for i in range(8000)
    )
    (root / "db" / "ledger.sql").write_text(rows)
    (root / "db" / "blob.bin").write_bytes(rnd.randbytes(2 * MIB))
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "报告.txt").write_text("季度报告\n" * 500)


def change_data(root: Path, seed: int) -> None:
    """New bytes for a second snapshot: new packs that the first snapshot does not need."""
    (root / "db" / f"day-{seed}.bin").write_bytes(random.Random(seed).randbytes(512 * KIB))


Deploy = Callable[..., Deployment]


@pytest.fixture
def deploy(tmp_path: Path, s3_server: MotoServer) -> Deploy:
    """``deploy(cold={...}, remote={...}, rto=..., retention=..., bucket=..., endpoint=...)``:
    the configuration written, production initialised and backed up once."""

    def make(
        *,
        bucket: str | None = None,
        endpoint: str | None = None,
        cold: dict[str, Any] | None = None,
        remote: dict[str, Any] | None = None,
        rto: str = "4h",
        retention: dict[str, Any] | None = None,
    ) -> Deployment:
        d = Deployment(
            root=tmp_path,
            server=s3_server,
            bucket=bucket or s3_server.new_bucket(),
            endpoint=endpoint or s3_server.endpoint,
            cold=cold or {},
            remote=remote or {},
            rto=rto,
            retention=retention,
        )
        d.write_config()
        (tmp_path / "password").write_bytes(PASSWORD + b"\n")
        write_data(d.data, seed=1)
        d.ok("init", "--set", SET, "--kdf", CHEAP_KDF_OPTION)
        d.ok("backup", "--set", SET)
        return d

    return make


@pytest.fixture
def slow_thaws(s3_server: MotoServer) -> Iterator[None]:
    """Thaws stay under way THAW_SECONDS; immediate again afterwards."""
    with s3_server.slow_thaws(THAW_SECONDS):
        yield


@pytest.fixture
def counter(s3_server: MotoServer) -> Iterator[RequestCounter]:
    port = int(s3_server.endpoint.rsplit(":", 1)[1])
    c = RequestCounter(port)
    yield c
    c.stop()


GLACIER_AT_ONCE = {"storage": {"ladder": [{"after": "0s", "to": "GLACIER"}]}}


def tiered(d: Deployment) -> set[str]:
    """Replicate, then move every data pack at the S3 center to GLACIER; the data keys."""
    d.ok("replicate", "--all")
    d.ok("tier", "--center", "cold")
    keys = d.data_keys()
    assert keys and {d.objects()[k] for k in keys} == {"GLACIER"}
    return keys


def checks(doc: dict[str, Any], check_id: str) -> dict[str | None, dict[str, Any]]:
    """The checks of ``check_id`` in a ``status --json`` document, by center."""
    (only,) = doc["sets"]
    return {c["center"]: c for c in only["checks"] if c["id"] == check_id}


def wait_until_older(seconds: float, keys: set[str], d: Deployment) -> None:
    """Sleep until every key was last written more than ``seconds`` ago (moto's restore clock
    runs from the write: see MotoServer.set_restore_transition)."""
    client = d.server.client()
    newest = max(
        client.head_object(Bucket=d.bucket, Key=k)["LastModified"].timestamp() for k in keys
    )
    time.sleep(max(0.0, newest + seconds + 1.1 - time.time()))


# ------------------------------------------------------------------------------ tiering


def test_tier_moves_only_data_packs_and_a_restore_asks_for_their_thaw(
    deploy: Deploy, tmp_path: Path, s3_server: MotoServer
) -> None:
    d = deploy(cold=GLACIER_AT_ONCE)
    d.ok("replicate", "--all")
    before = d.objects()
    data = d.data_keys()
    assert len(data) >= 3 and set(before.values()) == {"STANDARD"}
    assert any(k.startswith(d.key("tree/")) for k in before)

    dry = d.ok("--json", "tier", "--dry-run").json()
    (plan,) = dry["repositories"]
    assert plan["repository"] == f"{SET}@cold" and plan["moved"] == 0
    assert {d.key(m["pack"]) for m in plan["moves"]} == data
    assert {(m["from"], m["to"]) for m in plan["moves"]} == {("STANDARD", "GLACIER")}
    assert all("-> GLACIER" in m["reason"] for m in plan["moves"])
    assert d.objects() == before  # nothing moved
    human = d.ok("tier", "--dry-run").out
    assert f"{SET}@cold: would move {len(data)} data pack(s)" in human

    moved = d.ok("tier").out
    assert f"{SET}@cold: moved {len(data)} data pack(s)" in moved
    after = d.objects()
    assert after.keys() == before.keys()
    assert {after[k] for k in data} == {"GLACIER"}
    assert {c for k, c in after.items() if k not in data} == {"STANDARD"}  # metadata stays
    again = d.ok("--json", "tier").json()["repositories"][0]
    assert again["moves"] == [] and again["moved"] == 0  # nothing left to move

    out = tmp_path / "restore-cold"
    line = assert_one_error_line(
        d.restore("cold", out, "--no-thaw-wait"), 16, f"{len(data)} of {len(data)} archived packs"
    )
    assert "thawing" in line and "rerun" in line
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert written == []  # the thaw comes before any file is written
    client = s3_server.client()
    for key in data:  # each archived pack the restore needs has a thaw requested
        assert (
            "x-amz-restore"
            in client.head_object(Bucket=d.bucket, Key=key)["ResponseMetadata"]["HTTPHeaders"]
        )

    listing = d.ok("ls", "--set", SET, "--from", "cold", "latest").out  # metadata: no thaw
    assert "/docs/报告.txt" in listing and "/db/blob.bin" in listing
    assert len(d.ok("--json", "snapshots", "--set", SET, "--from", "cold").json()) == 1

    rules = d.ok("--json", "tier", "--lifecycle").json()
    assert rules == {
        "cold": {
            "Rules": [
                {
                    "ID": f"drvault-{PREFIX}-{SET}",
                    "Status": "Enabled",
                    "Filter": {"Prefix": f"{PREFIX}/{SET}/data/"},
                    "Transitions": [{"Days": 0, "StorageClass": "GLACIER"}],
                }
            ]
        }
    }
    # S3 (moto) takes it as a bucket lifecycle configuration as printed.
    client.put_bucket_lifecycle_configuration(Bucket=d.bucket, LifecycleConfiguration=rules["cold"])
    stored = client.get_bucket_lifecycle_configuration(Bucket=d.bucket)["Rules"]
    assert stored[0]["Filter"]["Prefix"] == f"{PREFIX}/{SET}/data/"


def test_restore_from_cold_waits_for_one_thaw_per_pack_it_needs(
    deploy: Deploy, counter: RequestCounter, slow_thaws: None, tmp_path: Path, s3_server: MotoServer
) -> None:
    d = deploy(cold=GLACIER_AT_ONCE, endpoint=f"http://127.0.0.1:{counter.port}")
    # A backup whose only new data is one file: its packs hold nothing else (a backup packs
    # blobs of files read side by side together, so packs of the first backup are mixed).
    (d.data / "db" / "only-once.bin").write_bytes(random.Random(9).randbytes(3 * MIB // 2))
    d.ok("backup", "--set", SET)
    (d.data / "db" / "only-once.bin").unlink()  # so its packs: no newer snapshot needs them
    (d.data / "db" / "blob.bin").unlink()
    change_data(d.data, seed=2)
    d.ok("backup", "--set", SET)
    data = tiered(d)
    client = s3_server.client()
    newest = d.ok("--json", "snapshots", "--set", SET, "--from", "cold").json()[-1]["id"]
    raw = client.get_object(Bucket=d.bucket, Key=d.key(f"snapshots/{newest}"))["Body"].read()
    # The packs the newest snapshot names (plaintext, readable without the key).
    listed = envelope.parse(raw, envelope.SNAPSHOT_MAGIC).packs
    needed = {k for k in data if bytes.fromhex(k.rsplit("/", 1)[1]) in listed}
    assert needed and needed < data
    wait_until_older(THAW_SECONDS, data, d)
    assert counter.restores == []

    out = tmp_path / "restore-cold"
    started = time.monotonic()
    result = d.restore("cold", out, "--thaw-poll", "1s")
    assert result.code == 0, result
    assert time.monotonic() - started >= THAW_SECONDS  # it did wait for the thaw
    assert f"thawed {len(needed)} archived pack(s)" in result.err
    assert f"{len(needed)} requested by this run" in result.err
    d.assert_restored(out)
    assert sorted(counter.restores) == sorted(f"/{d.bucket}/{k}" for k in needed)
    for key in data - needed:  # never thawed
        head = client.head_object(Bucket=d.bucket, Key=key)
        assert "x-amz-restore" not in head["ResponseMetadata"]["HTTPHeaders"]


def test_an_interrupted_restore_resumes_without_asking_again(
    deploy: Deploy, counter: RequestCounter, slow_thaws: None, tmp_path: Path
) -> None:
    d = deploy(cold=GLACIER_AT_ONCE, endpoint=f"http://127.0.0.1:{counter.port}")
    data = tiered(d)
    wait_until_older(THAW_SECONDS, data, d)
    out = tmp_path / "restore-cold"
    first = d.restore("cold", out, "--no-thaw-wait")
    assert_one_error_line(first, 16, f"requested {len(data)} now")
    asked = sorted(f"/{d.bucket}/{k}" for k in data)
    assert sorted(counter.restores) == asked

    again = d.restore("cold", out, "--no-thaw-wait")  # still under way: asks for nothing
    assert_one_error_line(again, 16, f"{len(data)} of {len(data)} archived packs", "requested 0")
    resumed = d.restore("cold", out, "--thaw-poll", "1s")
    assert resumed.code == 0, resumed
    assert "0 requested by this run" in resumed.err
    assert sorted(counter.restores) == asked  # still one request per pack
    d.assert_restored(out)


def test_rto_check_counts_the_thaw_of_the_newest_snapshot(deploy: Deploy) -> None:
    d = deploy(cold=GLACIER_AT_ONCE, rto="1h")
    d.ok("replicate", "--all")
    rto = checks(d.run("--json", "status").json(), "rto")
    assert {c: v["verdict"] for c, v in rto.items()} == dict.fromkeys(CENTERS, "pass")
    assert "no thaw needed" in rto["cold"]["reason"]

    d.ok("tier", "--center", "cold")
    doc = d.run("--json", "status").json()
    rto = checks(doc, "rto")
    assert {c: v["verdict"] for c, v in rto.items()} == {
        **dict.fromkeys(CENTERS, "pass"),
        "cold": "warn",
    }
    assert "GLACIER" in rto["cold"]["reason"] and "5h" in rto["cold"]["reason"]
    assert "tier Standard" in rto["cold"]["reason"]
    assert checks(doc, "business-rto")[None]["verdict"] == "pass"  # the remote copy is warm

    d.rto = "12h"
    d.write_config()
    rto = checks(d.run("--json", "status").json(), "rto")
    assert rto["cold"]["verdict"] == "pass" and "GLACIER" in rto["cold"]["reason"]


# ------------------------------------------------------------------------------ Object Lock


def versions(d: Deployment) -> tuple[set[str], set[str]]:
    """(versions, delete markers) of the set's objects outside locks/, as "key@version"."""
    answer = d.server.client().list_object_versions(Bucket=d.bucket, Prefix=f"{PREFIX}/{SET}/")
    locks = d.key("locks/")  # lock files come and go with every command

    def ids(entries: list[dict[str, Any]]) -> set[str]:
        return {f"{e['Key']}@{e['VersionId']}" for e in entries if not e["Key"].startswith(locks)}

    return ids(answer.get("Versions", [])), ids(answer.get("DeleteMarkers", []))


@pytest.mark.parametrize("mode", ["compliance", "governance"])
def test_object_lock_keeps_what_forget_and_prune_would_drop(
    deploy: Deploy, s3_server: MotoServer, tmp_path: Path, mode: str
) -> None:
    d = deploy(
        bucket=s3_server.new_lock_bucket(),
        cold={"immutability": {"mode": mode, "days": 1}},
        retention={"last": 1},
    )
    change_data(d.data, seed=2)
    d.ok("backup", "--set", SET)
    d.ok("replicate", "--all")
    client = s3_server.client()
    objects = d.objects()
    snapshots = {k for k in objects if k.startswith(d.key("snapshots/"))}
    assert len(snapshots) == 2
    for key in (*snapshots, *sorted(d.data_keys())[:2]):  # locked on the store, as we read it
        head = client.head_object(Bucket=d.bucket, Key=key)
        assert head["ObjectLockMode"] == mode.upper()
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)

    doc = d.run("--json", "status").json()
    immutable = checks(doc, "immutable")
    assert set(immutable) == {"cold"}
    if mode == "compliance":
        assert immutable["cold"]["verdict"] == "pass"
        assert "Object Lock COMPLIANCE until" in immutable["cold"]["reason"]
        assert checks(doc, "immutable-copy")[None]["verdict"] == "pass"
    else:
        assert immutable["cold"]["verdict"] == "warn"
        assert "GOVERNANCE" in immutable["cold"]["reason"]
        assert "bypassable" in immutable["cold"]["reason"]
        assert checks(doc, "immutable-copy")[None]["verdict"] == "warn"

    before = versions(d)
    forget = d.run("forget", "--center", "cold")
    assert forget.code == 0, forget
    kept = [line for line in forget.out.splitlines() if "the policy would forget it" in line]
    assert len(kept) == 1 and kept[0].lstrip().startswith("keep")
    assert re.search(r"Object Lock \(until \d{4}-\d\d-\d\dT[\d:]+Z\)", kept[0]), kept[0]
    assert "forgot 0 of 2 snapshot(s)" in forget.out
    assert {k for k in d.objects() if k.startswith(d.key("snapshots/"))} == snapshots
    assert not any(k.startswith(d.key("forgotten/")) for k in d.objects())
    assert versions(d) == before  # no version deleted, no delete marker added

    # An interrupted replication left a pack no snapshot there names, under the lock.
    replicated = describe(bytes(d.data))  # the tree of the newest snapshot at cold
    change_data(d.data, seed=3)
    d.ok("backup", "--set", SET)
    prod = tmp_path / "prod" / SET
    orphan_name = next(
        str(p.relative_to(prod))
        for p in (prod / "data").rglob("*")
        if p.is_file() and d.key(str(p.relative_to(prod))) not in objects
    )
    orphan = d.key(orphan_name)
    client.put_object(
        Bucket=d.bucket,
        Key=orphan,
        Body=(prod / orphan_name).read_bytes(),
        ChecksumAlgorithm="CRC32",
        ObjectLockMode=mode.upper(),
        ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1),
    )
    before = versions(d)
    prune = d.run("--json", "prune", "--center", "cold", "--keyless")
    assert prune.code == 0, prune
    (report,) = prune.json()["repositories"]
    assert report["locked_objects"] == [orphan_name]
    assert report["packs_deleted"] == 0 and report["delete_packs"] == 0
    assert versions(d) == before  # no version deleted, no delete marker added
    human = d.ok("prune", "--center", "cold", "--keyless").out
    assert "1 object(s) kept: protected by Object Lock" in human

    out = tmp_path / "restore-cold"
    d.ok("restore", "--set", SET, "--from", "cold", "latest", "--target", out)
    assert describe(bytes(out / str(d.data).lstrip("/"))) == replicated


def test_compliance_declared_on_a_bucket_without_object_lock_fails_status(
    deploy: Deploy,
) -> None:
    d = deploy()
    d.ok("replicate", "--all")
    d.cold = {"immutability": {"mode": "compliance", "days": 1}}
    d.write_config()
    status = d.run("--json", "status")
    assert status.code == 4, status
    immutable = checks(status.json(), "immutable")
    assert immutable["cold"]["verdict"] == "fail"
    assert "configured for COMPLIANCE Object Lock" in immutable["cold"]["reason"]
    assert "no Object Lock on the bucket" in immutable["cold"]["reason"]
    assert checks(status.json(), "immutable-copy")[None]["verdict"] == "warn"

    # Writing there now is refused by the store (lock headers on a plain bucket), one line.
    change_data(d.data, seed=2)
    d.ok("backup", "--set", SET)
    result = d.run("replicate", "--all")
    assert result.code == 15, result
    failed = [line for line in result.err.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and f"replicate {SET} -> cold: FAILED" in failed[0]
    assert "Bucket is missing ObjectLockConfiguration" in failed[0]
    assert f"replicate {SET} -> remote: ok" in result.err


# ------------------------------------------------------------------------------ append-only


def test_append_only_center_is_never_forgotten_or_pruned(deploy: Deploy) -> None:
    d = deploy(remote={"immutability": {"mode": "append-only"}}, retention={"last": 1})
    change_data(d.data, seed=2)
    d.ok("backup", "--set", SET)
    d.ok("replicate", "--all")
    remote = d.root / "remote" / SET
    files_before = sorted(p for p in remote.rglob("*") if p.is_file() and "locks" not in p.parts)

    forget = d.ok("forget")
    assert f"{SET}@remote: append-only: every snapshot kept" in forget.out
    assert f"{SET}@prod: policy" in forget.out and "forgot 1 of 2 snapshot(s)" in forget.out
    count = {c: len(d.ok("--json", "snapshots", "--set", SET, "--from", c).json()) for c in CENTERS}
    assert count == {"prod": 1, "cold": 1, "remote": 2}

    prune = d.ok("prune", "--center", "remote")
    assert f"{SET}@remote: append-only: nothing is deleted there" in prune.out
    files_after = sorted(p for p in remote.rglob("*") if p.is_file() and "locks" not in p.parts)
    assert files_after == files_before

    status = d.run("--json", "status").json()
    copy = checks(status, "immutable-copy")[None]
    assert copy["verdict"] == "warn"
    assert "append-only at remote is enforced by drvault only" in copy["reason"]
    assert "remote" not in checks(status, "immutable")  # append-only is not Object Lock
