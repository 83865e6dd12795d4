"""Prune: what no kept snapshot needs is removed, what one needs never is.

Every test writes its source data itself (random bytes, so files share no chunk), so it knows
which bytes only the forgotten snapshots held; every test that changes the repository ends by
restoring each kept snapshot, comparing the restored bytes with what was backed up, and by a
full ``check --read-data``. Covered: keyed prune (deletes unneeded packs, keeps partly used
ones whole, rewrites index files), keyless prune at a DR copy (whole packs only), refusal on damage,
transient storage errors, a prune killed between its phases, and prune racing real ``drvault
backup`` processes on one repository. Repositories live on the ``--site`` backend, reached
through the CLI's transport stack.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from conftest import PASSWORD, SMALL_CHUNKS, CliResult, new_repo, run_drvault

from drvault.backup import BackupRequest, backup
from drvault.check import check
from drvault.errors import IntegrityError
from drvault.forget import forget
from drvault.policy.model import Retention
from drvault.prune import prune
from drvault.replicate import replicate
from drvault.repository import layout
from drvault.repository.repository import Repository
from drvault.restore import restore
from drvault.snapshot import NodeType
from drvault.snapshots import load, load_all, walk
from drvault.transport import LocalBackend, open_backend
from drvault.transport.base import Backend
from drvault.transport.metrics import Metrics
from drvault.transport.options import S3Options, TransportOptions
from drvault.transport.stack import stack, unwrap
from tests.servers.s3_server import MotoServer
from tests.sites import Site

KIB = 1 << 10
DAY_NS = 86_400 * 1_000_000_000
T0_NS = 1_709_251_200 * 1_000_000_000  # 2024-03-01T00:00:00Z
NOW = T0_NS / 1e9 + 30 * 86_400  # judged a month later

State = dict[str, bytes]  # relative path -> contents


# ----------------------------------------------------------------------------- helpers


class Source:
    """A source directory whose contents the test sets file by file, with a distinct mtime for
    every write (so a rewrite of the same size is always seen as a change)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state: State = {}
        self._tick = 1_700_000_000 * 1_000_000_000
        root.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> bytes:
        return os.fsencode(self.root)

    def set(self, state: State) -> State:
        for name in set(self.state) - set(state):
            (self.root / name).unlink()
        for name, data in state.items():
            if self.state.get(name) != data:
                path = self.root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                self._tick += 1_000_000_007
                os.utime(path, ns=(self._tick, self._tick))
        self.state = dict(state)
        return self.state


def read_tree(root: Path) -> State:
    out: State = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def assert_restores(
    repo: Repository, snapshot_id: bytes, src: Path, want: State, where: Path
) -> None:
    """Restoring the snapshot gives back exactly the bytes that were backed up."""
    shutil.rmtree(where, ignore_errors=True)
    restore(repo, load(repo, snapshot_id), os.fsencode(where))
    assert read_tree(where / str(src).lstrip("/")) == want


def assert_checks_clean(backend: Backend) -> None:
    result = check(Repository.open(backend, PASSWORD), read_data=True)
    assert result.errors == []


def stacked(site: Site, name: str) -> Backend:
    """Repository ``name`` on the site through the stack the CLI uses (retry outermost), as a
    prune always runs in production."""
    return stack(site.backend(name), site.options)


def listing(backend: Backend) -> dict[str, int]:
    """Every object but the locks, with its size."""
    return {i.name: i.size for i in backend.list("") if not i.name.startswith(layout.LOCKS)}


def contents(backend: Backend) -> dict[str, bytes]:
    return {name: backend.get(name) for name in listing(backend)}


def packs_of(names: dict[str, int] | set[str]) -> set[str]:
    return {n for n in names if n.startswith(("data/", "tree/"))}


def forgotten_only_bytes(forgotten: list[State], kept: list[State]) -> int:
    """Bytes of file contents that only forgotten snapshots hold (every file here is random
    data that shares no chunk with another file)."""
    keep = {data for state in kept for data in state.values()}
    gone = {data for state in forgotten for data in state.values()} - keep
    return sum(len(d) for d in gone)


def needed_packs(repo: Repository, snapshot_ids: set[bytes]) -> set[str]:
    """The packs holding a blob (tree or file content) of one of the snapshots, by a walk."""
    out: set[str] = set()

    def note(blob_id: bytes) -> None:
        entry = repo.index.get(blob_id)
        assert entry is not None
        out.add(layout.pack_path(entry.pack.kind, entry.pack.name))

    for snapshot in load_all(repo):
        if snapshot.id not in snapshot_ids:
            continue
        note(snapshot.tree)
        for e in walk(repo, snapshot.tree):
            if e.node.type == NodeType.DIR and e.node.subtree is not None:
                note(e.node.subtree)
            for blob_id in e.node.content:
                note(blob_id)
    return out


@dataclass
class Series:
    """Four daily snapshots of a changing directory; the oldest two are to be forgotten."""

    repo: Repository
    src: Source
    ids: list[bytes] = field(default_factory=list)  # oldest first
    states: list[State] = field(default_factory=list)


def four_days(repo: Repository, src: Source, seed: int = 7) -> Series:
    """Day i: three stable files; ``log`` rewritten; ``day-i`` only on day i; ``keep-1`` and
    ``keep-2`` appear on days 1 and 2 and stay (data a forgotten backup wrote that the kept
    snapshots still need)."""
    rnd = random.Random(seed)
    stable = {f"stable/s{i}": rnd.randbytes(30 * KIB + i) for i in range(3)}
    series = Series(repo, src)
    extra: State = {}
    for day in range(1, 5):
        if day <= 2:
            extra[f"keep-{day}"] = rnd.randbytes(40 * KIB + day)
        state = {
            **stable,
            **extra,
            "log": rnd.randbytes(50 * KIB),
            f"day-{day}": rnd.randbytes(60 * KIB + day),
        }
        src.set(state)
        result = backup(repo, BackupRequest(paths=(src.path,), time_ns=T0_NS + day * DAY_NS))
        assert not result.warnings
        series.ids.append(result.snapshot.id)
        series.states.append(state)
    return series


def forget_half(series: Series) -> None:
    result = forget(series.repo, Retention(last=2), now=NOW)
    assert {j.snapshot.id for j in result.removed} == set(series.ids[:2])


# ------------------------------------------------------------------------------- keyed


def test_keyed_prune_reclaims_what_only_forgotten_snapshots_held(
    site: Site, tmp_path: Path
) -> None:
    """Keyed prune deletes every pack nothing kept needs and repacks the partly needed ones:
    what it reclaims is at least the bytes only the forgotten snapshots held."""
    backend = stacked(site, "repo")
    repo = new_repo(backend, chunker=SMALL_CHUNKS, pack_size=64 * KIB)
    series = four_days(repo, Source(tmp_path / "src"))
    forget_half(series)
    kept_ids = set(series.ids[2:])
    opened = Repository.open(backend, PASSWORD)
    needed = needed_packs(opened, kept_ids)
    before = listing(backend)
    unneeded = packs_of(before) - needed
    assert unneeded  # the forgotten snapshots did hold data of their own
    expected = forgotten_only_bytes(series.states[:2], series.states[2:])

    result = prune(backend, opened, now=NOW, max_unused=0.0)
    after = listing(backend)
    assert result.errors == []
    removed = set(before) - set(after)
    repacked = set(result.plan.repack)
    assert repacked and repacked <= needed  # partly needed packs were rewritten...
    assert not removed & needed - repacked  # ...and nothing else needed was deleted
    assert unneeded <= removed  # every pack holding nothing needed is gone
    assert result.plan.unneeded_bytes >= expected
    assert result.bytes_deleted == sum(before[p] for p in unneeded | repacked)
    assert result.bytes_reclaimed >= expected
    assert result.plan.partly == 0 and result.forward_written in after

    fresh = Repository.open(backend, PASSWORD)
    for i in (2, 3):
        assert_restores(fresh, series.ids[i], series.src.root, series.states[i], tmp_path / "r")
    again = prune(backend, Repository.open(backend, PASSWORD), now=NOW, max_unused=0.0)
    assert again.plan.delete_packs == {} and again.plan.repack == {}
    assert again.plan.delete_index == [] and again.packs_deleted == 0
    assert listing(backend) == after
    assert_checks_clean(backend)


# ---------------------------------------------------------------------- partly used packs


def shared_packs(repo: Repository, src: Source, seed: int = 3) -> Series:
    """Day 1: 40 small files (one chunk each, several per pack). Day 2: every other file gone.
    Forgetting day 1 leaves every pack of day 1 about half needed."""
    rnd = random.Random(seed)
    day1 = {f"f{i:02d}": rnd.randbytes(2 * KIB + 37 * i) for i in range(40)}
    day2 = {name: data for i, (name, data) in enumerate(sorted(day1.items())) if i % 2}
    series = Series(repo, src)
    for day, state in enumerate((day1, day2), start=1):
        src.set(state)
        result = backup(repo, BackupRequest(paths=(src.path,), time_ns=T0_NS + day * DAY_NS))
        series.ids.append(result.snapshot.id)
        series.states.append(state)
    assert [j.snapshot.id for j in forget(repo, Retention(last=1), now=NOW).removed] == [
        series.ids[0]
    ]
    return series


@pytest.fixture
def half_used(site: Site, tmp_path: Path) -> Series:
    repo = new_repo(stacked(site, "repo"), chunker=SMALL_CHUNKS, pack_size=16 * KIB)
    return shared_packs(repo, Source(tmp_path / "src"))


def pack_names(backend: Backend) -> set[str]:
    return packs_of(listing(backend))


def test_partly_needed_packs_are_repacked(half_used: Series, site: Site, tmp_path: Path) -> None:
    """Half needed packs are rewritten into new packs holding only what is needed; a
    forwarding record lets a fresh DR copy get the new packs for the old snapshot's list, and
    both copies restore and check clean."""
    backend = half_used.repo.backend
    before = pack_names(backend)
    result = prune(backend, Repository.open(backend, PASSWORD), now=NOW, max_unused=0.0)
    assert result.errors == []
    repacked = set(result.plan.repack)
    assert len(repacked) >= 2 and result.blobs_repacked > 0 and result.packs_written > 0
    after = pack_names(backend)
    assert not repacked & after and after - before  # old packs gone, new packs there
    assert result.bytes_reclaimed > result.plan.unneeded_bytes * 0.9
    assert result.forward_written is not None
    record = json.loads(backend.get(result.forward_written))
    assert {f"data/{k[:2]}/{k}" for k in record["moved"]} >= {
        p for p in repacked if p.startswith("data/")
    }
    assert {k for new in record["moved"].values() for k in new} <= {
        layout.parse_hex_name(p).hex()
        for p in after  # type: ignore[union-attr]
    }

    dr = stacked(site, "dr")
    sent = replicate(backend, {"dr": dr})["dr"]
    assert sent.error is None and sent.skipped == []
    assert pack_names(dr) == after  # exactly the packs the closure needs: no old ones
    fresh = Repository.open(dr, PASSWORD)
    src = half_used.src.root
    assert_restores(fresh, half_used.ids[1], src, half_used.states[1], tmp_path / "r")
    assert_checks_clean(backend)
    assert_checks_clean(dr)
    assert prune(dr, None, now=NOW).packs_deleted == 0  # keyless at DR keeps the new packs
    assert pack_names(dr) == after
    assert_checks_clean(dr)


def test_a_damaged_forwarding_record_is_named_and_holds_its_snapshot_back(
    half_used: Series, site: Site
) -> None:
    """With the record damaged, what the old snapshot needs is unknown without the key:
    check names the record, keyless prune refuses with nothing deleted, and replication holds
    back only the snapshot that needs it."""
    backend = half_used.repo.backend
    result = prune(backend, Repository.open(backend, PASSWORD), now=NOW, max_unused=0.0)
    record = result.forward_written
    assert record is not None
    raw = bytearray(backend.get(record))
    raw[-3] ^= 0x01
    backend.put(record, bytes(raw))
    checked = check(Repository.open(backend, PASSWORD))
    assert any(e.startswith(record) for e in checked.errors)
    before = contents(backend)
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        prune(backend, None, now=NOW)
    assert contents(backend) == before
    sent = replicate(backend, {"dr": stacked(site, "dr")})["dr"]
    kept = layout.snapshot_path(half_used.ids[1])
    assert sent.error is None and sent.snapshots_sent == 0
    assert [s.split(":")[0] for s in sent.skipped] == [kept]
    assert "missing at source" in sent.skipped[0]


def test_partly_needed_packs_within_the_tolerance_stay(half_used: Series) -> None:
    """``max_unused`` above the waste leaves the partly needed packs whole and counted;
    ``max_repack`` caps how much is rewritten."""
    backend = half_used.repo.backend
    before = pack_names(backend)
    tolerant = prune(backend, Repository.open(backend, PASSWORD), now=NOW, max_unused=2.0)
    assert tolerant.plan.repack == {} and tolerant.plan.partly >= 2
    assert tolerant.plan.partly_unneeded > 0 and tolerant.forward_written is None
    assert pack_names(backend) == before - set(tolerant.plan.delete_packs)
    every = prune(
        backend, Repository.open(backend, PASSWORD), now=NOW, max_unused=0.0, dry_run=True
    ).plan.repack
    smallest = min(every.values())
    capped = prune(
        backend, Repository.open(backend, PASSWORD), now=NOW, max_unused=0.0, max_repack=smallest
    )
    assert 1 <= len(capped.plan.repack) < len(every)
    assert sum(capped.plan.repack.values()) <= smallest
    assert_checks_clean(backend)


def test_a_dr_copy_follows_a_repack_and_drops_the_old_packs(site: Site, tmp_path: Path) -> None:
    """The DR copy held the packs before the repack. After the source repacks and backs up
    again, replication sends the new packs and the forwarding record; a keyless prune there
    drops the old packs, superseded, and both snapshots still restore and check clean."""
    backend = stacked(site, "repo")
    repo = new_repo(backend, chunker=SMALL_CHUNKS, pack_size=16 * KIB)
    src = Source(tmp_path / "src")
    rnd = random.Random(5)
    day1 = {f"f{i:02d}": rnd.randbytes(2 * KIB + 37 * i) for i in range(40)}
    day2 = {name: data for i, (name, data) in enumerate(sorted(day1.items())) if i % 2}
    ids: list[bytes] = []
    for day, state in enumerate((day1, day2), start=1):
        src.set(state)
        made = backup(repo, BackupRequest(paths=(src.path,), time_ns=T0_NS + day * DAY_NS))
        ids.append(made.snapshot.id)
    dr = stacked(site, "dr")
    assert replicate(backend, {"dr": dr})["dr"].error is None
    old_packs = pack_names(dr)
    forget(repo, Retention(last=1), now=NOW)
    forget(Repository.open(dr, PASSWORD), Retention(last=1), now=NOW)
    result = prune(backend, Repository.open(backend, PASSWORD), now=NOW, max_unused=0.0)
    assert result.plan.repack and result.errors == []
    # Day 3 is day 2 again plus one file: it dedups against the repacked blobs.
    day3 = {**day2, "new": rnd.randbytes(3 * KIB)}
    src.set(day3)
    again = Repository.open(backend, PASSWORD)
    ids.append(
        backup(again, BackupRequest(paths=(src.path,), time_ns=T0_NS + 3 * DAY_NS)).snapshot.id
    )
    sent = replicate(backend, {"dr": dr})["dr"]
    assert sent.error is None and sent.skipped == []
    assert result.forward_written in listing(dr)
    keyless = prune(dr, None, now=NOW)
    assert keyless.errors == [] and keyless.plan.superseded > 0
    gone = old_packs - pack_names(dr)
    assert set(result.plan.repack) & gone  # superseded packs dropped at DR
    fresh = Repository.open(dr, PASSWORD)
    for snapshot_id, state in ((ids[1], day2), (ids[2], day3)):
        assert_restores(fresh, snapshot_id, src.root, state, tmp_path / "r")
    assert_checks_clean(dr)
    assert_checks_clean(backend)


def test_dry_run_deletes_nothing(half_used: Series) -> None:
    backend = half_used.repo.backend
    before = contents(backend)
    result = prune(backend, Repository.open(backend, PASSWORD), now=NOW, dry_run=True)
    assert result.plan.partly or result.plan.delete_packs  # there was something to do
    assert result.packs_deleted == result.index_deleted == result.index_written == 0
    assert contents(backend) == before
    keyless = prune(backend, None, now=NOW, dry_run=True)
    assert keyless.packs_deleted == 0
    assert contents(backend) == before


# ------------------------------------------------------------------------- keyless (DR)


def test_keyless_prune_at_a_dr_copy(site: Site, tmp_path: Path) -> None:
    """Day i: small stable files plus 1 MiB that only day i has. Day 1's index file names the
    stable data (still needed) and day 1's own packs, so those are held; day 2's index file and
    packs name nothing a kept snapshot needs, so they go."""
    source = new_repo(stacked(site, "repo"), chunker=SMALL_CHUNKS, pack_size=64 * KIB)
    src = Source(tmp_path / "src")
    rnd = random.Random(11)
    stable = {f"stable/s{i}": rnd.randbytes(20 * KIB + i) for i in range(3)}
    ids: list[bytes] = []
    states: list[State] = []
    written: list[set[str]] = []  # objects each backup added
    for day in range(1, 5):
        state = src.set({**stable, f"day/u{day}": rnd.randbytes(1024 * KIB + day)})
        had = set(listing(source.backend))
        made = backup(source, BackupRequest(paths=(src.path,), time_ns=T0_NS + day * DAY_NS))
        written.append(set(listing(source.backend)) - had)
        ids.append(made.snapshot.id)
        states.append(state)
    dr = stacked(site, "dr")
    assert replicate(source.backend, {"dr": dr})["dr"].error is None

    at_dr = Repository.open(dr, PASSWORD)
    assert {j.snapshot.id for j in forget(at_dr, Retention(last=2), now=NOW).removed} == set(
        ids[:2]
    )
    needed = needed_packs(at_dr, set(ids[2:]))
    before = contents(dr)

    result = prune(dr, None, now=NOW)
    assert result.errors == [] and not result.plan.keyed
    after = contents(dr)
    removed = set(before) - set(after)
    day2 = {n for n in written[1] if n.startswith(("data/", "tree/", "index/"))}
    assert removed == day2  # day 2's packs and its index file, nothing else
    held = set(result.plan.held)
    day1_only = packs_of(written[0]) - needed
    assert held == day1_only and held  # unneeded, named by an index file that must stay
    assert held <= set(after)
    assert all(after[p] == before[p] for p in needed)  # needed packs untouched
    assert set(after) - set(before) == set()  # keyless: nothing written

    fresh = Repository.open(dr, PASSWORD)
    for i in (2, 3):
        assert_restores(fresh, ids[i], src.root, states[i], tmp_path / "r")
    assert_checks_clean(dr)
    assert prune(dr, None, now=NOW).packs_deleted == 0


# ----------------------------------------------------------------------------- refusal


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "keyless"])
def test_a_damaged_snapshot_refuses_the_prune(site: Site, tmp_path: Path, keyed: bool) -> None:
    backend = stacked(site, "repo")
    repo = new_repo(backend, chunker=SMALL_CHUNKS, pack_size=64 * KIB)
    series = four_days(repo, Source(tmp_path / "src"))
    forget_half(series)
    victim = layout.snapshot_path(series.ids[3])
    site.flip(victim, site.size(victim) - 1)
    before = contents(backend)
    with pytest.raises(IntegrityError, match=series.ids[3].hex()):
        prune(backend, Repository.open(backend, PASSWORD) if keyed else None, now=NOW)
    assert contents(backend) == before


# ----------------------------------------------------------------------- storage errors


def slow_down_once(
    backend: Backend, kinds: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Make the S3 client under ``backend`` answer the first DELETE of an object under one of
    ``kinds`` with 503 SlowDown; the list gets that object's key."""
    client = unwrap(backend)._client  # type: ignore[attr-defined]
    real = client.delete_object
    failed: list[str] = []
    once = threading.Lock()

    def delete_object(**kwargs: object) -> object:
        key = str(kwargs["Key"])
        with once:
            fail = not failed and any(f"/{kind}" in key for kind in kinds)
            if fail:
                failed.append(key)
        if fail:
            error = {"Code": "SlowDown", "Message": "Please reduce your request rate."}
            response = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 503}}
            raise ClientError(response, "DeleteObject")  # type: ignore[arg-type]
        return real(**kwargs)

    monkeypatch.setattr(client, "delete_object", delete_object)
    return failed


def test_a_transient_delete_failure_on_s3_is_retried(
    s3_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI's stack, one 503 SlowDown on a DELETE is retried like any transient
    error, so the prune completes (S3 answers deletes this way under load)."""
    options = TransportOptions(s3=S3Options())
    metrics = Metrics()
    backend = stack(open_backend(s3_server.url(s3_server.new_bucket()), options), options, metrics)
    repo = new_repo(backend, chunker=SMALL_CHUNKS, pack_size=64 * KIB)
    series = four_days(repo, Source(tmp_path / "src"))
    forget_half(series)
    failed = slow_down_once(backend, ("data/", "tree/"), monkeypatch)
    result = prune(backend, Repository.open(backend, PASSWORD), now=NOW)
    assert failed, "no pack was deleted"
    assert result.errors == []
    assert metrics.retries >= 1
    assert not packs_of(listing(backend)) & set(result.plan.delete_packs)


# ------------------------------------------------------------------------- interrupted


class Killed(Exception):
    pass


@pytest.mark.parametrize(
    "at_call",
    [-1, 0, 1, 2],
    ids=["after-repack", "after-forward", "before-index-deletes", "before-pack-deletes"],
)
def test_an_interrupted_prune_leaves_a_whole_repository(
    site: Site, tmp_path: Path, at_call: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune killed after the repack (new packs, no forwarding record), after the record,
    or at the guard before each delete phase leaves a repository that restores, checks clean
    and replicates whole; the next prune converges."""
    backend = stacked(site, "repo")
    repo = new_repo(backend, chunker=SMALL_CHUNKS, pack_size=64 * KIB)
    series = four_days(repo, Source(tmp_path / "src"))
    forget_half(series)
    calls = 0

    def guard() -> None:
        nonlocal calls
        calls += 1
        if calls == at_call:
            raise Killed

    def killed(*_args: object, **_kw: object) -> None:
        raise Killed

    if at_call == -1:
        monkeypatch.setattr("drvault.prune.forward.write", killed)
    elif at_call == 0:
        monkeypatch.setattr("drvault.prune._rewrite_index", killed)
    before = listing(backend)
    with pytest.raises(Killed):
        prune(backend, Repository.open(backend, PASSWORD), guard=guard, now=NOW, max_unused=0.0)
    monkeypatch.undo()
    assert set(listing(backend)) != set(before)  # it got somewhere
    target = tmp_path / "r"

    def whole(name: str) -> None:
        fresh = Repository.open(backend, PASSWORD)
        for i in (2, 3):
            assert_restores(fresh, series.ids[i], series.src.root, series.states[i], target)
        assert_checks_clean(backend)
        dr = stacked(site, name)
        sent = replicate(backend, {name: dr})[name]
        assert sent.error is None and sent.skipped == []
        at_dr = Repository.open(dr, PASSWORD)
        assert_restores(at_dr, series.ids[3], series.src.root, series.states[3], target)

    whole("dr-1")
    result = prune(backend, Repository.open(backend, PASSWORD), now=NOW, max_unused=0.0)
    assert result.errors == [] and result.packs_deleted > 0
    whole("dr-2")
    final = prune(backend, Repository.open(backend, PASSWORD), now=NOW, max_unused=0.0).plan
    assert final.delete_packs == {} and final.delete_index == [] and final.repack == {}


# ------------------------------------------------------------------------- concurrency


ITERATIONS = 15


def mutate(rnd: random.Random, state: State, serial: int) -> State:
    """Rewrite two files, delete one, add one (sizes 1-60 KiB of random bytes)."""
    out = dict(state)
    names = sorted(out)
    for name in rnd.sample(names, min(2, len(names))):
        out[name] = rnd.randbytes(rnd.randrange(KIB, 60 * KIB))
    if len(out) > 4:
        del out[rnd.choice(sorted(out))]
    out[f"n{serial:03d}"] = rnd.randbytes(rnd.randrange(KIB, 60 * KIB))
    return out


# forget, then prune, in one process (as a cron job would run them back to back)
RETENTION = """\
import sys
from drvault.cli import cli
for args in (["forget", sys.argv[1], "--keep-last", "2"], ["prune", sys.argv[1], *sys.argv[2:]]):
    cli.main(["--json", "--lock-wait", "60s", *args], "drvault", standalone_mode=False)
"""


def test_backup_races_forget_and_prune(tmp_path: Path, password_file: Path) -> None:
    """Each round: a ``drvault backup`` process and a ``forget --keep-last 2`` + ``prune``
    process start together (the second after 0-200 ms) on one repository, the source changed
    between rounds. The backup's shared lock and prune's exclusive one must keep every
    snapshot whole."""
    url = tmp_path / "repo"
    new_repo(LocalBackend(url), chunker=SMALL_CHUNKS, pack_size=64 * KIB)
    src = Source(tmp_path / "src")
    rnd = random.Random(2024)
    state: State = {f"n{i:03d}": rnd.randbytes(rnd.randrange(KIB, 60 * KIB)) for i in range(6)}
    backed_up: dict[str, State] = {}
    pruned: list[int] = []  # packs each round's prune deleted
    start = time.monotonic()

    def retention(delay: float, out: list[CliResult]) -> None:
        time.sleep(delay)
        out.append(run_drvault(url, code=RETENTION, cwd=tmp_path, password_file=password_file))

    for serial in range(ITERATIONS):
        state = src.set(mutate(rnd, state, 100 + serial))
        done: list[CliResult] = []
        other = threading.Thread(target=retention, args=(rnd.uniform(0, 0.2), done))
        other.start()
        made = run_drvault(
            "--json", "--lock-wait", "60s", "backup", url, src.root,
            cwd=tmp_path, password_file=password_file,
        )  # fmt: skip
        other.join()
        assert made.code == 0, made
        assert done[0].code == 0, done[0]
        forgot, pruning = (json.loads(line) for line in done[0].out.splitlines())
        assert forgot["repositories"][0]["errors"] == []
        pruned.append(pruning["repositories"][0]["packs_deleted"])
        backed_up[made.json()["snapshot"]["id"]] = dict(state)
    elapsed = time.monotonic() - start

    assert sum(pruned) > 0  # prune did delete, round after round
    repo = Repository.open(LocalBackend(url), PASSWORD)
    remaining = [i.hex() for i in repo.snapshot_ids()]
    assert 2 <= len(remaining) <= 3
    assert set(remaining) <= set(backed_up)
    for snapshot_id in remaining:
        assert_restores(
            repo, bytes.fromhex(snapshot_id), src.root, backed_up[snapshot_id], tmp_path / "r"
        )
    assert_checks_clean(LocalBackend(url))
    assert elapsed < 90, f"{ITERATIONS} rounds took {elapsed:.0f} s"
