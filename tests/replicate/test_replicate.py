"""Keyless replication from a production repository to DR repositories: byte-identical copies
that restore, incremental runs that send only what is new, one source read per pack however
many targets, damaged source objects never copied, foreign repositories refused, no plaintext
anywhere."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import PASSWORD
from trees import write

from drvault.backup import BackupRequest, backup
from drvault.errors import (
    BackendError,
    PermanentError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    UsageError,
)
from drvault.replicate import ReplicationPlan, TargetResult, plan, replicate
from drvault.repository import layout
from drvault.repository.crypto import sha256
from drvault.repository.keys import KdfParams
from drvault.repository.repository import Repository
from drvault.transport import LocalBackend
from drvault.transport.base import Backend, ObjectInfo
from drvault.transport.stack import Wrapper
from tests.replicate.helpers import (
    KIB,
    Counting,
    assert_mirror,
    assert_restores,
    assert_snapshots_complete,
    back_up,
    build_tree,
    init_repo,
    objects,
    pack_names,
)
from tests.replicate.runner import Slow
from tests.servers.s3_server import MotoServer
from tests.servers.sshd_server import SshdServer
from tests.sites import Site, make_site

MARKER = b"MARKER-7f3a-ledger-account"
MISMATCH = "content does not match its name (SHA-256 mismatch)"


def sizes(backend: Backend, prefixes: tuple[str, ...]) -> dict[str, int]:
    return {n: s for n, s in objects(backend).items() if n.startswith(prefixes)}


def nothing_sent(result: TargetResult) -> bool:
    counts = (result.snapshots_sent, result.packs_sent, result.index_sent, result.other_sent)
    return result.error is None and result.bytes_sent == 0 and counts == (0, 0, 0, 0)


@pytest.fixture
def src(tmp_path: Path) -> bytes:
    path = os.fsencode(tmp_path / "src")
    build_tree(path, seed=1)
    return path


@pytest.fixture
def prod(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "prod")


def test_first_run_copies_everything_byte_identical(
    tmp_path: Path, src: bytes, prod: LocalBackend
) -> None:
    snapshot = back_up(init_repo(prod), src)
    dr = LocalBackend(tmp_path / "dr")
    seen: list[tuple[str, int]] = []

    results = replicate(prod, {"dc2": dr}, progress=lambda n, r: seen.append((n, r.bytes_sent)))

    r = results["dc2"]
    assert r.error is None and r.skipped == []
    assert (r.snapshots_sent, r.snapshots_present) == (1, 1)
    assert r.packs_sent == len(pack_names(prod)) > 10
    assert r.index_sent == len(sizes(prod, (layout.INDEX,))) >= 1
    assert r.other_sent == 2  # config and the one key slot
    assert r.bytes_sent == sum(objects(prod).values())
    assert r.seconds > 0
    assert seen and seen[-1] == ("dc2", r.bytes_sent)
    assert_mirror(prod, dr)
    assert_restores(dr, snapshot, src, tmp_path / "restored")


def test_second_day_sends_only_new_packs_third_run_nothing(
    tmp_path: Path, src: bytes, prod: LocalBackend
) -> None:
    repo = init_repo(prod)
    back_up(repo, src)
    dr = LocalBackend(tmp_path / "dr")
    replicate(prod, {"dc2": dr})
    day1 = objects(prod)

    # day 2: a few percent changes: three 2 KiB edits in a big file and one new 40 KiB file
    big = os.path.join(src, b"big", b"f0.bin")
    with open(big, "r+b") as f:
        for offset in (10 * KIB, 300 * KIB, 550 * KIB):
            f.seek(offset)
            f.write(os.urandom(2 * KIB))
    write(os.path.join(src, b"small", b"new"), os.urandom(40 * KIB))
    snapshot2 = back_up(repo, src)
    new = {n: s for n, s in objects(prod).items() if n not in day1}
    new_packs = sum(s for n, s in new.items() if n.startswith(("data/", "tree/")))
    new_index = sum(s for n, s in new.items() if n.startswith(layout.INDEX))
    new_snapshots = sum(s for n, s in new.items() if n.startswith(layout.SNAPSHOTS))
    assert 0 < new_packs < 0.2 * sum(day1.values())  # the change really is small

    r = replicate(prod, {"dc2": dr})["dc2"]

    # what is compared: bytes put at the target against the new packs, index files and
    # snapshot at the source; nothing of day 1 is sent again, so they are in fact equal
    assert r.error is None and r.skipped == []
    assert r.bytes_sent <= 1.1 * new_packs + new_index + new_snapshots
    assert r.bytes_sent == new_packs + new_index + new_snapshots
    assert r.packs_sent == sum(1 for n in new if n.startswith(("data/", "tree/")))
    assert (r.snapshots_sent, r.snapshots_present, r.other_sent) == (1, 2, 0)
    assert_mirror(prod, dr)
    assert_restores(dr, snapshot2, src, tmp_path / "restored")

    counting = Counting(prod)
    third = replicate(counting, {"dc2": dr})["dc2"]
    assert nothing_sent(third) and third.snapshots_present == 2
    assert set(counting.gets) == {layout.CONFIG}  # listings and the config, nothing else read


def test_one_source_read_per_pack_for_three_centers(
    tmp_path: Path,
    src: bytes,
    prod: LocalBackend,
    s3_server: MotoServer,
    sshd_server: SshdServer,
) -> None:
    snapshot = back_up(init_repo(prod), src)
    s3 = make_site("s3", tmp_path, s3_server)
    sftp = make_site("sftp", tmp_path, sshd_server)
    targets = {
        "local": LocalBackend(tmp_path / "dr"),
        "s3": s3.backend("dr"),
        "sftp": sftp.backend("dr"),
    }
    counting = Counting(prod)
    try:
        results = replicate(counting, targets, parallel=4)

        packs = pack_names(prod).values()
        assert {counting.gets[p] for p in packs} == {1}
        assert all(n in counting.gets for n in objects(prod))
        for name, target in targets.items():
            r = results[name]
            assert r.error is None and r.skipped == []
            assert r.packs_sent == len(packs) and r.snapshots_present == 1
            assert r.bytes_sent == sum(objects(prod).values())
            assert_mirror(prod, target)
            assert_restores(target, snapshot, src, tmp_path / f"restored-{name}")
    finally:
        s3.close()
        sftp.close()


def test_corrupt_pack_at_source_skips_only_the_snapshots_needing_it(
    tmp_path: Path, prod: LocalBackend
) -> None:
    repo = init_repo(prod)
    a, b = os.fsencode(tmp_path / "a"), os.fsencode(tmp_path / "b")
    build_tree(a, seed=2)
    build_tree(b, seed=3)
    snap_a = back_up(repo, a)
    snap_b = back_up(Repository.open(prod, PASSWORD), b)  # own session: its own pack list
    packs_a = set(Repository.open(prod, PASSWORD).load_snapshot(snap_a).packs)
    packs_b = set(Repository.open(prod, PASSWORD).load_snapshot(snap_b).packs)
    paths = pack_names(prod)
    bad = next(paths[p] for p in sorted(packs_a - packs_b) if paths[p].startswith("data/"))
    original = prod.get(bad)
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x40
    prod.put(bad, bytes(damaged))
    dr = LocalBackend(tmp_path / "dr")

    r = replicate(prod, {"dc2": dr})["dc2"]

    assert r.error is None
    assert (r.snapshots_sent, r.snapshots_present) == (1, 1)
    assert len(r.skipped) == 1
    assert r.skipped[0].startswith(layout.snapshot_path(snap_a)) and bad in r.skipped[0]
    assert bad not in objects(dr)
    assert [i.name for i in dr.list(layout.SNAPSHOTS)] == [layout.snapshot_path(snap_b)]
    assert_mirror(prod, dr, whole=False)  # nothing damaged or foreign landed
    assert_snapshots_complete(dr)
    assert_restores(dr, snap_b, b, tmp_path / "restored-b")

    prod.put(bad, original)  # repaired at the source: the next run completes the copy
    r = replicate(prod, {"dc2": dr})["dc2"]
    assert r.error is None and r.skipped == [] and r.snapshots_present == 2
    assert_mirror(prod, dr)
    assert_restores(dr, snap_a, a, tmp_path / "restored-a")


def test_damaged_snapshot_is_skipped_with_its_reason(
    tmp_path: Path, src: bytes, prod: LocalBackend
) -> None:
    repo = init_repo(prod)
    first = back_up(repo, src)
    write(os.path.join(src, b"small", b"more"), os.urandom(5000))
    second = back_up(repo, src)
    name = layout.snapshot_path(first)
    raw = prod.get(name)
    prod.put(name, raw[:-1] + bytes([raw[-1] ^ 1]))
    dr = LocalBackend(tmp_path / "dr")

    r = replicate(prod, {"dc2": dr})["dc2"]

    assert r.error is None and r.snapshots_sent == 1
    assert r.skipped == [f"{name}: damaged at source ({MISMATCH})"]
    assert name not in objects(dr)
    assert_snapshots_complete(dr)
    assert_restores(dr, second, src, tmp_path / "restored")


def test_missing_pack_at_source_skips_its_snapshot(
    tmp_path: Path, src: bytes, prod: LocalBackend
) -> None:
    snapshot = back_up(init_repo(prod), src)
    paths = pack_names(prod)
    gone = next(n for n in sorted(paths) if paths[n].startswith("data/"))
    prod.delete(paths[gone])
    dr = LocalBackend(tmp_path / "dr")

    p = plan(prod, {"dc2": dr})
    assert isinstance(p, ReplicationPlan)
    assert p.targets["dc2"].snapshots == {}
    assert p.targets["dc2"].packs == {}  # its index file names the missing pack: withheld
    r = replicate(prod, {"dc2": dr})["dc2"]

    assert r.error is None and r.snapshots_sent == 0
    assert r.skipped == [f"{layout.snapshot_path(snapshot)}: pack {gone.hex()} missing at source"]
    assert r.other_sent == 2 and r.packs_sent == 0


def test_target_holding_another_repository_is_refused_others_go_on(
    tmp_path: Path, src: bytes, prod: LocalBackend
) -> None:
    snapshot = back_up(init_repo(prod), src)
    other = LocalBackend(tmp_path / "other")
    init_repo(other)
    before = {n: other.get(n) for n in objects(other)}
    good = LocalBackend(tmp_path / "good")

    results = replicate(prod, {"other": other, "good": good})

    refused = results["other"]
    assert isinstance(refused.error, RepositoryExistsError)
    assert "holds a different repository" in str(refused.error)
    assert refused.bytes_sent == 0 and refused.snapshots_present == 0
    assert {n: other.get(n) for n in objects(other)} == before
    assert results["good"].error is None and results["good"].snapshots_present == 1
    assert_restores(good, snapshot, src, tmp_path / "restored")


def test_source_without_repository_raises(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        replicate(LocalBackend(tmp_path / "nothing"), {"dc2": LocalBackend(tmp_path / "dr")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(RepositoryNotFoundError):
        replicate(LocalBackend(tmp_path / "empty"), {"dc2": LocalBackend(tmp_path / "dr")})
    with pytest.raises(UsageError):
        replicate(LocalBackend(tmp_path / "empty"), {}, parallel=0)


def test_key_added_later_reaches_the_target(tmp_path: Path, src: bytes, prod: LocalBackend) -> None:
    repo = init_repo(prod)
    back_up(repo, src)
    dr = LocalBackend(tmp_path / "dr")
    replicate(prod, {"dc2": dr})
    repo.add_key(b"second password", KdfParams(n=1024, r=8, p=1))

    r = replicate(prod, {"dc2": dr})["dc2"]

    assert r.error is None and r.other_sent == 1 and r.packs_sent == 0
    assert Repository.open(dr, b"second password").config.repository_id == repo.config.repository_id


class Refusing(Wrapper):
    """Puts of packs fail with access denied after ``allowed`` of them."""

    def __init__(self, inner: Backend, allowed: int) -> None:
        super().__init__(inner)
        self.allowed = allowed

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        if name.startswith("data/"):
            if self.allowed <= 0:
                raise PermanentError(f"{name}: access denied")
            self.allowed -= 1
        self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)


def test_failing_target_stops_alone_and_resumes_later(
    tmp_path: Path, src: bytes, prod: LocalBackend
) -> None:
    snapshot = back_up(init_repo(prod), src)
    broken = LocalBackend(tmp_path / "broken")
    fine = LocalBackend(tmp_path / "fine")

    results = replicate(prod, {"broken": Refusing(broken, allowed=3), "fine": fine}, parallel=2)

    assert isinstance(results["broken"].error, BackendError)
    assert "access denied" in str(results["broken"].error)
    assert results["broken"].snapshots_sent == 0 and results["broken"].packs_sent >= 3
    assert results["fine"].error is None and results["fine"].snapshots_present == 1
    assert assert_snapshots_complete(broken) == 0
    assert_mirror(prod, broken, whole=False)

    resumed = replicate(prod, {"broken": broken, "fine": fine})
    assert nothing_sent(resumed["fine"])
    r = resumed["broken"]
    assert r.error is None and r.snapshots_present == 1
    assert r.packs_sent == len(pack_names(prod)) - results["broken"].packs_sent
    assert_restores(broken, snapshot, src, tmp_path / "restored")


class Holding(Wrapper):
    """Counts packs read at the source and not yet put at the single target: the packs the
    engine holds in memory."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.held = self.peak = 0
        self.lock = threading.Lock()

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(name, offset, length)
        if name.startswith(("data/", "tree/")):
            with self.lock:
                self.held += 1
                self.peak = max(self.peak, self.held)
        return data

    def landed(self) -> None:
        with self.lock:
            self.held -= 1


class Landing(Slow):
    def __init__(self, inner: Backend, delay: float, source: Holding) -> None:
        super().__init__(inner, delay)
        self.source = source

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        super().put(name, data, exclusive=exclusive, storage_class=storage_class)
        if name.startswith(("data/", "tree/")):
            self.source.landed()


@pytest.mark.parametrize("parallel", [2, 3])
def test_packs_in_memory_stay_within_parallel(
    tmp_path: Path, src: bytes, prod: LocalBackend, parallel: int
) -> None:
    back_up(init_repo(prod), src)
    source = Holding(prod)
    target = Landing(LocalBackend(tmp_path / "dr"), 0.01, source)

    r = replicate(source, {"dc2": target}, parallel=parallel)["dc2"]

    assert r.error is None and r.packs_sent > 2 * parallel
    assert source.peak == parallel  # used in full, never exceeded


def plant_markers(root: bytes) -> None:
    marker = MARKER
    os.makedirs(os.path.join(root, b"dir-" + marker))
    write(os.path.join(root, marker + b".csv"), b"account;balance\n1;2\n")
    write(os.path.join(root, b"ledger.txt"), os.urandom(3000) + marker + os.urandom(3000))
    write(os.path.join(root, b"compressible.log"), (b"entry " + marker + b"\n") * 20_000)
    write(os.path.join(root, b"dir-" + marker, b"tiny"), marker)  # stored raw: 26 bytes
    os.symlink(marker, os.path.join(root, b"link"))
    os.setxattr(os.path.join(root, b"ledger.txt"), b"user.note", marker)


def test_no_plaintext_at_any_center(
    tmp_path: Path,
    prod: LocalBackend,
    s3_server: MotoServer,
    sshd_server: SshdServer,
) -> None:
    src = os.fsencode(tmp_path / "src")
    build_tree(src, seed=5)
    plant_markers(src)
    repo = init_repo(prod)
    backup(repo, BackupRequest(paths=(src,), hostname="host-" + MARKER.decode(), tags=("t",)))
    sites: list[Site] = [
        make_site("s3", tmp_path, s3_server),
        make_site("sftp", tmp_path, sshd_server),
    ]
    targets = {"local": LocalBackend(tmp_path / "dr"), **{s.kind: s.backend("dr") for s in sites}}
    try:
        results = replicate(prod, targets)
        assert all(r.error is None and r.snapshots_present == 1 for r in results.values())
        for center in (prod, *targets.values()):
            names = objects(center)
            assert len(names) == len(objects(prod))
            for name in names:
                assert MARKER not in name.encode()
                data = center.get(name)
                assert MARKER not in data, f"{center.location}/{name} holds plaintext"
                assert MARKER.lower() not in data.lower()
    finally:
        for site in sites:
            site.close()


def test_damaged_index_file_at_source_blocks_only_what_it_may_cover(
    tmp_path: Path, src: bytes, prod: LocalBackend
) -> None:
    back_up(init_repo(prod), src)
    early = LocalBackend(tmp_path / "early")
    replicate(prod, {"early": early})
    day1_index = set(sizes(prod, (layout.INDEX,)))
    write(os.path.join(src, b"small", b"day2"), os.urandom(30_000))
    day2 = back_up(Repository.open(prod, PASSWORD), src)
    (day2_index,) = set(sizes(prod, (layout.INDEX,))) - day1_index
    junk = layout.index_path(sha256(b"other bytes"))
    prod.put(junk, b"not an index file")  # damaged garbage: the intact ones cover everything
    fresh = LocalBackend(tmp_path / "fresh")

    r = replicate(prod, {"fresh": fresh})["fresh"]

    assert r.error is None and r.skipped == [] and r.snapshots_present == 2
    assert junk not in objects(fresh)
    assert_restores(fresh, day2, src, tmp_path / "restored")

    # the day-2 index damaged: which packs it covered is unknown, so its snapshot waits
    prod.delete(junk)
    raw = prod.get(day2_index)
    prod.put(day2_index, raw[:40] + bytes([raw[40] ^ 1]) + raw[41:])
    r = replicate(prod, {"early": early})["early"]
    assert r.error is None and (r.snapshots_sent, r.packs_sent, r.index_sent) == (0, 0, 0)
    assert len(r.skipped) == 1 and r.skipped[0].startswith(layout.snapshot_path(day2))
    assert "is in no intact index file" in r.skipped[0] and day2_index in r.skipped[0]
    assert assert_snapshots_complete(early) == 1


class BackupWhileListing(Wrapper):
    """Runs ``during`` once, just after the first listing of snapshots or index files has been
    taken: a backup that commits while replication is planning."""

    def __init__(self, inner: Backend, during: Callable[[], None]) -> None:
        super().__init__(inner)
        self.during: Callable[[], None] | None = during

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        listed = list(self.inner.list(prefix))
        if prefix in (layout.SNAPSHOTS, layout.INDEX) and self.during is not None:
            during, self.during = self.during, None
            during()
        return iter(listed)


def test_backup_committing_during_planning_never_leaves_a_snapshot_without_its_index(
    tmp_path: Path, src: bytes, prod: LocalBackend
) -> None:
    first = back_up(init_repo(prod), src)
    later: list[bytes] = []

    def day2() -> None:
        write(os.path.join(src, b"small", b"late"), os.urandom(60_000))
        later.append(back_up(Repository.open(prod, PASSWORD), src))

    dr = LocalBackend(tmp_path / "dr")
    r = replicate(BackupWhileListing(prod, day2), {"dc2": dr})["dc2"]

    assert later and r.error is None
    assert assert_snapshots_complete(dr) == r.snapshots_present
    assert layout.snapshot_path(first) in objects(dr)
    r = replicate(prod, {"dc2": dr})["dc2"]
    assert r.error is None and r.snapshots_present == 2
    assert_restores(dr, later[0], src, tmp_path / "restored")
