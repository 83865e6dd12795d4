"""The open repository: creating, opening, blobs, packs, index files, snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import PASSWORD, MakeRepo, open_repo

from drvault.errors import (
    IntegrityError,
    RepositoryExistsError,
    RepositoryNotFoundError,
)
from drvault.repository import envelope, layout
from drvault.repository.pack import BLOB_DATA, BLOB_TREE, COMP_NONE, COMP_ZSTD
from drvault.repository.repository import Repository
from drvault.repository.suite import Suite
from drvault.transport import LocalBackend

SUITES = [
    ("intl", "aes-256-gcm", "blake3"),
    ("intl", "chacha20-poly1305", "hmac-sha256"),
    ("gm", "sm4-gcm", "hmac-sm3"),
]


def _files(root: Path, prefix: str) -> list[str]:
    base = root / prefix
    return sorted(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file())


def test_init_writes_config_and_one_key(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    assert _files(tmp_path / "repo", "") == ["config", f"keys/{repo.slot_id}"]


def test_init_on_an_existing_repository_is_refused(make_repo: MakeRepo, tmp_path: Path) -> None:
    make_repo()
    before = _files(tmp_path / "repo", "")
    with pytest.raises(RepositoryExistsError, match="already exists"):
        make_repo()
    assert _files(tmp_path / "repo", "") == before
    (tmp_path / "repo" / "config").unlink()
    with pytest.raises(RepositoryExistsError, match="key files"):
        make_repo()


def test_init_in_an_existing_empty_directory(make_repo: MakeRepo, tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    make_repo()
    open_repo(tmp_path / "repo")


def test_open_of_a_missing_or_foreign_directory(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError, match="does not exist"):
        Repository.open(LocalBackend(tmp_path / "missing"), PASSWORD)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RepositoryNotFoundError, match="no config"):
        Repository.open(LocalBackend(tmp_path / "empty"), PASSWORD)


@pytest.mark.parametrize(("suite", "cipher", "id_hash"), SUITES)
def test_blobs_round_trip_through_packs_and_index(
    make_repo: MakeRepo, tmp_path: Path, suite: str, cipher: str, id_hash: str
) -> None:
    repo = make_repo(suite=suite, cipher=cipher, id_hash=id_hash)
    compressible = b"abcdefgh" * 1000
    incompressible = os.urandom(5000)
    tree = b'{"nodes":[],"version":1}'
    ids = {}
    id_hasher = Suite.choose(suite, cipher, id_hash).id_hasher(repo.master.mac)
    blobs = [(BLOB_DATA, compressible), (BLOB_DATA, incompressible), (BLOB_TREE, tree)]
    for blob_type, data in blobs:
        blob_id, new = repo.put_blob(blob_type, data)
        assert new
        assert blob_id == repo.blob_id(data) == id_hasher(data)
        assert repo.has_blob(blob_id)
        ids[blob_id] = data
    assert repo.put_blob(BLOB_DATA, compressible) == (repo.blob_id(compressible), False)
    assert repo.stats.blobs_new == 3 and repo.stats.blobs_dedup == 1
    repo.flush()
    assert len(_files(tmp_path / "repo", "data")) == 1
    assert len(_files(tmp_path / "repo", "tree")) == 1
    assert len(_files(tmp_path / "repo", "index")) == 1

    reopened = open_repo(tmp_path / "repo")
    assert len(reopened.index) == 3
    for blob_id, data in ids.items():
        assert reopened.get_blob(blob_id) == data
    entry = reopened.index.get(repo.blob_id(compressible))
    assert entry is not None and entry.compression == COMP_ZSTD and entry.length < 1000
    entry = reopened.index.get(repo.blob_id(incompressible))
    assert entry is not None and entry.compression == COMP_NONE
    assert reopened.index.get(repo.blob_id(tree)).pack.kind == "tree"
    for path in _files(tmp_path / "repo", "data") + _files(tmp_path / "repo", "tree"):
        data = (tmp_path / "repo" / path).read_bytes()
        assert compressible[:64] not in data and tree not in data  # encrypted
        kind, entries = reopened.pack_entries(path, data)
        assert kind == path.split("/")[0]
        assert {e.blob_id for e in entries} <= set(ids)


def test_small_pack_size_makes_many_packs(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo(pack_size=10_000)
    blobs = [os.urandom(3000) for _ in range(20)]
    for data in blobs:
        repo.put_blob(BLOB_DATA, data)
    repo.flush()
    packs = _files(tmp_path / "repo", "data")
    assert len(packs) == 5 == repo.stats.packs_written
    assert all(layout.parse_hex_name(p) is not None for p in packs)
    reopened = open_repo(tmp_path / "repo")
    assert [reopened.get_blob(repo.blob_id(d)) for d in blobs] == blobs


def test_unknown_blob_is_an_integrity_error(repo: Repository) -> None:
    with pytest.raises(IntegrityError, match="not in any index"):
        repo.get_blob(bytes(32))


def test_pack_in_the_wrong_prefix_is_named(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    repo.put_blob(BLOB_DATA, b"data blob")
    repo.flush()
    path = _files(tmp_path / "repo", "data")[0]
    data = (tmp_path / "repo" / path).read_bytes()
    moved = "tree/" + path.split("/", 1)[1]
    with pytest.raises(IntegrityError, match="does not match its prefix") as info:
        repo.pack_entries(moved, data)
    assert info.value.name == moved


def test_snapshots_save_and_load_with_a_keyless_pack_list(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = make_repo()
    blob_id, _ = repo.put_blob(BLOB_DATA, b"content")
    packs = [bytes([7]) * 32, bytes([3]) * 32]
    snapshot_id = repo.save_snapshot(b'{"a snapshot": 1}', packs)  # flushes first
    assert _files(tmp_path / "repo", "snapshots") == [f"snapshots/{snapshot_id.hex()}"]
    assert len(_files(tmp_path / "repo", "index")) == 1
    raw = (tmp_path / "repo" / "snapshots" / snapshot_id.hex()).read_bytes()
    assert envelope.parse(raw, envelope.SNAPSHOT_MAGIC).packs == tuple(sorted(packs))
    reopened = open_repo(tmp_path / "repo")
    assert reopened.snapshot_ids() == [snapshot_id]
    record = reopened.load_snapshot(snapshot_id)
    assert (record.id, record.packs, record.body) == (
        snapshot_id,
        tuple(sorted(packs)),
        b'{"a snapshot": 1}',
    )
    assert reopened.get_blob(blob_id) == b"content"


def test_another_repositorys_objects_do_not_open(make_repo: MakeRepo, tmp_path: Path) -> None:
    one, two = make_repo("one"), make_repo("two")
    snapshot_id = two.save_snapshot(b"{}", [])
    name = f"snapshots/{snapshot_id.hex()}"
    (tmp_path / "one" / "snapshots").mkdir()
    (tmp_path / "one" / name).write_bytes((tmp_path / "two" / name).read_bytes())
    with pytest.raises(IntegrityError, match="authentication failed") as info:
        one.load_snapshot(snapshot_id)
    assert info.value.name == name
