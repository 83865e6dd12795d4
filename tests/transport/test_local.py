"""The local backend keeps promises on disk that the conformance suite cannot see through the
protocol: where files land, that no temporary file is left, names that would escape the root."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from drvault.errors import (
    AlreadyExistsError,
    PermanentError,
    UsageError,
)
from drvault.transport import LocalBackend, ObjectInfo, open_backend


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    b = LocalBackend(tmp_path / "root")
    assert not b.exists()
    b.create()
    assert b.exists()
    b.create()  # idempotent
    return b


def test_put_get_stat(backend: LocalBackend, tmp_path: Path) -> None:
    backend.put("data/ab/abc", b"0123456789")
    assert (tmp_path / "root" / "data" / "ab" / "abc").read_bytes() == b"0123456789"
    assert backend.get("data/ab/abc") == b"0123456789"
    info = backend.stat("data/ab/abc")
    assert (info.name, info.size, info.storage_class) == ("data/ab/abc", 10, None)
    backend.put("data/ab/abc", memoryview(b"replaced"))  # non-exclusive put replaces
    assert backend.get("data/ab/abc") == b"replaced"
    backend.put("empty", b"")
    assert backend.get("empty") == b""
    assert backend.location == str(tmp_path / "root")


def test_exclusive_put_is_create_if_absent(backend: LocalBackend, tmp_path: Path) -> None:
    backend.put("locks/one", b"first", exclusive=True)
    with pytest.raises(AlreadyExistsError):
        backend.put("locks/one", b"second", exclusive=True)
    assert backend.get("locks/one") == b"first"
    assert os.listdir(tmp_path / "root" / "locks") == ["one"]  # no temporary file left


def test_list_yields_each_object_once_and_skips_temporaries(
    backend: LocalBackend, tmp_path: Path
) -> None:
    names = ["index/aa", "index/bb", "data/00/x", "data/01/y", "config"]
    for n in names:
        backend.put(n, n.encode())
    (tmp_path / "root" / "data" / "00" / ".tmp-deadbeef").write_bytes(b"partial upload")
    assert sorted(i.name for i in backend.list("")) == sorted(names)
    assert sorted(i.name for i in backend.list("data/")) == ["data/00/x", "data/01/y"]
    assert sorted(i.name for i in backend.list("data")) == ["data/00/x", "data/01/y"]
    assert sorted((i.name, i.size) for i in backend.list("index/")) == [
        ("index/aa", 8),
        ("index/bb", 8),
    ]
    assert list(backend.list("snapshots/")) == []


def test_list_and_stat_give_the_write_time(backend: LocalBackend, tmp_path: Path) -> None:
    before = time.time()
    backend.put("index/new", b"new")
    backend.put("index/old", b"old")
    os.utime(tmp_path / "root" / "index" / "old", (1_600_000_000, 1_600_000_000))
    listed = {i.name: i for i in backend.list("index/")}
    assert listed["index/old"] == ObjectInfo("index/old", 3, None, 1_600_000_000.0)
    assert backend.stat("index/old").mtime == 1_600_000_000.0
    new = listed["index/new"].mtime
    assert new is not None and before - 1 <= new <= time.time() + 1
    assert backend.stat("index/new").mtime == new


def test_list_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    assert list(LocalBackend(tmp_path / "absent").list("")) == []


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside", "data/../../outside", "a/../b"])
def test_names_cannot_escape_the_root(backend: LocalBackend, tmp_path: Path, name: str) -> None:
    for op in (
        lambda: backend.put(name, b"x"),
        lambda: backend.get(name),
        lambda: backend.stat(name),
        lambda: backend.delete(name),
    ):
        with pytest.raises(PermanentError, match="invalid object name"):
            op()
    assert not (tmp_path / "outside").exists()


def test_open_backend_urls(tmp_path: Path) -> None:
    assert isinstance(open_backend(str(tmp_path)), LocalBackend)
    local = open_backend(f"file://{tmp_path}/repo")
    assert isinstance(local, LocalBackend) and local.location == f"{tmp_path}/repo"
    for url, message in (
        ("s3:bucket/prefix", "expected s3:http"),
        ("s3:http://127.0.0.1:9", "no bucket"),
        ("sftp://host", "no repository path"),
        ("sftp://user:secret@host/x", "no passwords"),
        ("https://example.com/x", "unknown repository scheme"),
    ):
        with pytest.raises(UsageError, match=message):
            open_backend(url)
    with pytest.raises(UsageError, match="no repository"):
        open_backend("")
