"""Restore: every kind of entry round-trips exactly; includes, verify; hostile snapshots and
planted symlinks cannot make it write outside the target."""

from __future__ import annotations

import base64
import errno
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    CHEAP_KDF,
    PASSWORD,
    SMALL_CHUNKS,
    MakeRepo,
    RunCli,
    assert_one_error_line,
)
from trees import (
    BAD_UTF8,
    GBK_DIR,
    GBK_NAME,
    GIB,
    allocated,
    assert_same_tree,
    build_full_tree,
    describe,
    write,
)

from drvault import restore as restore_module
from drvault.backup import BackupRequest, backup
from drvault.errors import (
    EXIT_INTEGRITY,
    EXIT_UNSAFE,
    IntegrityError,
    UnsafePathError,
    UsageError,
)
from drvault.repository.pack import BLOB_DATA, BLOB_TREE
from drvault.repository.repository import Repository
from drvault.repository.suite import Suite
from drvault.restore import restore
from drvault.snapshot.document import Snapshot
from drvault.snapshots import load
from tests.sites import Site


@dataclass
class Full:
    site: Site  # the repository is "repo" on it
    src: bytes
    snapshot: Snapshot

    def open(self) -> Repository:
        return self.site.open("repo")

    @property
    def url(self) -> str:
        return self.site.url("repo")


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory, module_site: Site) -> Full:
    base = tmp_path_factory.mktemp("full")
    src = os.fsencode(base / "src")
    build_full_tree(src)
    repo = Repository.init(
        module_site.backend("repo"), PASSWORD, suite=Suite.choose("intl"), kdf=CHEAP_KDF
    )
    result = backup(repo, BackupRequest(paths=(src,)))
    assert not result.warnings
    return Full(module_site, src, result.snapshot)


def _under(target: Path, src: bytes) -> bytes:
    """Where ``src`` lands in a restore: the snapshot mirrors absolute paths."""
    return os.path.join(os.fsencode(target), src.lstrip(b"/"))


def test_every_kind_of_entry_round_trips(full: Full, tmp_path: Path) -> None:
    result = restore(full.open(), full.snapshot, os.fsencode(tmp_path), verify=True)
    assert result.warnings == ()
    assert result.mismatches == ()
    restored = _under(tmp_path, full.src)
    assert_same_tree(full.src, restored)

    j = os.path.join
    sparse = j(restored, b"sparse.img")
    assert os.path.getsize(sparse) == GIB
    assert allocated(sparse) < 16 << 20  # a few KiB of data, not 1 GiB of zeros
    assert result.stats.bytes_fetched < 64 << 20
    assert result.stats.hardlinks == 4  # linked x2, the FIFO's and the symlink's second names
    links = {os.lstat(j(restored, p)).st_ino for p in (b"linked", b"sub/linked2")}
    links.add(os.lstat(j(restored, GBK_DIR, b"linked3")).st_ino)
    assert len(links) == 1 and os.lstat(j(restored, b"linked")).st_nlink == 3
    assert os.readlink(j(restored, b"bad-target")) == b"\xff\xfe/" + GBK_NAME
    assert os.path.exists(j(restored, GBK_DIR, GBK_NAME))
    assert os.path.exists(j(restored, BAD_UTF8))
    assert os.major(os.lstat(j(restored, b"null-dev")).st_rdev) == 1
    assert os.lstat(j(restored, b"owned")).st_uid == 1234
    assert oct(os.lstat(j(restored, b"sticky")).st_mode & 0o7777) == oct(0o1777)
    assert oct(os.lstat(j(restored, b"setuid")).st_mode & 0o7777) == oct(0o4755)
    assert os.getxattr(j(restored, b"hello.txt"), b"user.binary") == b"\x00\xff\x01"
    assert os.lstat(j(restored, b"hello.txt")).st_mtime_ns % 1_000_000_000 != 0


def test_restoring_twice_into_one_target_replaces_the_first(full: Full, tmp_path: Path) -> None:
    restore(full.open(), full.snapshot, os.fsencode(tmp_path))
    restored = _under(tmp_path, full.src)
    with open(os.path.join(restored, b"hello.txt"), "ab") as f:
        f.write(b"local change")
    result = restore(full.open(), full.snapshot, os.fsencode(tmp_path), verify=True)
    assert result.mismatches == ()
    assert_same_tree(full.src, restored)


def test_a_directory_in_the_way_of_a_file_is_refused(full: Full, tmp_path: Path) -> None:
    os.makedirs(os.path.join(_under(tmp_path, full.src), b"hello.txt"))
    with pytest.raises(UsageError, match="exists as a directory"):
        restore(full.open(), full.snapshot, os.fsencode(tmp_path))


def test_include_restores_only_the_requested_subtree(full: Full, tmp_path: Path) -> None:
    include = os.path.join(full.src, b"sub")
    result = restore(full.open(), full.snapshot, os.fsencode(tmp_path), includes=(include,))
    restored = _under(tmp_path, full.src)
    entries, _links = describe(restored)
    assert sorted(entries) == [
        b".",
        b"sub",
        b"sub/deeper",
        b"sub/deeper/dup3",
        b"sub/dup2",
        b"sub/empty2",
        b"sub/fifo-link",
        b"sub/linked2",  # a hard link whose first name is not restored: a file of its own
        b"sub/rel-up-link",
    ]
    want, _ = describe(full.src)
    for rel in entries:
        if rel != b".":
            assert entries[rel] == want[rel], rel
    assert result.stats.files == 4
    with pytest.raises(UsageError, match="nothing in the snapshot matches"):
        restore(
            full.open(),
            full.snapshot,
            os.fsencode(tmp_path / "other"),
            includes=(os.path.join(full.src, b"no-such-entry"),),
        )


@pytest.mark.parametrize(
    ("suite", "cipher", "id_hash"),
    [
        ("intl", "aes-256-gcm", "blake3"),
        ("intl", "chacha20-poly1305", "hmac-sha256"),
        ("gm", "sm4-gcm", "hmac-sm3"),
    ],
)
def test_each_suite_end_to_end(
    make_repo: MakeRepo, site: Site, tmp_path: Path, suite: str, cipher: str, id_hash: str
) -> None:
    src = os.fsencode(tmp_path / "src")
    build_full_tree(src, big_sparse=False)
    make_repo(suite=suite, cipher=cipher, id_hash=id_hash)
    snap = backup(site.open("repo"), BackupRequest(paths=(src,))).snapshot
    repo = site.open("repo")
    assert repo.suite == Suite(suite, cipher, id_hash)
    result = restore(repo, load(repo, snap.id), os.fsencode(tmp_path / "out"), verify=True)
    assert result.mismatches == ()
    assert_same_tree(src, _under(tmp_path / "out", src))


def test_verify_reports_a_file_that_differs(
    repo: Repository, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "good").write_bytes(b"good" * 1000)
    (src / "bad").write_bytes(b"bad!" * 1000)
    snap = backup(repo, BackupRequest(paths=(os.fsencode(src),))).snapshot
    real_write = restore_module.SparseWriter.write

    def corrupting_write(self, offset, data):  # type: ignore[no-untyped-def]
        data = bytes(data)
        if data.startswith(b"bad!"):
            data = b"BAD!" + data[4:]
        real_write(self, offset, data)

    monkeypatch.setattr(restore_module.SparseWriter, "write", corrupting_write)
    result = restore(site.open("repo"), snap, os.fsencode(tmp_path / "out"), verify=True)
    assert len(result.mismatches) == 1
    assert "bad" in result.mismatches[0] and "differs" in result.mismatches[0]
    unverified = restore(site.open("repo"), snap, os.fsencode(tmp_path / "out2"))
    assert unverified.mismatches == ()


def test_target_that_is_a_file_is_refused(full: Full, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UsageError, match="not a directory"):
        restore(full.open(), full.snapshot, os.fsencode(tmp_path / "file"))


# ------------------------------------------------------------------------- hostile input

EVIL = b"evil content"


def _hostile(repo: Repository, nodes: list[dict[str, object]]) -> Snapshot:
    """A snapshot whose root tree holds ``nodes`` as given, bypassing the tree encoder."""
    content, _ = repo.put_blob(BLOB_DATA, EVIL)

    def fill(node: dict[str, object]) -> dict[str, object]:
        node = dict(node)
        if node["type"] == "file":
            node.setdefault("content", [content.hex()])
            node.setdefault("size", len(EVIL))
        if node["type"] == "dir" and isinstance(node.get("subtree"), list):
            node["subtree"] = tree_of(node["subtree"]).hex()  # type: ignore[arg-type]
        return node

    def tree_of(children: list[dict[str, object]]) -> bytes:
        raw = json.dumps({"nodes": [fill(n) for n in children], "version": 1}).encode()
        return repo.put_blob(BLOB_TREE, raw)[0]

    doc = Snapshot(time_ns=1, hostname="h", username="u", paths=(b"/x",), tree=tree_of(nodes))
    return load(repo, repo.save_snapshot(doc.encode(), []))


def _b64(name: bytes) -> str:
    return base64.b64encode(name).decode()


UNSAFE = {
    "dotdot": [{"name": "..", "type": "file"}],
    "slash": [{"name": "a/b", "type": "file"}],
    "dot": [{"name": ".", "type": "file"}],
    "nul": [{"name": "a\u0000b", "type": "file"}],
    "b64-escape": [{"name_b64": _b64(b"../../escaped"), "type": "file"}],
    "nested-dotdot": [
        {"name": "d", "type": "dir", "subtree": [{"name": "..", "type": "dir", "subtree": []}]}
    ],
    "nested-absolute": [
        {"name": "d", "type": "dir", "subtree": [{"name": "/etc/passwd", "type": "file"}]}
    ],
}
MALFORMED = {
    "duplicate-files": [{"name": "f", "type": "file"}, {"name": "f", "type": "file"}],
    "symlink-then-dir": [
        {"name": "x", "type": "symlink", "target": "/"},
        {"name": "x", "type": "dir", "subtree": [{"name": "f", "type": "file"}]},
    ],
    "unsorted": [{"name": "b", "type": "file"}, {"name": "a", "type": "file"}],
}


def _jail(tmp_path: Path) -> tuple[Path, Path]:
    """A target and a sibling directory outside it that must stay untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_bytes(b"precious")
    return tmp_path / "jail" / "target", outside


def _untouched(target: Path, outside: Path) -> None:
    assert sorted(os.listdir(outside)) == ["file"]
    assert (outside / "file").read_bytes() == b"precious"
    assert os.listdir(target.parent) == ["target"]


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_hostile_names_are_refused_before_anything_is_written(
    repo: Repository, site: Site, tmp_path: Path, case: str
) -> None:
    snap = _hostile(repo, UNSAFE[case])
    target, outside = _jail(tmp_path)
    with pytest.raises(UnsafePathError, match="unsafe file name"):
        restore(site.open("repo"), snap, os.fsencode(target))
    assert os.listdir(target) == []
    _untouched(target, outside)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_duplicate_or_unsorted_names_are_refused(
    repo: Repository, site: Site, tmp_path: Path, case: str
) -> None:
    snap = _hostile(repo, MALFORMED[case])
    target, outside = _jail(tmp_path)
    with pytest.raises(IntegrityError, match="not strictly sorted"):
        restore(site.open("repo"), snap, os.fsencode(target))
    assert os.listdir(target) == []
    _untouched(target, outside)


def test_a_hard_link_group_cannot_write_through_a_symlink(
    repo: Repository, site: Site, tmp_path: Path
) -> None:
    target, outside = _jail(tmp_path)
    link = {"links": 2, "inode": 7, "device": 1}
    snap = _hostile(
        repo,
        [
            {"name": "s", "type": "symlink", "target": str(outside / "file"), **link},
            {"name": "t", "type": "file", **link},
        ],
    )
    restore(site.open("repo"), snap, os.fsencode(target))
    _untouched(target, outside)
    assert os.readlink(target / "t") == str(outside / "file")  # t is the link itself


def test_cli_refuses_a_hostile_snapshot_with_exit_14(
    repo: Repository, site: Site, tmp_path: Path, run_cli: RunCli
) -> None:
    snap = _hostile(repo, UNSAFE["nested-dotdot"])
    target, outside = _jail(tmp_path)
    result = run_cli("restore", site.url("repo"), snap.id.hex(), "--target", target)
    assert_one_error_line(result, EXIT_UNSAFE, "unsafe file name", "..")
    _untouched(target, outside)
    dup = _hostile(repo, MALFORMED["symlink-then-dir"])
    result = run_cli("restore", site.url("repo"), dup.id.hex(), "--target", target)
    assert_one_error_line(result, EXIT_INTEGRITY, "not strictly sorted")
    _untouched(target, outside)


# --------------------------------------------------------------------- planted symlinks


@pytest.fixture
def small(make_repo: MakeRepo, site: Site, tmp_path: Path) -> Full:
    src = os.fsencode(tmp_path / "src")
    os.makedirs(os.path.join(src, b"sub", b"deeper"))
    write(os.path.join(src, b"top.txt"), b"top")
    write(os.path.join(src, b"sub", b"file"), b"in sub")
    write(os.path.join(src, b"sub", b"deeper", b"file"), b"deeper")
    make_repo()
    snap = backup(site.open("repo"), BackupRequest(paths=(src,))).snapshot
    return Full(site, src, snap)


@pytest.mark.parametrize("where", ["first-component", "sub", "sub/deeper", "top.txt", "sub/file"])
def test_a_planted_symlink_in_the_target_is_not_followed(
    small: Full, tmp_path: Path, run_cli: RunCli, where: str
) -> None:
    target, outside = _jail(tmp_path)
    restored = _under(target, small.src)
    if where == "first-component":
        planted = os.path.join(os.fsencode(target), small.src.lstrip(b"/").split(b"/")[0])
        os.makedirs(target)
    else:
        planted = os.path.join(restored, os.fsencode(where))
        os.makedirs(os.path.dirname(planted))
    planted_to = outside / "file" if where.endswith(("txt", "file")) else outside
    os.symlink(planted_to, planted)
    with pytest.raises(UnsafePathError, match="refusing to follow"):
        restore(small.open(), small.snapshot, os.fsencode(target))
    _untouched(target, outside)
    result = run_cli("restore", small.url, "latest", "--target", target)
    assert_one_error_line(result, EXIT_UNSAFE, "refusing to follow")
    _untouched(target, outside)
    assert os.readlink(planted) == os.fsencode(planted_to)


# ------------------------------------------------------------------ parallel restore


@pytest.fixture
def many(make_repo: MakeRepo, site: Site, tmp_path: Path) -> Full:
    """Small chunks in 64 KiB packs: files span many packs, packs hold many files."""
    src = os.fsencode(tmp_path / "src")
    j = os.path.join
    rnd = random.Random(7)
    for d in range(4):
        os.makedirs(j(src, b"d%d" % d))
        for f in range(30):
            write(j(src, b"d%d" % d, b"f%02d" % f), rnd.randbytes(rnd.randint(1, 9000)))
    write(j(src, b"empty"), b"")
    write(j(src, b"a-tail"), b"same" * 904)  # the same bytes as the last chunk of dup-a
    write(j(src, b"dup-a"), b"same" * 5000)
    write(j(src, b"dup-b"), b"same" * 5000)
    head, tail = rnd.randbytes(70_000), rnd.randbytes(50_000)
    write(j(src, b"holey"), head + bytes(1 << 20) + tail + bytes(300_000))  # a trailing hole
    write(j(src, b"zeros"), bytes(200_000))
    make_repo(chunker=SMALL_CHUNKS, pack_size=64 << 10)
    snap = backup(site.open("repo"), BackupRequest(paths=(src,))).snapshot
    return Full(site, src, snap)


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_many_packs_restore_exactly_with_any_number_of_workers(
    many: Full, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(restore_module, "PIECE_BYTES", 8 << 10)  # files span pieces too
    result = restore(many.open(), many.snapshot, os.fsencode(tmp_path / "out"), workers=workers)
    restored = _under(tmp_path / "out", many.src)
    assert_same_tree(many.src, restored)
    assert result.stats.packs_read >= 8
    assert result.stats.files == 4 * 30 + 6
    holey = os.path.join(restored, b"holey")
    assert allocated(holey) < 512 << 10  # the zeros in the middle and at the end are holes
    assert allocated(os.path.join(restored, b"zeros")) == 0


def test_files_closed_and_reopened_within_a_piece_restore_exactly(
    many: Full, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restore_module, "MAX_OPEN_FILES", 1)  # dup-a, dup-b, a-tail share blobs
    real_cut = restore_module._cut_pieces

    def cut_backwards(plan):  # type: ignore[no-untyped-def]
        real_cut(plan)  # then write each piece last blob first: a file's end before its start
        for job in plan.jobs.values():
            for piece in job.pieces:
                piece.blobs.reverse()

    monkeypatch.setattr(restore_module, "_cut_pieces", cut_backwards)
    restore(many.open(), many.snapshot, os.fsencode(tmp_path / "out"), workers=2)
    assert_same_tree(many.src, _under(tmp_path / "out", many.src))


def test_restore_over_an_earlier_restore_with_workers(many: Full, tmp_path: Path) -> None:
    target = os.fsencode(tmp_path / "out")
    restore(many.open(), many.snapshot, target, workers=3)
    restored = _under(tmp_path / "out", many.src)
    write(os.path.join(restored, b"holey"), b"x" * (3 << 20))  # longer than the original
    write(os.path.join(restored, b"d1", b"f03"), b"")
    result = restore(many.open(), many.snapshot, target, workers=3, verify=True)
    assert result.mismatches == ()
    assert_same_tree(many.src, restored)


def test_a_damaged_pack_stops_the_restore_and_is_named(many: Full, tmp_path: Path) -> None:
    damaged = many.site.objects("repo", "data/")[3]
    many.site.flip(damaged, 100)
    with pytest.raises(IntegrityError) as caught:
        restore(many.open(), many.snapshot, os.fsencode(tmp_path / "out"), workers=3)
    assert damaged in str(caught.value)


def test_the_first_error_in_a_worker_stops_the_others_and_keeps_its_type(
    many: Full, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restore_module, "PIECE_BYTES", 1)  # one task per blob
    calls = []
    real_open_blob = Repository.open_blob

    def failing_open_blob(self, entry, sealed, pack=None):  # type: ignore[no-untyped-def]
        calls.append(entry.blob_id)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        if len(calls) > 5:
            time.sleep(0.01)
        return real_open_blob(self, entry, sealed, pack)

    repo = many.open()
    monkeypatch.setattr(Repository, "open_blob", failing_open_blob)
    with pytest.raises(OSError) as caught:
        restore(repo, many.snapshot, os.fsencode(tmp_path / "out"), workers=4)
    assert caught.value.errno == errno.ENOSPC
    total = sum(1 for _ in repo.index.entries() if _.pack.kind == "data")
    assert len(calls) < total / 2  # the rest of the blobs were never opened


def test_progress_is_reported_in_the_calling_thread(many: Full, tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    def progress(stats: restore_module.RestoreStats) -> None:
        seen.append((threading.current_thread().name, stats.packs_read))

    result = restore(
        many.open(),
        many.snapshot,
        os.fsencode(tmp_path / "out"),
        workers=3,
        progress=progress,
    )
    assert {name for name, _ in seen} == {threading.current_thread().name}
    assert seen[-1][1] == result.stats.packs_read


def test_workers_must_be_positive(many: Full, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="workers"):
        restore(many.open(), many.snapshot, os.fsencode(tmp_path / "out"), workers=0)


def test_verify_splits_large_files_and_reports_each_file_once(
    many: Full, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restore_module, "VERIFY_BYTES", 10_000)  # ranges of a few chunks
    result = restore(
        many.open(), many.snapshot, os.fsencode(tmp_path / "ok"), workers=3, verify=True
    )
    assert result.mismatches == ()
    real_write = restore_module.SparseWriter.write

    def corrupting_write(self, offset, data):  # type: ignore[no-untyped-def]
        if offset > 1 << 20:  # only "holey" is that long: damage every chunk of its tail
            data = bytes(b ^ 0xFF for b in data)
        real_write(self, offset, data)

    monkeypatch.setattr(restore_module.SparseWriter, "write", corrupting_write)
    result = restore(
        many.open(), many.snapshot, os.fsencode(tmp_path / "bad"), workers=3, verify=True
    )
    assert len(result.mismatches) == 1
    assert "holey: content differs" in result.mismatches[0]
