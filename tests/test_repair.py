"""Scrub and repair as library calls, on the test's site (local disk, or S3 / SFTP with --site):
each kind of damage is named by scrub and healed by repair from another copy, and a repaired
copy restores byte-exact and checks clean."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from conftest import PASSWORD, SMALL_CHUNKS, new_repo

from drvault.backup import BackupRequest, backup
from drvault.check import check
from drvault.forget import forget
from drvault.policy.model import Retention
from drvault.prune import prune
from drvault.repair import repair
from drvault.replicate import replicate
from drvault.repository import layout
from drvault.repository.repository import Repository
from drvault.restore import restore
from drvault.scrub import scrub
from drvault.snapshots import load
from drvault.transport.appendonly import AppendOnlyBackend
from drvault.transport.base import Backend
from tests.sites import Site
from tests.test_prune import DAY_NS, NOW, T0_NS, Source, read_tree

KIB = 1 << 10


def two_copies(site: Site, tmp_path: Path) -> tuple[Backend, Backend, list[bytes], Source]:
    """A source with three daily snapshots and a full replica."""
    source = site.backend("source")
    repo = new_repo(source, chunker=SMALL_CHUNKS, pack_size=64 * KIB)
    src = Source(tmp_path / "src")
    rnd = random.Random(4)
    ids = []
    for day in range(1, 4):
        src.set({"stable": rnd.randbytes(50 * KIB) if day == 1 else src.state["stable"],
                 f"day{day}": rnd.randbytes(90 * KIB)})  # fmt: skip
        made = backup(repo, BackupRequest(paths=(src.path,), time_ns=T0_NS + day * DAY_NS))
        ids.append(made.snapshot.id)
    replica = site.backend("replica")
    assert replicate(source, {"r": replica})["r"].error is None
    return source, replica, ids, src


def assert_whole(backend: Backend, snapshot_id: bytes, src: Source, where: Path) -> None:
    repo = Repository.open(backend, PASSWORD)
    shutil.rmtree(where, ignore_errors=True)
    restore(repo, load(repo, snapshot_id), os.fsencode(where))
    assert read_tree(where / str(src.root).lstrip("/")) == src.state
    assert check(repo, read_data=True).errors == []


def test_a_lost_index_file_and_a_corrupt_snapshot_are_healed(site: Site, tmp_path: Path) -> None:
    source, replica, ids, src = two_copies(site, tmp_path)
    index = sorted(i.name for i in replica.list(layout.INDEX))[0]
    replica.delete(index)
    snapshot = layout.snapshot_path(ids[0])
    raw = bytearray(replica.get(snapshot))
    raw[-1] ^= 1
    replica.put(snapshot, bytes(raw))
    found = scrub(replica)
    kinds = {p.kind for p in found.problems}
    assert kinds == {"corrupt", "unindexed"}
    assert snapshot in found.paths("corrupt")

    result = repair(replica, {"source": source})
    assert result.ok, result
    assert index in result.repaired and snapshot in result.repaired
    assert scrub(replica).ok and scrub(replica, Repository.open(replica, PASSWORD)).ok
    assert_whole(replica, ids[2], src, tmp_path / "r")


def test_a_deleted_snapshot_comes_back_but_a_forgotten_one_does_not(
    site: Site, tmp_path: Path
) -> None:
    source, replica, ids, src = two_copies(site, tmp_path)
    replica.delete(layout.snapshot_path(ids[2]))  # lost at the replica
    at_replica = Repository.open(replica, PASSWORD)
    forget(at_replica, Retention(last=1), now=NOW)  # the replica's retention: keeps the newest
    kept = set(at_replica.snapshot_ids())
    assert kept == {ids[1]}
    result = repair(replica, {"source": source})
    assert result.ok and result.snapshots_restored == 1
    assert set(Repository.open(replica, PASSWORD).snapshot_ids()) == {ids[1], ids[2]}
    assert_whole(replica, ids[2], src, tmp_path / "r")


def test_scrub_follows_forwarding_records_after_a_repack(site: Site, tmp_path: Path) -> None:
    source, _replica, ids, src = two_copies(site, tmp_path)
    repo = Repository.open(source, PASSWORD)
    forget(repo, Retention(last=1), now=NOW)
    pruned = prune(source, Repository.open(source, PASSWORD), now=NOW, max_unused=0.0)
    assert pruned.errors == [] and pruned.plan.repack
    assert scrub(source).ok  # the old packs the snapshot lists are forwarded, not missing
    fresh = site.backend("fresh")
    assert replicate(source, {"f": fresh})["f"].error is None
    assert scrub(fresh).ok
    assert_whole(fresh, ids[2], src, tmp_path / "r")


def test_an_append_only_copy_gets_missing_objects_but_nothing_overwritten(
    site: Site, tmp_path: Path
) -> None:
    source, replica, _ids, _src = two_copies(site, tmp_path)
    packs = sorted(i.name for i in replica.list("data/"))
    replica.delete(packs[0])
    raw = bytearray(replica.get(packs[1]))
    raw[50] ^= 1
    replica.put(packs[1], bytes(raw))
    result = repair(AppendOnlyBackend(replica), {"source": source})
    assert packs[0] in result.repaired
    # The overwrite is refused (silently, by the wrapper): the recheck names the pack again.
    assert result.after is not None and result.after.paths("corrupt") == [packs[1]]
    assert not result.ok
    assert replica.get(packs[1]) == bytes(raw)  # left as it was


def test_dry_run_changes_nothing(site: Site, tmp_path: Path) -> None:
    source, replica, _ids, _src = two_copies(site, tmp_path)
    pack = sorted(i.name for i in replica.list("data/"))[0]
    replica.delete(pack)
    before = sorted(i.name for i in replica.list(""))
    result = repair(replica, {"source": source}, dry_run=True)
    assert [p.kind for p in result.before.problems] == ["missing"] and result.after is None
    assert sorted(i.name for i in replica.list("")) == before
