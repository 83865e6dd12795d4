"""One contract, every backend: local, S3 (real moto server), SFTP (real sshd), and each of them
under the full wrapper stack, plus a fault-injecting backend under the stack.

The promises are those of ``drvault/transport/base.py``; a backend passes only if it keeps all
of them through the protocol alone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from drvault.errors import AlreadyExistsError, NotFoundError, PermanentError
from drvault.transport import Backend, LocalBackend, open_backend
from drvault.transport.base import Capabilities, ShortReadError
from drvault.transport.metrics import Metrics
from drvault.transport.options import S3Options, TransportOptions
from drvault.transport.stack import stack
from tests.transport.faults import FlakyBackend

# Fast retries: the flaky stack must recover within a test's time.
FAST_RETRY = TransportOptions(retry_base=0.001, retry_max=0.01, retry_deadline=30.0)
# Rate limits and a cap of one request at a time: the tightest stack still keeps every promise.
LIMITED = TransportOptions(
    limit_upload=256 << 20, limit_download=256 << 20, connections=1, retry_base=0.001
)
# A small multipart threshold so the big-object test crosses part boundaries on S3.
SMALL_PARTS = TransportOptions(s3=S3Options(multipart_threshold=5 << 20, part_size=5 << 20))

KINDS = [
    "local",
    "s3",
    "sftp",
    "local+stack",
    "s3+stack",
    "sftp+stack",
    "flaky-local+stack",
    "flaky-sftp+stack",
    "local+limited",
    "s3+limited",
]


def _raw(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if kind.endswith("local"):
        return LocalBackend(tmp_path / "root")
    if kind.endswith("s3"):
        return open_backend(request.getfixturevalue("s3_url"), SMALL_PARTS)
    return open_backend(request.getfixturevalue("sftp_url"), TransportOptions())


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind: str = request.param
    base, _, wrapped = kind.partition("+")
    raw = _raw(base, request, tmp_path)
    b: Backend = raw
    if base.startswith("flaky-"):
        b = FlakyBackend(raw, every=3)
    if wrapped:
        b = stack(b, LIMITED if wrapped == "limited" else FAST_RETRY, Metrics())
    b.create()
    b.create()  # idempotent
    assert b.exists()
    yield b
    b.close()


def test_put_get_stat_overwrite(backend: Backend) -> None:
    backend.put("data/ab/abc", b"0123456789")
    assert backend.get("data/ab/abc") == b"0123456789"
    info = backend.stat("data/ab/abc")
    assert (info.name, info.size) == ("data/ab/abc", 10)
    backend.put("data/ab/abc", memoryview(b"replaced!"))
    assert backend.get("data/ab/abc") == b"replaced!"
    backend.put("empty", b"")
    assert backend.get("empty") == b""
    assert backend.stat("empty").size == 0
    assert backend.location
    assert isinstance(backend.capabilities, Capabilities)
    assert backend.capabilities.connections >= 1


def test_ranged_get_is_exact_and_short_reads_fail(backend: Backend) -> None:
    backend.put("obj", b"0123456789")
    assert backend.get("obj", 3) == b"3456789"
    assert backend.get("obj", 3, 4) == b"3456"
    assert backend.get("obj", 0, 10) == b"0123456789"
    assert backend.get("obj", 9, 1) == b"9"
    for offset, length in ((8, 4), (20, 1)):
        with pytest.raises(ShortReadError):
            backend.get("obj", offset, length)


def test_missing_objects_are_not_found(backend: Backend) -> None:
    with pytest.raises(NotFoundError):
        backend.get("nope")
    with pytest.raises(NotFoundError):
        backend.get("dir/nope", 0, 5)
    with pytest.raises(NotFoundError):
        backend.stat("nope")
    with pytest.raises(NotFoundError):
        backend.delete("nope")


def test_exclusive_put_creates_only_if_absent(backend: Backend) -> None:
    backend.put("locks/one", b"first", exclusive=True)
    with pytest.raises(AlreadyExistsError):
        backend.put("locks/one", b"second", exclusive=True)
    assert backend.get("locks/one") == b"first"
    assert [i.name for i in backend.list("locks/")] == ["locks/one"]


def test_exclusive_put_race_has_one_winner(backend: Backend) -> None:
    wins: list[int] = []
    barrier = threading.Barrier(6)

    def race(n: int) -> None:
        barrier.wait()
        try:
            backend.put("locks/race", str(n).encode(), exclusive=True)
            wins.append(n)
        except AlreadyExistsError:
            pass

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(race, range(6)))
    assert len(wins) == 1
    assert backend.get("locks/race") == str(wins[0]).encode()


def test_list_yields_each_object_once_by_plain_prefix(backend: Backend) -> None:
    names = ["index/aa", "index/bb", "data/00/x", "data/01/y", "data/01/z", "config"]
    for n in names:
        backend.put(n, n.encode())
    assert sorted(i.name for i in backend.list("")) == sorted(names)
    assert sorted(i.name for i in backend.list("data/")) == ["data/00/x", "data/01/y", "data/01/z"]
    assert sorted(i.name for i in backend.list("data/01/")) == ["data/01/y", "data/01/z"]
    assert sorted((i.name, i.size) for i in backend.list("index/")) == [
        ("index/aa", 8),
        ("index/bb", 8),
    ]
    assert list(backend.list("snapshots/")) == []


def test_delete_removes(backend: Backend) -> None:
    backend.put("keys/k", b"slot")
    backend.delete("keys/k")
    with pytest.raises(NotFoundError):
        backend.get("keys/k")
    assert list(backend.list("keys/")) == []


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside", "data/../../outside"])
def test_names_cannot_escape_the_root(backend: Backend, name: str) -> None:
    with pytest.raises(PermanentError, match="invalid object name"):
        backend.put(name, b"x")
    with pytest.raises(PermanentError, match="invalid object name"):
        backend.get(name)


def test_large_object_round_trip_and_ranges(backend: Backend) -> None:
    data = os.urandom(11 << 20)  # above the S3 multipart threshold used here
    backend.put("data/ff/big", data)
    assert backend.stat("data/ff/big").size == len(data)
    assert backend.get("data/ff/big") == data
    for offset, length in ((0, 1), ((5 << 20) - 7, 100), (len(data) - 4096, 4096)):
        assert backend.get("data/ff/big", offset, length) == data[offset : offset + length]


def test_parallel_puts_and_gets(backend: Backend) -> None:
    blobs = {f"data/{i % 4:02x}/obj{i}": os.urandom(1000 + i) for i in range(24)}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: backend.put(*kv), blobs.items()))
        got = dict(zip(blobs, pool.map(backend.get, blobs), strict=True))
    assert got == blobs
    assert sorted(i.name for i in backend.list("data/")) == sorted(blobs)
