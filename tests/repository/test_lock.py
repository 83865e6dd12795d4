"""Repository locks: shared and exclusive holders, waiting, stale locks, losing a lock, and a
race of many lockers on local disk, a real S3 server and a real sshd."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drvault.errors import EXIT_LOCKED, LockedError
from drvault.repository.lock import LockInfo, RepoLock, list_locks, remove_stale
from drvault.transport import Backend, LocalBackend, ObjectInfo, open_backend
from drvault.transport.options import TransportOptions, from_environment
from tests.servers.s3_server import MotoServer

HOST = socket.gethostname()
FIELDS = {"version", "exclusive", "host", "pid", "command", "created", "refreshed", "nonce"}


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "repo")


def _objects(backend: Backend) -> list[str]:
    return sorted(info.name for info in backend.list("locks/"))


def _plant(
    backend: Backend,
    name: str = "locks/" + "ab" * 16,
    *,
    exclusive: bool = True,
    host: str = "db1",
    pid: int = 4242,
    command: str = "prune",
    created: float | None = None,
    refreshed: float | None = None,
) -> str:
    """Write a lock object as another drvault process would (the documented format)."""
    now = time.time()
    doc = {
        "version": 1,
        "exclusive": exclusive,
        "host": host,
        "pid": pid,
        "command": command,
        "created": now if created is None else created,
        "refreshed": now if refreshed is None else refreshed,
        "nonce": "cd" * 16,
    }
    backend.put(name, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    return name


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True
    )
    return int(proc.stdout)


# ---------------------------------------------------------------------- format


def test_lock_object_is_the_documented_json(backend: LocalBackend) -> None:
    before = time.time()
    with RepoLock(backend, exclusive=True, command="prune") as lock:
        (name,) = _objects(backend)
        assert lock.name == name
        assert re.fullmatch(r"locks/[0-9a-f]{32}", name)
        raw = backend.get(name)
        doc = json.loads(raw)
        assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        assert set(doc) == FIELDS
        assert doc["version"] == 1 and doc["exclusive"] is True
        assert (doc["host"], doc["pid"], doc["command"]) == (HOST, os.getpid(), "prune")
        assert before <= doc["created"] == doc["refreshed"] <= time.time()
        assert re.fullmatch(r"[0-9a-f]{32}", doc["nonce"])
        (info,) = list_locks(backend)
        assert info == LockInfo(
            name, True, HOST, os.getpid(), "prune", doc["created"], doc["refreshed"], doc["nonce"]
        )
    assert _objects(backend) == []


def test_every_lock_gets_a_new_name_and_nonce(backend: LocalBackend) -> None:
    seen = set()
    for _ in range(3):
        with RepoLock(backend, exclusive=False, command="backup"):
            (info,) = list_locks(backend)
            seen.add((info.name, info.nonce))
    assert len({name for name, _ in seen}) == len({nonce for _, nonce in seen}) == 3


# ---------------------------------------------------------------------- shared / exclusive


def test_shared_locks_coexist(backend: LocalBackend) -> None:
    with (
        RepoLock(backend, exclusive=False, command="backup"),
        RepoLock(backend, exclusive=False, command="replicate"),
    ):
        assert sorted(lock.command for lock in list_locks(backend)) == ["backup", "replicate"]
    assert _objects(backend) == []


@pytest.mark.parametrize(
    ("first", "second"),
    [(True, False), (False, True), (True, True)],
    ids=["exclusive-blocks-shared", "shared-blocks-exclusive", "exclusive-blocks-exclusive"],
)
def test_conflicting_lock_is_refused_naming_the_holder(
    backend: LocalBackend, first: bool, second: bool
) -> None:
    holder = RepoLock(backend, exclusive=first, command="prune" if first else "backup")
    holder.acquire()
    with pytest.raises(LockedError) as caught:
        RepoLock(backend, exclusive=second, command="other").acquire()
    message = str(caught.value)
    assert caught.value.exit_code == EXIT_LOCKED
    assert message.startswith(f"repository is locked by {holder.command} on host {HOST} ")
    assert f"(pid {os.getpid()}, for 0 s)" in message
    assert "\n" not in message
    assert _objects(backend) == [holder.name]  # the refused locker left nothing behind
    holder.release()
    with RepoLock(backend, exclusive=second, command="other"):
        assert len(_objects(backend)) == 1


def test_message_names_every_holder_and_its_age(backend: LocalBackend) -> None:
    now = time.time()
    _plant(
        backend,
        "locks/" + "1" * 32,
        exclusive=False,
        host="web1",
        pid=7,
        command="backup",
        created=now - 190,
    )
    _plant(
        backend,
        "locks/" + "2" * 32,
        exclusive=False,
        host="dr2",
        pid=8,
        command="replicate",
        created=now - 2 * 3600 - 300,
    )
    with pytest.raises(LockedError) as caught:
        RepoLock(backend, exclusive=True, command="prune").acquire()
    assert str(caught.value) == (
        "repository is locked by replicate on host dr2 (pid 8, for 2 h 5 min); "
        "backup on host web1 (pid 7, for 3 min)"
    )  # oldest first


def test_release_is_idempotent_and_the_context_manager_releases_on_error(
    backend: LocalBackend,
) -> None:
    with pytest.raises(ZeroDivisionError), RepoLock(backend, exclusive=True, command="prune"):
        assert len(_objects(backend)) == 1
        _ = 1 / 0
    assert _objects(backend) == []
    lock = RepoLock(backend, exclusive=True, command="prune")
    lock.acquire()
    lock.release()
    lock.release()
    lock.acquire()  # a released lock can be taken again
    assert len(_objects(backend)) == 1
    lock.release()
    assert _objects(backend) == []


# ---------------------------------------------------------------------- waiting


def test_wait_retries_until_the_holder_releases(backend: LocalBackend) -> None:
    holder = RepoLock(backend, exclusive=True, command="prune")
    holder.acquire()
    releaser = threading.Timer(1.5, holder.release)
    waiter = RepoLock(backend, exclusive=False, command="backup", wait=20)
    start = time.monotonic()
    releaser.start()
    try:
        waiter.acquire()
    finally:
        releaser.join()
    took = time.monotonic() - start
    assert 1.5 <= took < 15, took
    (info,) = list_locks(backend)
    assert (info.command, info.name) == ("backup", waiter.name)
    waiter.release()


def test_wait_gives_up_at_the_deadline(backend: LocalBackend) -> None:
    _plant(backend, command="prune")
    start = time.monotonic()
    with pytest.raises(LockedError, match=r"locked by prune on host db1 .*\(waited 2 s\)$"):
        RepoLock(backend, exclusive=False, command="backup", wait=2).acquire()
    assert 2 <= time.monotonic() - start < 3.5
    assert len(_objects(backend)) == 1  # only the holder's object


def test_backoff_doubles_with_jitter_and_never_sleeps_past_the_deadline(
    backend: LocalBackend,
) -> None:
    _plant(backend)
    now = [time.time()]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    lock = RepoLock(
        backend, exclusive=False, command="backup", wait=60, clock=lambda: now[0], sleep=sleep
    )
    start = now[0]
    with pytest.raises(LockedError):
        lock.acquire()
    assert now[0] == pytest.approx(start + 60)
    assert 0.25 <= sleeps[0] <= 0.5
    assert all(0 < s <= 10 for s in sleeps)
    assert sleeps[:5] == sorted(sleeps[:5])  # doubling: jitter never undoes the growth
    assert all(s <= 0.5 * 2**i for i, s in enumerate(sleeps))
    assert max(sleeps) > 5  # it grew towards the cap


# ---------------------------------------------------------------------- stale locks


def test_a_lock_not_refreshed_for_stale_after_is_ignored_and_removed_by_prune(
    backend: LocalBackend,
) -> None:
    t0 = time.time()
    old = RepoLock(backend, exclusive=True, command="prune", clock=lambda: t0)
    old.acquire()
    later = t0 + 1801
    with RepoLock(backend, exclusive=False, command="backup", clock=lambda: later):
        assert len(_objects(backend)) == 2  # a shared locker ignores it and leaves it
    with RepoLock(backend, exclusive=True, command="prune", clock=lambda: later) as new:
        assert _objects(backend) == [new.name]  # removed
    with pytest.raises(LockedError, match="removed by another process"):
        old.check()
    old.release()  # its object is gone: tolerated


def test_just_under_stale_after_still_blocks(backend: LocalBackend) -> None:
    t0 = time.time()
    _plant(backend, refreshed=t0 - 1700)
    with pytest.raises(LockedError, match="prune on host db1"):
        RepoLock(backend, exclusive=False, command="backup", clock=lambda: t0).acquire()
    with RepoLock(backend, exclusive=False, command="backup", stale_after=1600):
        pass


def test_a_lock_of_a_dead_process_on_this_host_is_stale(backend: LocalBackend) -> None:
    dead = _dead_pid()
    name = _plant(backend, host=HOST, pid=dead, exclusive=True, command="prune")
    elsewhere = _plant(
        backend,
        "locks/" + "e" * 32,
        host="other-" + HOST,
        pid=dead,
        exclusive=False,
        command="backup",
    )
    (mine,) = [lock for lock in list_locks(backend) if lock.name == name]
    assert mine.stale(time.time(), 1800, this_host=HOST)
    assert not mine.stale(time.time(), 1800, this_host="db9")
    with RepoLock(backend, exclusive=False, command="backup"):
        assert name in _objects(backend)  # ignored, not removed
    with pytest.raises(LockedError, match=rf"backup on host other-{re.escape(HOST)}"):
        RepoLock(backend, exclusive=True, command="prune").acquire()  # same pid elsewhere: live
    backend.delete(elsewhere)
    with RepoLock(backend, exclusive=True, command="prune") as lock:
        assert _objects(backend) == [lock.name]


def test_remove_stale_removes_only_stale_and_unreadable_locks(backend: LocalBackend) -> None:
    now = time.time()
    old = _plant(backend, "locks/" + "1" * 32, refreshed=now - 4000)
    dead = _plant(backend, "locks/" + "2" * 32, host=HOST, pid=_dead_pid())
    live = _plant(backend, "locks/" + "3" * 32, host=HOST, pid=os.getpid())
    far = _plant(backend, "locks/" + "4" * 32, host="db2", refreshed=now - 60)
    backend.put("locks/" + "5" * 32, b"\x00garbage")
    removed = remove_stale(backend, now)
    assert removed == sorted([old, dead, "locks/" + "5" * 32])
    assert _objects(backend) == sorted([live, far])
    assert remove_stale(backend, now + 59, stale_after=120) == []
    assert remove_stale(backend, now + 61, stale_after=120) == [far]


# ---------------------------------------------------------------------- unreadable objects


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe garbage", b"[]", b'{"version": 1}', b'{"version":1,"exclusive":"yes"}', b""],
    ids=["bytes", "list", "fields-missing", "wrong-type", "empty"],
)
def test_unreadable_lock_objects_do_not_crash(backend: LocalBackend, raw: bytes) -> None:
    bad = "locks/" + "f" * 32
    backend.put(bad, raw)
    assert list_locks(backend) == []
    with RepoLock(backend, exclusive=False, command="backup"):
        assert len(list_locks(backend)) == 1
    with pytest.raises(LockedError, match=f"unreadable lock object {bad}"):
        RepoLock(backend, exclusive=True, command="prune").acquire()
    assert remove_stale(backend, time.time()) == [bad]
    with RepoLock(backend, exclusive=True, command="prune"):
        pass


def test_a_later_version_with_the_same_fields_is_understood(backend: LocalBackend) -> None:
    name = "locks/" + "9" * 32
    doc = {
        "version": 2,
        "exclusive": True,
        "host": "db1",
        "pid": 1,
        "command": "prune",
        "created": 1,
        "refreshed": time.time(),
        "nonce": "x",
        "extra": [1],
    }
    backend.put(name, json.dumps(doc).encode())
    (info,) = list_locks(backend)
    assert (info.name, info.exclusive, info.command, info.created) == (name, True, "prune", 1.0)
    with pytest.raises(LockedError, match="prune on host db1"):
        RepoLock(backend, exclusive=False, command="backup").acquire()


# ---------------------------------------------------------------------- losing the lock


def test_check_raises_once_our_object_is_deleted(backend: LocalBackend) -> None:
    lock = RepoLock(backend, exclusive=True, command="prune")
    lock.acquire()
    lock.check()
    assert lock.name is not None
    backend.delete(lock.name)
    with pytest.raises(LockedError, match="removed by another process") as caught:
        lock.check()
    assert caught.value.exit_code == EXIT_LOCKED
    with pytest.raises(LockedError):
        lock.check()  # stays lost
    lock.release()
    lock.release()
    assert _objects(backend) == []


def test_check_raises_when_our_object_carries_another_nonce(backend: LocalBackend) -> None:
    lock = RepoLock(backend, exclusive=True, command="prune")
    lock.acquire()
    assert lock.name is not None
    _plant(backend, lock.name, host="db7")
    with pytest.raises(LockedError, match="replaced by another process"):
        lock.check()
    lock.release()
    assert [info.host for info in list_locks(backend)] == ["db7"]  # not ours: left alone


def test_check_raises_when_we_did_not_refresh_for_stale_after(backend: LocalBackend) -> None:
    now = [time.time()]
    lock = RepoLock(backend, exclusive=True, command="prune", clock=lambda: now[0])
    lock.acquire()
    now[0] += 1799
    lock.check()
    now[0] += 2
    with pytest.raises(LockedError, match="not refreshed for 30 min"):
        lock.check()
    lock.release()
    assert _objects(backend) == []


def _poll(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_refresher_rewrites_refreshed_and_notices_a_removal(backend: LocalBackend) -> None:
    ticks = iter(range(10**9))
    t0 = time.time()
    lock = RepoLock(
        backend, exclusive=True, command="prune", refresh_every=0.05, clock=lambda: t0 + next(ticks)
    )
    lock.acquire()
    (first,) = list_locks(backend)

    def refreshed_twice() -> bool:
        (info,) = list_locks(backend)
        return info.refreshed >= first.refreshed + 2

    _poll(refreshed_twice)
    (info,) = list_locks(backend)
    assert (info.name, info.created, info.nonce) == (first.name, first.created, first.nonce)
    lock.check()
    backend.delete(first.name)
    time.sleep(0.3)  # several refresh periods: the refresher must not re-create it
    assert _objects(backend) == []
    with pytest.raises(LockedError, match="removed by another process"):
        lock.check()
    lock.release()


def test_release_stops_the_refresher_promptly(backend: LocalBackend) -> None:
    lock = RepoLock(
        backend, exclusive=False, command="backup", refresh_every=3600, stale_after=7200
    )
    lock.acquire()
    start = time.monotonic()
    lock.release()
    assert time.monotonic() - start < 1
    assert not [t for t in threading.enumerate() if t.name.startswith("drvault-lock-refresh")]


# ---------------------------------------------------------------------- races


class _Lockstep:
    """A backend that makes two lockers race in lockstep: neither lists before both have
    created their objects, and neither goes on before both have read the other's object."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.created = threading.Barrier(2, timeout=10)
        self.read = threading.Barrier(2, timeout=10)
        self.listed = threading.local()

    def __getattr__(self, attr: str) -> object:
        return getattr(self.inner, attr)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self.created.wait()
        self.listed.yes = True
        return iter(list(self.inner.list(prefix)))

    def get(self, name: str) -> bytes:
        data = self.inner.get(name)
        if getattr(self.listed, "yes", False):
            self.listed.yes = False
            self.read.wait()
        return data


@pytest.mark.parametrize("other_exclusive", [False, True], ids=["vs-shared", "vs-exclusive"])
def test_lockers_that_see_each_other_both_back_off(
    backend: LocalBackend, other_exclusive: bool
) -> None:
    racy: Backend = _Lockstep(backend)  # type: ignore[assignment]
    locks = [
        RepoLock(racy, exclusive=True, command="prune"),
        RepoLock(racy, exclusive=other_exclusive, command="other"),
    ]
    refused: list[str] = []

    def take(lock: RepoLock) -> None:
        try:
            lock.acquire()
        except LockedError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=take, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(refused) == sorted(
        [
            f"repository is locked by other on host {HOST} (pid {os.getpid()}, for 0 s)",
            f"repository is locked by prune on host {HOST} (pid {os.getpid()}, for 0 s)",
        ]
    )
    assert _objects(backend) == []


def _race(
    open_one: Callable[[], Backend], seconds: float, threads: int = 8, hold: float = 0.06
) -> None:
    """``threads`` lockers, each on its own backend (as on separate hosts), take random
    shared or exclusive locks for ``seconds``; no exclusive holding may overlap another."""
    intervals: list[tuple[float, float, bool]] = []
    errors: list[BaseException] = []
    record = threading.Lock()
    stop_at = [0.0]

    def set_off() -> None:  # the clock starts once every locker has opened its backend
        stop_at[0] = time.monotonic() + seconds

    start = threading.Barrier(threads, action=set_off, timeout=60)

    def run(seed: int) -> None:
        rng = random.Random(seed)
        backend = open_one()
        try:
            start.wait()
            while time.monotonic() < stop_at[0]:
                exclusive = rng.random() < 0.4
                lock = RepoLock(backend, exclusive=exclusive, command="race", wait=1.5)
                try:
                    lock.acquire()
                except LockedError:
                    continue
                began = time.monotonic()
                time.sleep(rng.uniform(0.01, hold))
                if exclusive:
                    lock.check()
                ended = time.monotonic()
                lock.release()
                with record:
                    intervals.append((began, ended, exclusive))
        except BaseException as exc:
            errors.append(exc)
        finally:
            backend.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    for i, (a_start, a_end, a_exclusive) in enumerate(intervals):
        for b_start, b_end, b_exclusive in intervals[i + 1 :]:
            if a_exclusive or b_exclusive:
                assert a_end <= b_start or b_end <= a_start, "an exclusive holder overlapped"
    shared = [(a, b) for a, b, exclusive in intervals if not exclusive]
    assert len(shared) < len(intervals), "no exclusive lock was taken: the race proved nothing"
    assert any(a < d and c < b for i, (a, b) in enumerate(shared) for c, d in shared[i + 1 :]), (
        "shared holders never overlapped: the lockers did not really race"
    )


def test_race_local(tmp_path: Path) -> None:
    _race(lambda: LocalBackend(tmp_path / "repo"), seconds=4)
    assert _objects(LocalBackend(tmp_path / "repo")) == []


def test_race_s3(s3_server: MotoServer) -> None:
    url = s3_server.url(s3_server.new_bucket())
    _race(lambda: open_backend(url, TransportOptions()), seconds=5, threads=4, hold=0.2)
    backend = open_backend(url, TransportOptions())
    assert _objects(backend) == []
    backend.close()


def test_race_sftp(sftp_url: str) -> None:
    first = open_backend(sftp_url, from_environment())
    first.create()
    _race(lambda: open_backend(sftp_url, from_environment()), seconds=4)
    assert _objects(first) == []
    first.close()
