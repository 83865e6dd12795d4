"""Backup and repair killed with SIGKILL at 20 random points each (replication's kill points
are in tests/replicate/test_kill.py): after every kill the repository checks clean with every
blob read, every committed snapshot restores byte-exact, and a rerun completes the work."""

from __future__ import annotations

import os
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PASSWORD, SMALL_CHUNKS, new_repo

from drvault.check import check
from drvault.replicate import replicate
from drvault.repository import layout
from drvault.repository.repository import Repository
from drvault.restore import restore
from drvault.scrub import scrub
from drvault.snapshots import load
from drvault.transport import LocalBackend
from tests.killing import count_objects, kill_when
from tests.test_prune import Source, read_tree

ROOT = Path(__file__).resolve().parents[1]
KIB = 1 << 10
DELAY = 0.01  # seconds added to every put
KILLS = 20


def run_killed(args: list[str], landed: Callable[[], int], at: int, extra: float) -> int:
    """Run ``python -m tests.kill_runner ARGS``; SIGKILL it once ``landed()`` reaches ``at``
    and ``extra`` seconds more passed (or let it finish). Its exit code (-9 when killed)."""
    env = {**os.environ, "DRVAULT_TEST_PASSWORD": PASSWORD.decode()}
    cmd = [sys.executable, "-m", "tests.kill_runner", *args, str(DELAY)]
    return kill_when(cmd, landed, at, extra, cwd=ROOT, env=env)


def assert_every_snapshot_restores(
    repo_path: Path,
    expected: dict[bytes, dict[str, bytes]],
    src: Path,
    where: Path,
    only: set[bytes] | None = None,
) -> None:
    """Every snapshot (or those of ``only``) restores to its expected tree; check reads every
    blob of every pack and finds nothing wrong."""
    repo = Repository.open(LocalBackend(repo_path), PASSWORD)
    ids = set(repo.snapshot_ids())
    assert ids <= set(expected), "a snapshot no run committed"
    for snapshot_id in sorted(ids if only is None else ids & only):
        shutil.rmtree(where, ignore_errors=True)
        restore(repo, load(repo, snapshot_id), os.fsencode(where))
        assert read_tree(where / str(src).lstrip("/")) == expected[snapshot_id]
    result = check(repo, read_data=True)
    assert result.errors == []


def test_backup_killed_at_random_points(tmp_path: Path) -> None:
    """Twenty backups of a changing tree, each killed at a random point (some run to the end
    and commit). Each committed snapshot is the state of the run that wrote it."""
    rnd = random.Random(2026)
    repo_path = tmp_path / "repo"
    new_repo(LocalBackend(repo_path), chunker=SMALL_CHUNKS, pack_size=48 * KIB)
    src = Source(tmp_path / "src")
    state = {f"f{i}": rnd.randbytes(rnd.randrange(20, 120) * KIB) for i in range(12)}
    expected: dict[bytes, dict[str, bytes]] = {}
    seen: set[bytes] = set()
    committed = 0
    for kill in range(KILLS):
        # Each run: one file rewritten, one appended to, one new.
        state = dict(state)
        state[f"f{rnd.randrange(12)}"] = rnd.randbytes(rnd.randrange(20, 120) * KIB)
        state["f0"] = state["f0"] + rnd.randbytes(8 * KIB)
        state[f"new{kill}"] = rnd.randbytes(30 * KIB)
        src.set(state)
        before = count_objects(repo_path)()
        at = before + rnd.randrange(0, 45)
        code = run_killed(
            ["backup", str(repo_path), str(src.root)],
            count_objects(repo_path),
            at,
            rnd.uniform(0, DELAY),
        )
        repo = Repository.open(LocalBackend(repo_path), PASSWORD)
        new = set(repo.snapshot_ids()) - seen
        for snapshot_id in new:
            expected[snapshot_id] = dict(state)
            seen.add(snapshot_id)
            committed += 1
        assert len(new) <= 1 and (code != 0 or len(new) == 1)
        assert_every_snapshot_restores(repo_path, expected, src.root, tmp_path / "r", new)
    assert 0 < committed < KILLS  # some runs were killed, some committed
    # A run to the end after all this commits the final state.
    assert run_killed(["backup", str(repo_path), str(src.root)], lambda: 0, 10**9, 0) == 0
    repo = Repository.open(LocalBackend(repo_path), PASSWORD)
    for snapshot_id in set(repo.snapshot_ids()) - seen:
        expected[snapshot_id] = dict(state)
    assert_every_snapshot_restores(repo_path, expected, src.root, tmp_path / "r")


@pytest.fixture(scope="module")
def good_copy(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict[bytes, dict[str, bytes]]]:
    """A repository with two snapshots, and its source tree of the newest."""
    base = tmp_path_factory.mktemp("kill-repair")
    from drvault.backup import BackupRequest, backup

    repo = new_repo(LocalBackend(base / "good"), chunker=SMALL_CHUNKS, pack_size=48 * KIB)
    src = Source(base / "src")
    rnd = random.Random(7)
    expected: dict[bytes, dict[str, bytes]] = {}
    for _day in range(2):
        state = src.set({f"f{i}": rnd.randbytes(rnd.randrange(20, 100) * KIB) for i in range(10)})
        made = backup(repo, BackupRequest(paths=(os.fsencode(src.root),)))
        expected[made.snapshot.id] = dict(state)
    return base / "good", src.root, expected


def damage(copy: Path, rnd: random.Random) -> None:
    """Delete a third of the packs, corrupt another few objects, drop an index file and a
    snapshot: every kind of damage repair heals."""
    backend = LocalBackend(copy)
    packs = sorted(i.name for k in ("data/", "tree/") for i in backend.list(k))
    rnd.shuffle(packs)
    for name in packs[: len(packs) // 3]:
        backend.delete(name)
    for name in packs[len(packs) // 3 : len(packs) // 3 + 3]:
        raw = bytearray(backend.get(name))
        raw[rnd.randrange(len(raw))] ^= 0x10
        (copy / name).write_bytes(bytes(raw))
    index = sorted(i.name for i in backend.list(layout.INDEX))
    backend.delete(rnd.choice(index))
    snapshots = sorted(i.name for i in backend.list(layout.SNAPSHOTS))
    backend.delete(snapshots[0])


def test_repair_killed_at_random_points(
    tmp_path: Path, good_copy: tuple[Path, Path, dict[bytes, dict[str, bytes]]]
) -> None:
    """Twenty repairs of a damaged copy, each killed at a random point: no kill leaves the copy
    worse (nothing it held whole is damaged or lost, every snapshot it shows restores), and the
    run after the last kill heals it completely."""
    good, src, expected = good_copy
    rnd = random.Random(99)
    copy = tmp_path / "copy"
    for kill in range(KILLS):
        if kill % 5 == 0:  # a fresh copy, damaged anew, every fifth kill
            shutil.rmtree(copy, ignore_errors=True)
            assert replicate(LocalBackend(good), {"c": LocalBackend(copy)})["c"].error is None
            damage(copy, rnd)
        before = scrub(LocalBackend(copy))
        whole_before = {i.name for i in LocalBackend(copy).list("") if i.name not in before.paths()}
        start = count_objects(copy)()
        code = run_killed(
            ["repair", str(copy), str(good)],
            count_objects(copy),
            start + rnd.randrange(0, 12),
            rnd.uniform(0, DELAY),
        )
        after = scrub(LocalBackend(copy))
        assert not set(after.paths("corrupt")) - set(before.paths("corrupt"))  # nothing new
        present = {i.name for i in LocalBackend(copy).list("")}
        assert whole_before - {n for n in whole_before if n.startswith(layout.LOCKS)} <= present
        if code == 0:
            assert after.ok
        at_copy = Repository.open(LocalBackend(copy), PASSWORD)
        showing = [s for s in at_copy.snapshot_ids() if after.ok]
        for snapshot_id in showing:
            where = tmp_path / "r"
            shutil.rmtree(where, ignore_errors=True)
            restore(at_copy, load(at_copy, snapshot_id), os.fsencode(where))
            assert read_tree(where / str(src).lstrip("/")) == expected[snapshot_id]
    assert run_killed(["repair", str(copy), str(good)], lambda: 0, 10**9, 0) == 0
    assert scrub(LocalBackend(copy), Repository.open(LocalBackend(copy), PASSWORD)).ok
    assert_every_snapshot_restores(copy, expected, src, tmp_path / "r")
    assert set(Repository.open(LocalBackend(copy), PASSWORD).snapshot_ids()) == set(expected)
