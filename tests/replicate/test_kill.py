"""Replication killed with SIGKILL at random points leaves every DR copy consistent: no snapshot
is visible before all its packs and index files, no partial object is visible, and the next run
resumes from the listings (nothing landed is sent again) and completes the copy."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from trees import write

from drvault.replicate import replicate
from drvault.transport import LocalBackend
from drvault.transport.base import Backend
from tests.killing import count_objects, kill_when
from tests.replicate.helpers import (
    assert_mirror,
    assert_restores,
    assert_snapshots_complete,
    back_up,
    build_tree,
    init_repo,
    objects,
    pack_names,
)
from tests.servers.sshd_server import SshdServer
from tests.sites import make_site

ROOT = Path(__file__).resolve().parents[2]
DELAY = 0.03  # seconds added to every put at the target


@dataclass(frozen=True)
class Source:
    prod: Path  # two snapshots
    day1: Path  # a copy of prod holding only the first
    src: bytes  # the tree as of the second snapshot
    latest: bytes


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    base = tmp_path_factory.mktemp("kill-source")
    src = os.fsencode(base / "src")
    build_tree(src, seed=7)
    repo = init_repo(LocalBackend(base / "prod"))
    back_up(repo, src)
    shutil.copytree(base / "prod", base / "day1")
    write(os.path.join(src, b"small", b"day2"), os.urandom(300_000))
    with open(os.path.join(src, b"big", b"f1.bin"), "r+b") as f:
        f.seek(100_000)
        f.write(os.urandom(50_000))
    latest = back_up(repo, src)
    return Source(base / "prod", base / "day1", src, latest)


def kill_after(
    source: Path, url: str, landed: Callable[[], int], at: int, extra: float
) -> int | None:
    """Run the replication in a child; SIGKILL it once ``landed()`` reaches ``at`` objects
    and ``extra`` seconds more have passed. Returns its exit code (``-9`` when killed)."""
    cmd = [sys.executable, "-m", "tests.replicate.runner", str(source), url, str(DELAY)]
    return kill_when(cmd, landed, at, extra, cwd=ROOT)


def finish_and_verify(source: Source, dr: Backend, tmp: Path) -> None:
    """A normal run completes the copy without sending anything twice."""
    prod = LocalBackend(source.prod)
    had = set(pack_names(dr))
    r = replicate(prod, {"dr": dr})["dr"]
    assert r.error is None and r.skipped == [] and r.snapshots_present == 2
    assert r.packs_sent == len(set(pack_names(prod)) - had)
    assert_mirror(prod, dr)
    assert_restores(dr, source.latest, source.src, tmp)


@pytest.mark.parametrize("seed", range(16))
def test_kill_at_random_points_then_resume(source: Source, tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    dr_path = tmp_path / "dr"
    dr = LocalBackend(dr_path)
    if seed % 2:  # a center already holding day 1 receives day 2
        assert replicate(LocalBackend(source.day1), {"dr": dr})["dr"].error is None
    if seed == 0:  # what a kill inside a write leaves: a temporary file, which is no object
        (dr_path / "data").mkdir(parents=True)
        (dr_path / "data" / ".tmp-0123456789abcdef").write_bytes(b"DRVP half a pack")
    total = len(objects(LocalBackend(source.prod)))
    kills = 2 if seed % 4 == 0 else 1
    for kill in range(kills):
        start = count_objects(dr_path)()
        # seeds 3 and 6 kill in the snapshot phase, the last one going
        at = total - 1 if seed in (3, 6) and kill == 0 else rnd.randrange(start, total)
        extra = rnd.uniform(0, DELAY)
        code = kill_after(source.prod, str(dr_path), count_objects(dr_path), at, extra)
        if at <= total - 5:  # two more rounds of puts were due: the kill came first
            assert code == -signal.SIGKILL
        assert assert_snapshots_complete(dr) <= 2
        assert_mirror(LocalBackend(source.prod), dr, whole=False)
    finish_and_verify(source, dr, tmp_path / "restored")


def test_kill_with_an_sftp_target(source: Source, tmp_path: Path, sshd_server: SshdServer) -> None:
    site = make_site("sftp", tmp_path, sshd_server)
    try:
        url = site.url("dr")
        local_root = Path(urlsplit(url).path)  # the server's directory, polled from here
        dr = site.backend("dr")
        total = len(objects(LocalBackend(source.prod)))
        rnd = random.Random(2024)
        points = sorted(rnd.sample(range(1, total - 2), 3))
        for at in points:
            code = kill_after(
                source.prod, url, count_objects(local_root), at, rnd.uniform(0, DELAY)
            )
            assert code == -signal.SIGKILL
            assert assert_snapshots_complete(dr) <= 2
            assert_mirror(LocalBackend(source.prod), dr, whole=False)
        finish_and_verify(source, dr, tmp_path / "restored")
    finally:
        site.close()
