"""Cold storage on S3 against a real moto server: archive classes and thaws, storage-class moves,
write times, and Object Lock (retention on every write, extension, legal hold, purge).

moto's own gaps (it lets a retention be shortened, it ignores the lock headers of a multipart
upload) are noted where a test depends on them; the checks here are on what drvault sends and
reads back, never on moto's refusals alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drvault.errors import (
    AlreadyExistsError,
    ArchivedError,
    NotFoundError,
    ObjectLockedError,
    PermanentError,
    UsageError,
)
from drvault.transport import open_backend
from drvault.transport.base import ColdStorage, ObjectState
from drvault.transport.options import S3Options, TransportOptions, apply_option
from drvault.transport.s3 import S3Backend
from tests.servers.s3_server import MotoServer

MiB = 1 << 20
DAY = 86_400
THAW_SECONDS = 3  # how long a thaw stays under way once moto's restore clock runs


def s3(url: str, **options: Any) -> S3Backend:
    backend = open_backend(url, TransportOptions(s3=S3Options(**options)))
    assert isinstance(backend, S3Backend)
    return backend


def count_requests(backend: S3Backend, operation: str) -> list[dict[str, Any]]:
    """Every ``operation`` request the backend's client sends from now on (its parameters)."""
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    backend._client.meta.events.register(f"before-parameter-build.s3.{operation}", record)
    return sent


def versions_of(s3_server: MotoServer, bucket: str, key: str) -> tuple[list[str], list[str]]:
    answer = s3_server.client().list_object_versions(Bucket=bucket, Prefix=key)
    versions = [v["VersionId"] for v in answer.get("Versions", ()) if v["Key"] == key]
    markers = [m["VersionId"] for m in answer.get("DeleteMarkers", ()) if m["Key"] == key]
    return versions, markers


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@pytest.fixture
def slow_thaws(s3_server: MotoServer) -> Iterator[None]:
    """Thaws stay under way THAW_SECONDS; immediate again afterwards."""
    with s3_server.slow_thaws(THAW_SECONDS):
        yield


@pytest.fixture
def backend(s3_url: str) -> Iterator[S3Backend]:
    b = s3(s3_url)
    yield b
    b.close()


# ---------------------------------------------------------------------- archive classes, thaws


def test_archived_objects_thaw_once_and_then_read(backend: S3Backend, slow_thaws: None) -> None:
    assert isinstance(backend, ColdStorage)
    restores = count_requests(backend, "RestoreObject")
    names = {"GLACIER": "data/aa/glacier", "DEEP_ARCHIVE": "data/bb/deep"}
    for cls, name in names.items():
        backend.put(name, cls.encode(), storage_class=cls)
        with pytest.raises(ArchivedError, match=f"{name}: in storage class {cls}; thaw"):
            backend.get(name)
        state = backend.object_state(name)
        assert (state.storage_class, state.archived, state.restore) == (cls, True, "none")
        assert state.size == len(cls) and not state.readable() and state.restore_expiry is None
    with pytest.raises(PermanentError, match="DEEP_ARCHIVE has no Expedited"):
        backend.thaw(names["DEEP_ARCHIVE"], 1, "Expedited")
    assert restores == []
    time.sleep(THAW_SECONDS + 0.2)  # moto's restore clock starts when the object is written

    for name in names.values():
        assert backend.thaw(name, 2, "Bulk") is True
        assert backend.object_state(name).restore == "ongoing"
        assert backend.thaw(name, 2, "Bulk") is False  # under way: nothing requested again
        with pytest.raises(ArchivedError):
            backend.get(name)
    assert [r["Key"] for r in restores] == [f"repo/{n}" for n in names.values()]

    wait_for(lambda: all(backend.object_state(n).restore == "done" for n in names.values()))
    for cls, name in names.items():
        state = backend.object_state(name)
        assert state.readable() and state.archived and state.storage_class == cls
        assert state.restore_expiry is not None
        assert abs(state.restore_expiry - (time.time() + 2 * DAY)) < 60
        assert backend.get(name) == cls.encode()
        assert backend.get(name, 1, 2) == cls.encode()[1:3]
        assert backend.thaw(name, 2, "Standard") is False  # thawed already
    assert len(restores) == 2


def test_thaw_of_objects_that_need_none_is_refused(backend: S3Backend) -> None:
    backend.put("data/ir", b"instant", storage_class="GLACIER_IR")
    backend.put("data/std", b"standard")
    state = backend.object_state("data/ir")
    assert (state.storage_class, state.archived, state.readable()) == ("GLACIER_IR", False, True)
    assert backend.get("data/ir") == b"instant"  # instant retrieval: no thaw
    assert backend.object_state("data/std").storage_class == "STANDARD"
    for name, cls in (("data/ir", "GLACIER_IR"), ("data/std", "STANDARD")):
        with pytest.raises(PermanentError, match=rf"not in an archive storage class \({cls}\)"):
            backend.thaw(name, 1, "Standard")
    with pytest.raises(NotFoundError):
        backend.thaw("data/none", 1, "Standard")
    with pytest.raises(NotFoundError):
        backend.object_state("data/none")
    with pytest.raises(UsageError, match="thaw tier 'Fast'"):
        backend.thaw("data/std", 1, "Fast")


def test_storage_class_moves_and_write_times(s3_server: MotoServer, backend: S3Backend) -> None:
    before = time.time()
    backend.put("data/00/pack", b"pack")
    backend.put("index/one", b"index")
    backend.set_storage_class("data/00/pack", "GLACIER")
    listed = {i.name: i for i in backend.list("")}
    assert listed["data/00/pack"].storage_class == "GLACIER"
    assert listed["index/one"].storage_class == "STANDARD"
    for info in (*listed.values(), backend.stat("index/one"), backend.stat("data/00/pack")):
        assert info.mtime is not None
        assert before - 2 <= info.mtime <= time.time() + 1  # LastModified has whole seconds
    state = backend.object_state("data/00/pack")
    assert state.archived and state.mtime == listed["data/00/pack"].mtime
    with pytest.raises(ArchivedError, match="thaw"):  # a copy out of an unthawed archive
        backend.set_storage_class("data/00/pack", "STANDARD")
    assert backend.object_lock() is None  # a plain bucket
    assert backend.object_state("index/one").lock_mode is None


# ---------------------------------------------------------------------- Object Lock


def assert_retained(state: ObjectState, mode: str, until: float) -> None:
    assert state.lock_mode == mode
    assert state.retain_until is not None and abs(state.retain_until - until) < 60


@pytest.mark.parametrize("mode", ["compliance", "governance"])
def test_every_write_carries_the_retention(s3_server: MotoServer, mode: str) -> None:
    bucket = s3_server.new_lock_bucket()
    b = s3(
        s3_server.url(bucket),
        lock_mode=mode,
        lock_days=3,
        multipart_threshold=5 * MiB,
        part_size=5 * MiB,
    )
    puts = count_requests(b, "PutObject")
    big = bytes(range(256)) * (6 * MiB // 256)
    b.put("data/00/single", b"single")
    b.put("data/01/multi", big)  # multipart: moto ignores the lock headers of the upload
    b.put("locks/one", b"first", exclusive=True)
    with pytest.raises(AlreadyExistsError):
        b.put("locks/one", b"second", exclusive=True)
    b.put("keys/big", big, exclusive=True)
    with pytest.raises(AlreadyExistsError):
        b.put("keys/big", big, exclusive=True)
    assert all(p.get("ChecksumAlgorithm") == "CRC32" for p in puts)  # a lock bucket needs one
    assert b.get("locks/one") == b"first" and b.get("data/01/multi") == big
    client = s3_server.client()
    for name in ("data/00/single", "data/01/multi", "keys/big"):
        assert_retained(b.object_state(name), mode.upper(), time.time() + 3 * DAY)
        head = client.head_object(Bucket=bucket, Key=f"repo/{name}")  # not through drvault
        assert head["ObjectLockMode"] == mode.upper()
    # Lock objects coordinate writers and are deleted on release: never retained.
    assert b.object_state("locks/one").lock_mode is None
    assert b.object_lock() == ("NONE", None)
    with pytest.raises(ObjectLockedError, match=rf"protected by Object Lock \({mode.upper()}\)"):
        b.purge("data/00/single")
    assert b.get("data/00/single") == b"single"


def test_purge_removes_every_version_only_once_unlocked(s3_server: MotoServer) -> None:
    bucket = s3_server.new_lock_bucket()
    url = s3_server.url(bucket)
    b = s3(url, lock_mode="governance", lock_days=0)  # retained until the write: passes at once
    deletes = count_requests(b, "DeleteObject")
    for data in (b"v1", b"v2"):
        b.put("data/cd/pack", data)
    b.put("data/cd/pack2", b"a longer key with the same prefix")
    until = time.time() + 3
    assert b.extend_retention("data/cd/pack", until) is True  # the current version only
    with pytest.raises(ObjectLockedError) as info:
        b.purge("data/cd/pack")
    assert info.value.mode == "GOVERNANCE" and not info.value.legal_hold
    assert info.value.until is not None and until <= info.value.until < until + 2
    assert "data/cd/pack: protected by Object Lock (GOVERNANCE) until 20" in str(info.value)
    assert deletes == []  # nothing deleted, not even the unlocked older version
    assert len(versions_of(s3_server, bucket, "repo/data/cd/pack")[0]) == 2
    assert b.get("data/cd/pack") == b"v2"

    time.sleep(max(0.0, (info.value.until or 0) + 1 - time.time()))  # retention passes
    assert not b.object_state("data/cd/pack").locked(time.time())
    b.delete("data/cd/pack")  # a delete marker on a versioned bucket
    assert versions_of(s3_server, bucket, "repo/data/cd/pack")[1] != []
    deletes.clear()
    b.purge("data/cd/pack")
    assert versions_of(s3_server, bucket, "repo/data/cd/pack") == ([], [])
    assert len(deletes) == 3 and all(d.get("VersionId") for d in deletes)
    assert not any(d.get("BypassGovernanceRetention") for d in deletes)
    assert b.get("data/cd/pack2") == b"a longer key with the same prefix"
    with pytest.raises(NotFoundError):
        b.purge("data/cd/pack")


def test_purge_on_an_unversioned_bucket_is_a_delete(backend: S3Backend) -> None:
    backend.put("data/ef/pack", b"x")
    backend.purge("data/ef/pack")
    with pytest.raises(NotFoundError):
        backend.stat("data/ef/pack")
    with pytest.raises(NotFoundError, match="data/ef/pack: not found"):
        backend.purge("data/ef/pack")


def test_extend_retention_never_shortens(s3_server: MotoServer) -> None:
    url = s3_server.url(s3_server.new_lock_bucket())
    b = s3(url, lock_mode="governance", lock_days=2)
    b.put("snapshots/s1", b"snap")
    held = b.object_state("snapshots/s1")
    assert_retained(held, "GOVERNANCE", time.time() + 2 * DAY)
    for earlier in (time.time() + DAY, time.time() - DAY, held.retain_until or 0):
        assert b.extend_retention("snapshots/s1", earlier) is False
        assert b.object_state("snapshots/s1") == held
    later = time.time() + 5 * DAY + 0.5
    assert b.extend_retention("snapshots/s1", later) is True
    state = b.object_state("snapshots/s1")
    assert state.lock_mode == "GOVERNANCE"
    assert state.retain_until is not None and later <= state.retain_until < later + 1

    plain = s3(url)  # no lock_mode: a version without retention gets GOVERNANCE
    plain.put("snapshots/s2", b"snap")
    assert plain.object_state("snapshots/s2").lock_mode is None
    assert plain.extend_retention("snapshots/s2", time.time() + DAY) is True
    assert_retained(plain.object_state("snapshots/s2"), "GOVERNANCE", time.time() + DAY)

    strict = s3(url, lock_mode="compliance", lock_days=1)
    strict.put("snapshots/s3", b"snap")
    assert b.extend_retention("snapshots/s3", time.time() + 4 * DAY) is True  # mode kept
    assert_retained(b.object_state("snapshots/s3"), "COMPLIANCE", time.time() + 4 * DAY)
    with pytest.raises(NotFoundError):
        b.extend_retention("snapshots/none", time.time() + DAY)


def test_a_legal_hold_counts_as_locked(s3_server: MotoServer) -> None:
    bucket = s3_server.new_lock_bucket()
    b = s3(s3_server.url(bucket))
    b.put("data/gh/pack", b"held")
    client = s3_server.client()
    key = "repo/data/gh/pack"
    client.put_object_legal_hold(Bucket=bucket, Key=key, LegalHold={"Status": "ON"})
    state = b.object_state("data/gh/pack")
    assert state.legal_hold and state.lock_mode is None and state.locked(time.time())
    with pytest.raises(ObjectLockedError, match="protected by an Object Lock legal hold") as info:
        b.purge("data/gh/pack")
    assert info.value.legal_hold and info.value.mode is None
    assert b.get("data/gh/pack") == b"held"
    client.put_object_legal_hold(Bucket=bucket, Key=key, LegalHold={"Status": "OFF"})
    assert not b.object_state("data/gh/pack").locked(time.time())
    b.purge("data/gh/pack")
    assert versions_of(s3_server, bucket, key) == ([], [])


def test_object_lock_reports_the_bucket_default(s3_server: MotoServer) -> None:
    bucket = s3_server.new_lock_bucket("COMPLIANCE", 7)
    b = s3(s3_server.url(bucket))
    asked = count_requests(b, "GetObjectLockConfiguration")
    assert b.object_lock() == ("COMPLIANCE", 7)
    assert b.object_lock() == ("COMPLIANCE", 7)
    assert len(asked) == 1  # cached per backend
    b.put("data/ij/pack", b"default")  # no lock_mode: the bucket's default retention applies
    assert_retained(b.object_state("data/ij/pack"), "COMPLIANCE", time.time() + 7 * DAY)
    b.set_storage_class("data/ij/pack", "STANDARD_IA")  # needs a Content-MD5 in a lock bucket
    state = b.object_state("data/ij/pack")
    assert state.storage_class == "STANDARD_IA"
    assert_retained(state, "COMPLIANCE", time.time() + 7 * DAY)
    assert s3(s3_server.url(s3_server.new_bucket())).object_lock() is None


def test_set_storage_class_in_a_lock_bucket_keeps_the_protection(s3_server: MotoServer) -> None:
    bucket = s3_server.new_lock_bucket()
    url = s3_server.url(bucket)
    b = s3(url, lock_mode="governance", lock_days=1)
    b.put("data/kl/pack", b"pack")
    b.set_storage_class("data/kl/pack", "GLACIER")
    state = b.object_state("data/kl/pack")
    assert state.storage_class == "GLACIER" and state.archived
    assert_retained(state, "GOVERNANCE", time.time() + DAY)
    assert len(versions_of(s3_server, bucket, "repo/data/kl/pack")[0]) == 2
    assert {i.storage_class for i in b.list("data/kl/")} == {"GLACIER"}

    s3(url, lock_mode="compliance", lock_days=5).put("data/kl/strict", b"strict")
    b.set_storage_class("data/kl/strict", "DEEP_ARCHIVE")  # asks GOVERNANCE for 1 day
    state = b.object_state("data/kl/strict")
    assert state.storage_class == "DEEP_ARCHIVE"
    assert_retained(state, "COMPLIANCE", time.time() + 5 * DAY)  # never weakened

    unlocked = s3(url)  # no lock options, no bucket default: the copy has no retention
    unlocked.put("data/kl/free", b"free")
    unlocked.set_storage_class("data/kl/free", "STANDARD_IA")
    state = unlocked.object_state("data/kl/free")
    assert state.storage_class == "STANDARD_IA" and state.lock_mode is None


def test_lock_mode_needs_a_lock_bucket_and_a_valid_name(s3_server: MotoServer) -> None:
    b = s3(s3_server.url(s3_server.new_bucket()), lock_mode="governance", lock_days=1)
    with pytest.raises(PermanentError, match="ObjectLockConfiguration"):
        b.put("data/x", b"x")
    options = apply_option(TransportOptions(), "s3.lock-mode=COMPLIANCE")
    assert options.s3.lock_mode == "compliance"
    assert apply_option(options, "s3.lock-days=30").s3.lock_days == 30
    with pytest.raises(UsageError, match=r"s3\.lock-mode=forever: expected one of"):
        apply_option(options, "s3.lock-mode=forever")
    with pytest.raises(UsageError, match=r"s3\.lock-days=-1"):
        apply_option(options, "s3.lock-days=-1")
