"""Forget: which snapshots a retention policy keeps (each with its reason), and what forgetting
does to a repository: the snapshot object goes, a tombstone stays, nothing else changes.

Snapshots are made with explicit, distinct times (``BackupRequest.time_ns``) and judged with an
explicit ``now`` and time zone, so every decision is known in advance.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from conftest import PASSWORD, new_repo

from drvault.backup import BackupRequest, backup
from drvault.errors import UsageError
from drvault.forget import forget
from drvault.policy.model import Retention
from drvault.replicate import replicate
from drvault.repository import layout
from drvault.repository.repository import Repository
from drvault.transport import LocalBackend, open_backend
from drvault.transport.metrics import Metrics
from drvault.transport.options import S3Options, TransportOptions
from drvault.transport.stack import stack, unwrap
from tests.servers.s3_server import MotoServer
from tests.sites import Site


def at(text: str) -> int:
    """An ISO time in UTC as nanoseconds since the epoch."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


NOW = at("2024-03-05T00:00:00") / 1e9


def make_source(root: Path, name: str = "src") -> bytes:
    src = root / name
    src.mkdir(parents=True, exist_ok=True)
    (src / "file").write_bytes(b"contents of " + name.encode())
    return os.fsencode(src)


def snap(
    repo: Repository, src: bytes, when: str, *, host: str = "db1", tags: tuple[str, ...] = ()
) -> bytes:
    result = backup(repo, BackupRequest(paths=(src,), hostname=host, time_ns=at(when), tags=tags))
    return result.snapshot.id


def objects(site: Site) -> dict[str, bytes]:
    return {name: site.read(name) for name in site.objects()}


def tombstones(repo: Repository) -> set[bytes]:
    out = set()
    for info in repo.backend.list(layout.FORGOTTEN):
        name = layout.parse_hex_name(info.name)
        assert name is not None, info.name
        out.add(name)
    return out


# Six snapshots of one host and path; the policy below keeps four of them, each for a reason.
SERIES = (
    ("t0", "2024-02-28T10:00:00", ()),
    ("t1", "2024-03-01T10:00:00", ("audit",)),
    ("t2", "2024-03-02T08:00:00", ()),
    ("t3", "2024-03-02T20:00:00", ()),
    ("t4", "2024-03-03T09:00:00", ()),
    ("t5", "2024-03-04T12:00:00", ()),
)
POLICY = Retention(last=1, daily=3, tags=("audit",))
EXPECTED = {
    "t5": (True, ("last #1", "daily #1 (2024-03-04)")),
    "t4": (True, ("daily #2 (2024-03-03)",)),
    "t3": (True, ("daily #3 (2024-03-02)",)),
    "t2": (False, ("matches no rule",)),  # the same day as t3, which is newer
    "t1": (True, ("tag audit",)),
    "t0": (False, ("matches no rule",)),
}


@pytest.fixture
def series(repo: Repository, tmp_path: Path) -> dict[str, bytes]:
    src = make_source(tmp_path)
    return {label: snap(repo, src, when, tags=tags) for label, when, tags in SERIES}


def test_decisions_and_reasons(repo: Repository, series: dict[str, bytes]) -> None:
    result = forget(repo, POLICY, now=NOW, tz=UTC)
    label = {v: k for k, v in series.items()}
    got = {label[j.snapshot.id]: (j.decision.keep, j.decision.reasons) for j in result.judged}
    assert got == EXPECTED
    assert [label[j.snapshot.id] for j in result.judged] == ["t5", "t4", "t3", "t2", "t1", "t0"]
    assert {label[j.snapshot.id] for j in result.removed} == {"t2", "t0"}
    assert not result.damaged and not result.errors and not result.dry_run


def test_forgotten_snapshots_are_gone_and_tombstoned(
    repo: Repository, site: Site, series: dict[str, bytes]
) -> None:
    before = objects(site)
    forget(repo, POLICY, now=NOW, tz=UTC)
    gone = {series["t2"], series["t0"]}
    assert set(repo.snapshot_ids()) == set(series.values()) - gone
    assert tombstones(repo) == gone
    after = objects(site)
    # Only the two snapshot objects left and the two tombstones came: data is prune's business.
    assert set(before) - set(after) == {layout.snapshot_path(i) for i in gone}
    assert set(after) - set(before) == {layout.tombstone_path(i) for i in gone}
    assert all(after[name] == data for name, data in before.items() if name in after)
    # Judging again forgets nothing more: the survivors are exactly what the policy keeps.
    again = forget(Repository.open(repo.backend, PASSWORD), POLICY, now=NOW, tz=UTC)
    assert again.removed == [] and len(again.judged) == 4


def test_dry_run_changes_nothing(repo: Repository, site: Site, series: dict[str, bytes]) -> None:
    before = objects(site)
    result = forget(repo, POLICY, now=NOW, tz=UTC, dry_run=True)
    assert result.dry_run
    assert {j.snapshot.id for j in result.removed} == {series["t2"], series["t0"]}
    assert objects(site) == before


def test_an_empty_policy_is_refused(repo: Repository, site: Site, series: dict[str, bytes]) -> None:
    before = objects(site)
    with pytest.raises(UsageError, match="no retention rule"):
        forget(repo, Retention(), now=NOW, tz=UTC)
    assert objects(site) == before


def test_a_damaged_snapshot_is_left_alone_and_reported(
    repo: Repository, site: Site, series: dict[str, bytes]
) -> None:
    victim = layout.snapshot_path(series["t0"])  # the policy would forget it
    site.flip(victim, site.size(victim) // 2)
    damaged_bytes = site.read(victim)
    result = forget(repo, POLICY, now=NOW, tz=UTC)
    assert len(result.damaged) == 1 and victim in result.damaged[0]
    assert series["t0"] not in {j.snapshot.id for j in result.judged}
    assert site.read(victim) == damaged_bytes  # still there, untouched
    assert tombstones(repo) == {series["t2"]}
    assert set(repo.snapshot_ids()) == set(series.values()) - {series["t2"]}


def test_each_group_keeps_its_newest(repo: Repository, tmp_path: Path) -> None:
    one, two = make_source(tmp_path, "one"), make_source(tmp_path, "two")
    made = {
        ("a", "one", 1): snap(repo, one, "2024-03-01T01:00:00", host="a"),
        ("a", "one", 2): snap(repo, one, "2024-03-01T02:00:00", host="a"),
        ("b", "one", 1): snap(repo, one, "2024-03-01T03:00:00", host="b"),
        ("b", "one", 2): snap(repo, one, "2024-03-01T04:00:00", host="b"),
        ("a", "two", 1): snap(repo, two, "2024-03-01T05:00:00", host="a"),
        ("a", "two", 2): snap(repo, two, "2024-03-01T06:00:00", host="a"),
    }
    label = {v: k for k, v in made.items()}

    by_host = forget(repo, Retention(last=1), now=NOW, tz=UTC, group_by=("host",), dry_run=True)
    assert {label[j.snapshot.id] for j in by_host.kept} == {("a", "two", 2), ("b", "one", 2)}

    result = forget(repo, Retention(last=1), now=NOW, tz=UTC)  # by host and paths
    kept = {label[j.snapshot.id] for j in result.kept}
    assert kept == {("a", "one", 2), ("b", "one", 2), ("a", "two", 2)}
    groups = {j.group for j in result.judged}
    assert len(groups) == 3
    assert all(g.startswith(("host=a ", "host=b ")) and " paths=" in g for g in groups)
    assert {label[i] for i in repo.snapshot_ids()} == kept


def test_a_dr_copy_that_forgot_a_snapshot_does_not_get_it_back(tmp_path: Path) -> None:
    source = new_repo(LocalBackend(tmp_path / "prod"))
    dr = LocalBackend(tmp_path / "dr")
    src = make_source(tmp_path)
    old = snap(source, src, "2024-03-01T10:00:00")
    mid = snap(source, src, "2024-03-02T10:00:00")
    assert replicate(source.backend, {"dr": dr})["dr"].error is None

    at_dr = Repository.open(dr, PASSWORD)
    result = forget(at_dr, Retention(last=1), now=NOW, tz=UTC)
    assert [j.snapshot.id for j in result.removed] == [old]
    assert set(at_dr.snapshot_ids()) == {mid}

    again = replicate(source.backend, {"dr": dr})["dr"]
    assert again.error is None and again.snapshots_sent == 0
    assert set(at_dr.snapshot_ids()) == {mid}
    assert old in set(source.snapshot_ids())  # production still keeps it

    (Path(os.fsdecode(src)) / "file").write_bytes(b"changed")
    new = snap(source, src, "2024-03-03T10:00:00")
    third = replicate(source.backend, {"dr": dr})["dr"]
    assert third.error is None and third.snapshots_sent == 1
    assert set(at_dr.snapshot_ids()) == {mid, new}
    assert tombstones(at_dr) == {old}

    # The tombstone is what holds it back: without it the next run sends the snapshot again.
    dr.delete(layout.tombstone_path(old))
    assert replicate(source.backend, {"dr": dr})["dr"].snapshots_sent == 1
    assert set(at_dr.snapshot_ids()) == {old, mid, new}


def test_a_transient_delete_failure_on_s3_is_retried(
    s3_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI's stack, one 503 SlowDown on deleting a snapshot is retried like any
    transient error: the snapshot is forgotten, not reported as "not deleted"."""
    options = TransportOptions(s3=S3Options())
    metrics = Metrics()
    backend = stack(open_backend(s3_server.url(s3_server.new_bucket()), options), options, metrics)
    repo = new_repo(backend)
    src = make_source(tmp_path)
    old = snap(repo, src, "2024-03-01T10:00:00")
    new = snap(repo, src, "2024-03-02T10:00:00")
    client = unwrap(backend)._client  # type: ignore[attr-defined]
    real = client.delete_object
    failed: list[str] = []

    def delete_object(**kwargs: object) -> object:
        if not failed and "/snapshots/" in str(kwargs["Key"]):
            failed.append(str(kwargs["Key"]))
            error = {"Code": "SlowDown", "Message": "Please reduce your request rate."}
            response = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 503}}
            raise ClientError(response, "DeleteObject")  # type: ignore[arg-type]
        return real(**kwargs)

    monkeypatch.setattr(client, "delete_object", delete_object)
    result = forget(repo, Retention(last=1), now=NOW, tz=UTC)
    assert failed, "no snapshot was deleted"
    assert result.errors == []
    assert metrics.retries >= 1
    assert repo.snapshot_ids() == [new] and tombstones(repo) == {old}
