"""Finding snapshots: listing, resolving ``latest`` / full ID / unique prefix, walking trees."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from conftest import MakeRepo
from trees import write

from drvault.backup import BackupRequest, backup
from drvault.errors import IntegrityError, UsageError
from drvault.repository.repository import Repository
from drvault.snapshot import NodeType
from drvault.snapshot.document import Snapshot
from drvault.snapshots import find, load, load_all, resolve, split_path, walk
from tests.sites import Site


def _save(repo: Repository, time_ns: int, paths: tuple[bytes, ...] = (b"/x",)) -> bytes:
    doc = Snapshot(time_ns=time_ns, hostname="h", username="u", paths=paths, tree=bytes(32))
    return repo.save_snapshot(doc.encode(), [])


def test_load_all_is_oldest_first(repo: Repository) -> None:
    ids = [_save(repo, t) for t in (3_000, 1_000, 2_000)]
    loaded = load_all(repo)
    assert [s.time_ns for s in loaded] == [1_000, 2_000, 3_000]
    assert [s.id for s in loaded] == [ids[1], ids[2], ids[0]]


def test_resolve_latest_full_id_and_prefix(repo: Repository) -> None:
    ids = [_save(repo, t) for t in range(1, 18)]  # 17 IDs: two share a first hex digit
    assert resolve(repo, "latest").id == ids[-1]
    for snapshot_id in ids:
        full = snapshot_id.hex()
        assert resolve(repo, full).id == snapshot_id
        assert resolve(repo, full.upper()).id == snapshot_id
        unique = next(
            full[:n] for n in range(1, 65) if sum(i.hex().startswith(full[:n]) for i in ids) == 1
        )
        assert resolve(repo, unique).id == snapshot_id
    digit, count = Counter(i.hex()[0] for i in ids).most_common(1)[0]
    assert count > 1
    with pytest.raises(UsageError, match=f"matches {count} snapshots"):
        resolve(repo, digit)


def test_resolve_refuses_what_names_no_snapshot(repo: Repository) -> None:
    with pytest.raises(UsageError, match="no snapshots"):
        resolve(repo, "latest")
    _save(repo, 1)
    with pytest.raises(UsageError, match="not a snapshot ID"):
        resolve(repo, "xyz")
    with pytest.raises(UsageError, match="not a snapshot ID"):
        resolve(repo, "")
    other = "0" if resolve(repo, "latest").id.hex()[0] != "0" else "1"
    with pytest.raises(UsageError, match="no snapshot matches"):
        resolve(repo, other)


def test_a_damaged_document_is_an_integrity_error(repo: Repository) -> None:
    snapshot_id = repo.save_snapshot(b'{"version": 1}', [])
    with pytest.raises(IntegrityError, match="malformed document") as info:
        load(repo, snapshot_id)
    assert info.value.name == f"snapshots/{snapshot_id.hex()}"
    errors: list[IntegrityError] = []
    assert load_all(repo, errors) == []
    assert [e.name for e in errors] == [f"snapshots/{snapshot_id.hex()}"]


def test_document_round_trip_keeps_non_utf8_paths(repo: Repository) -> None:
    doc = Snapshot(
        time_ns=1_700_000_000_123_456_789,
        hostname="host",
        username="user",
        paths=(b"/srv/\xb2\xe2\xca\xd4", b"/plain"),
        tree=bytes(range(32)),
        excludes=("*.tmp",),
        tags=("daily",),
        parent=bytes(32),
        backup_set="db",
        program="drvault test",
        summary={"files_new": 3},
    )
    snapshot_id = repo.save_snapshot(doc.encode(), [bytes([5]) * 32])
    loaded = load(repo, snapshot_id)
    assert loaded.paths == doc.paths
    assert loaded.time == "2023-11-14T22:13:20.123456789Z"
    assert (loaded.tags, loaded.excludes, loaded.parent, loaded.backup_set) == (
        ("daily",),
        ("*.tmp",),
        bytes(32),
        "db",
    )
    assert loaded.summary == {"files_new": 3}
    assert loaded.packs == (bytes([5]) * 32,)


def test_walk_and_find(make_repo: MakeRepo, site: Site, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d" / "e").mkdir(parents=True)
    write(os.fsencode(src / "a"), b"A")
    write(os.fsencode(src / "d" / "b"), b"B")
    write(os.fsencode(src / "d" / "e" / "c"), b"C")
    make_repo()
    snap = backup(site.open("repo"), BackupRequest(paths=(os.fsencode(src),))).snapshot
    repo = site.open("repo")
    rel = os.fsencode(src).lstrip(b"/")
    paths = [e.path for e in walk(repo, snap.tree)]
    below = [p for p in paths if p.startswith(rel + b"/")]
    assert below == [rel + p for p in (b"/a", b"/d", b"/d/b", b"/d/e", b"/d/e/c")]
    assert paths.index(rel) < paths.index(below[0])  # parents before children
    entry = find(repo, snap.tree, os.fsencode(src / "d" / "e" / "c"))
    assert entry is not None and entry.node.type == NodeType.FILE and entry.node.size == 1
    assert entry.path == rel + b"/d/e/c"
    top = find(repo, snap.tree, os.fsencode(src / "d"))
    assert top is not None and top.node.type == NodeType.DIR
    assert find(repo, snap.tree, os.fsencode(src / "missing")) is None
    assert find(repo, snap.tree, os.fsencode(src / "a" / "below-a-file")) is None


def test_split_path_cannot_climb() -> None:
    assert split_path(b"/a/b/../c/") == [b"a", b"c"]
    assert split_path(b"../../etc") == [b"etc"]
    assert split_path(b"/") == []
