"""SFTP-specific behaviour against a real sshd: host keys, login, atomic creates, link faults.

The promises every backend shares are checked by the conformance suite; here are the parts only
SFTP has. Link faults go through :class:`FaultProxy` (a silent cut is ``blackhole()``, an RST
is ``reset()``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest
from paramiko.sftp import CMD_DATA, CMD_STATUS, SFTP_EOF

from drvault.errors import (
    NotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)
from drvault.transport import ObjectInfo, open_backend
from drvault.transport.base import ShortReadError
from drvault.transport.options import SftpOptions, from_environment
from drvault.transport.sftp import SftpBackend, _Conn
from drvault.transport.url import parse_sftp
from tests.servers.proxy import FaultProxy
from tests.servers.sshd_server import SshdServer

_MIB = 1 << 20


def _fingerprint(pub: Path) -> str:
    """The SHA256 fingerprint as ssh-keygen prints it (an oracle independent of drvault)."""
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, check=True)
    return out.stdout.decode().split()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _open(url: str, **sftp: str | float) -> SftpBackend:
    options = from_environment()
    sftp_options = dataclasses.replace(options.sftp, **sftp)  # type: ignore[arg-type]
    options = dataclasses.replace(options, sftp=sftp_options)
    backend = open_backend(url, options)
    assert isinstance(backend, SftpBackend)
    return backend


def _tmp_files(root: Path) -> list[Path]:
    return list(root.rglob(".tmp-*"))


@pytest.fixture
def backend(sftp_url: str) -> Iterator[SftpBackend]:
    b = _open(sftp_url)
    assert not b.exists()
    b.create()
    assert b.exists()
    yield b
    b.close()


@pytest.fixture
def proxy(sshd_server: SshdServer) -> Iterator[FaultProxy]:
    with FaultProxy(sshd_server.port) as p:
        yield p


def _through(
    proxy: FaultProxy, sshd_server: SshdServer, subdir: str, **sftp: str | float
) -> SftpBackend:
    """A created repository on sshd, reached through ``proxy``."""
    known = sshd_server.workdir / f"known_hosts_{proxy.port}"
    known.write_text(f"[127.0.0.1]:{proxy.port} {sshd_server.host_key_line()}\n")
    url = f"sftp://{sshd_server.user}@127.0.0.1:{proxy.port}{sshd_server.root}/{subdir}"
    b = _open(url, known_hosts=str(known), **sftp)
    b.create()
    return b


def _wait_for(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# ---------------------------------------------------------------------- URLs and login


def test_open_backend_parses_sftp_urls(sshd_server: SshdServer) -> None:
    b = open_backend("sftp://backup@example.invalid:2222/srv/repo/")
    assert isinstance(b, SftpBackend)  # nothing is dialled until first use
    assert b.location == "sftp://backup@example.invalid:2222/srv/repo"
    assert b.capabilities.connections >= 2
    assert b.capabilities.atomic_create and not b.capabilities.storage_classes
    plain = open_backend("sftp://example.invalid/srv/repo")
    assert plain.location.endswith("@example.invalid:22/srv/repo")
    assert plain.location.startswith(f"sftp://{sshd_server.user}@")  # the local user
    for url, needle in [
        ("sftp://example.invalid/", "no repository path"),
        ("sftp://u:secret@example.invalid/srv", "no passwords"),
        ("sftp://example.invalid:notaport/srv", "bad port"),
    ]:
        with pytest.raises(UsageError, match=needle):
            open_backend(url)


def test_login_with_the_key_from_the_environment(sftp_url: str, sshd_server: SshdServer) -> None:
    assert os.environ["DRVAULT_SFTP_KEY"] == str(sshd_server.key_path)
    b = SftpBackend(parse_sftp(sftp_url), SftpOptions())  # key and known_hosts from the env
    try:
        b.create()
        b.put("config", b"hello")
        assert b.get("config") == b"hello"
        assert (Path(parse_sftp(sftp_url).path) / "config").read_bytes() == b"hello"
    finally:
        b.close()


def test_unauthorised_key_is_refused(
    sftp_url: str, sshd_server: SshdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* to fall back on
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    stranger = _keygen(tmp_path / "stranger")
    b = _open(sftp_url, key=str(stranger))
    expected = f"authentication as {sshd_server.user} failed"
    with pytest.raises(PermanentError, match=expected) as info:
        b.exists()
    assert str(stranger) in str(info.value)
    missing = _open(sftp_url, key=str(tmp_path / "absent"))
    with pytest.raises(PermanentError, match="cannot load SSH key"):
        missing.exists()


def test_unknown_host_is_refused_with_its_fingerprint(
    sftp_url: str, sshd_server: SshdServer, tmp_path: Path
) -> None:
    expected = _fingerprint(sshd_server.host_key_path.with_suffix(".pub"))
    for known in (tmp_path / "empty", tmp_path / "absent"):
        if known.name == "empty":
            known.write_text("")
        b = _open(sftp_url, known_hosts=str(known))
        with pytest.raises(PermanentError, match="unknown host key") as info:
            b.create()
        message = str(info.value)
        assert f"ssh-ed25519 {expected}" in message
        assert f"ssh-keyscan -p {sshd_server.port} 127.0.0.1 >> {known}" in message
    assert not known.exists() or known.read_text() == ""  # never added on its own


def test_changed_host_key_is_refused(
    sftp_url: str, sshd_server: SshdServer, tmp_path: Path
) -> None:
    other = _keygen(tmp_path / "other_host")
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd_server.port} {kind} {blob}\n")
    b = _open(sftp_url, known_hosts=str(known))
    with pytest.raises(PermanentError, match="host key changed") as info:
        b.exists()
    message = str(info.value)
    assert _fingerprint(other.with_suffix(".pub")) in message
    assert _fingerprint(sshd_server.host_key_path.with_suffix(".pub")) in message
    # the same key listed for port 22 (plain host name) does not count for this port
    known.write_text(f"127.0.0.1 {sshd_server.host_key_line()}\n")
    with pytest.raises(PermanentError, match="unknown host key"):
        _open(sftp_url, known_hosts=str(known)).exists()


def test_known_hosts_is_read_as_ssh_reads_it(
    sftp_url: str, sshd_server: SshdServer, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd_server.known_hosts.read_text())
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    hashed = known.read_text()
    assert hashed.startswith("|1|")  # hashed names match too
    noise = "# a comment\nnot a host line\n@cert-authority *.example ssh-ed25519 AAAA\n"
    known.write_text(noise + hashed + "x ssh-ed25519 !!\n")  # lines ssh skips
    b = _open(sftp_url, known_hosts=str(known))
    b.create()
    assert b.exists()
    b.close()
    with known.open("a") as f:
        f.write(f"@revoked * {sshd_server.host_key_line()}\n")
    with pytest.raises(PermanentError, match="marked @revoked"):
        _open(sftp_url, known_hosts=str(known)).exists()


# ---------------------------------------------------------------------- objects


def test_objects_live_as_files_under_the_root(backend: SftpBackend, sftp_url: str) -> None:
    root = Path(parse_sftp(sftp_url).path)
    backend.put("data/ab/abc", b"0123456789")
    assert (root / "data" / "ab" / "abc").read_bytes() == b"0123456789"
    backend.put("data/ab/abc", memoryview(b"replaced"))
    assert backend.get("data/ab/abc") == b"replaced"
    assert backend.stat("data/ab/abc") == ObjectInfo("data/ab/abc", 8)
    backend.put("empty", b"")
    assert backend.get("empty") == b""
    for op in (
        lambda: backend.get("nope"),
        lambda: backend.get("dir/nope", 0, 5),
        lambda: backend.stat("nope"),
        lambda: backend.delete("nope"),
    ):
        with pytest.raises(NotFoundError):
            op()
    with pytest.raises(PermanentError, match="invalid object name"):
        backend.put("../escape", b"x")


def test_temporary_files_are_skipped_and_none_are_left(backend: SftpBackend, sftp_url: str) -> None:
    root = Path(parse_sftp(sftp_url).path)
    names = ["index/aa", "data/00/x", "data/01/y", "config", "keys/k"]
    for n in names:
        backend.put(n, n.encode())
    assert _tmp_files(root) == []
    (root / "data" / "00" / ".tmp-deadbeef").write_bytes(b"an interrupted upload")
    (root / "notes").mkdir()  # an empty directory outside any prefix
    assert sorted(i.name for i in backend.list("")) == sorted(names)
    assert sorted(i.name for i in backend.list("data/")) == ["data/00/x", "data/01/y"]
    assert sorted(i.name for i in backend.list("data")) == ["data/00/x", "data/01/y"]
    assert sorted(i.name for i in backend.list("data/0")) == ["data/00/x", "data/01/y"]
    assert [i.name for i in backend.list("data/01/")] == ["data/01/y"]
    assert sorted(i.name for i in backend.list("k")) == ["keys/k"]
    assert list(backend.list("snapshots/")) == []


def test_list_gives_the_write_time(backend: SftpBackend, sftp_url: str) -> None:
    root = Path(parse_sftp(sftp_url).path)
    before = time.time()
    backend.put("index/new", b"new")
    backend.put("index/old", b"old")
    os.utime(root / "index" / "old", (1_600_000_000, 1_600_000_000))
    listed = {i.name: i for i in backend.list("index/")}
    assert listed["index/old"] == ObjectInfo("index/old", 3, None, 1_600_000_000.0)
    new = listed["index/new"].mtime
    assert new is not None and int(before) - 1 <= new <= time.time() + 1  # whole seconds


def test_ranged_get_across_a_large_object(backend: SftpBackend) -> None:
    data = os.urandom(3 * _MIB + 12345)  # many 128 KiB requests, an odd tail
    backend.put("data/big", data)
    assert backend.get("data/big") == data
    assert backend.get("data/big", 100_000, 2_500_000) == data[100_000:2_600_000]
    assert backend.get("data/big", 3 * _MIB) == data[3 * _MIB :]
    assert backend.get("data/big", len(data) - 7, 7) == data[-7:]
    assert backend.get("data/big", len(data), 0) == b""
    with pytest.raises(ShortReadError, match="short read") as info:
        backend.get("data/big", len(data) - 100, 1000)
    assert info.value.name == "data/big"
    with pytest.raises(ShortReadError):
        backend.get("data/big", len(data) + 5, 1)


class _CappedServer:
    """Stands in for paramiko's SFTPClient: answers reads from ``data``, ``cap`` bytes at most."""

    def __init__(self, data: bytes, cap: int) -> None:
        self.data, self.cap = data, cap
        self.queue: list[tuple[_Conn, int, int, int]] = []
        self.asked: list[int] = []

    def _async_request(self, conn: _Conn, t: int, handle: bytes, offset: int, n: int) -> int:
        self.queue.append((conn, len(self.asked), int(offset), n))
        self.asked.append(n)
        return len(self.asked) - 1

    def _read_response(self) -> None:
        conn, num, offset, n = self.queue.pop(0)
        msg = paramiko.Message()
        chunk = self.data[offset : offset + min(n, self.cap)]
        if chunk:
            msg.add_string(chunk)
        else:
            msg.add_int(SFTP_EOF)
            msg.add_string("End of file")
        msg.rewind()
        conn._async_response(CMD_DATA if chunk else CMD_STATUS, msg, num)


def test_reads_adapt_to_a_server_that_answers_less_per_request() -> None:
    data = os.urandom(700_000)
    conn = _Conn(transport=None, limit=10.0)  # type: ignore[arg-type]
    server = _CappedServer(data, cap=64 << 10)  # older OpenSSH serves 64 KiB per read
    conn.sftp = server  # type: ignore[assignment]
    assert conn.read(b"h", 0, None) == data
    assert conn.read_size == 64 << 10  # learnt from a short reply followed by more data
    server.asked.clear()
    assert conn.read(b"h", 1000, 300_000) == data[1000:301_000]
    assert max(server.asked) == 64 << 10
    assert conn.read(b"h", 690_000, 50_000) == data[690_000:]  # short: the caller says so
    assert conn.read(b"h", 800_000, None) == b""


# ---------------------------------------------------------------------- link faults


def test_reconnects_after_the_connection_is_reset(
    proxy: FaultProxy, sshd_server: SshdServer
) -> None:
    b = _through(proxy, sshd_server, f"reset-{os.getpid()}")
    b.put("one", b"1")
    dialled = proxy.accepted
    proxy.reset()
    outcomes: list[bytes | None] = []
    for _ in range(3):
        try:
            outcomes.append(b.get("one"))
        except TransientError as exc:
            assert "link lost" in str(exc)
            outcomes.append(None)
    assert outcomes[-1] == b"1"
    assert proxy.accepted > dialled  # on a new connection
    b.close()


def _cut_during(
    proxy: FaultProxy, op: Callable[[], object], after_bytes: int = 4 * _MIB
) -> tuple[Exception, float]:
    """Run ``op`` while the proxy goes silent once ``after_bytes`` more bytes passed."""
    start_bytes = proxy.forwarded
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            op()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    _wait_for(lambda: proxy.forwarded - start_bytes >= after_bytes or outcome)
    proxy.blackhole()
    cut = time.monotonic()
    worker.join(60)
    elapsed = time.monotonic() - cut
    assert outcome, "the operation hung"
    error = outcome[0]
    assert isinstance(error, Exception), "the operation finished before the cut"
    return error, elapsed


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_a_silent_cut_fails_with_link_lost(
    proxy: FaultProxy, sshd_server: SshdServer, direction: str
) -> None:
    b = _through(proxy, sshd_server, f"cut-{direction}-{os.getpid()}", link_timeout=3.0)
    data = os.urandom(64 * _MIB)
    if direction == "upload":
        error, elapsed = _cut_during(proxy, lambda: b.put("data/big", data))
    else:
        b.put("data/big", data)
        error, elapsed = _cut_during(proxy, lambda: b.get("data/big"))
    assert isinstance(error, TransientError), repr(error)
    assert "link lost" in str(error) and str(error).startswith("127.0.0.1:")
    assert 2.0 < elapsed < 3.0 * 1.5 + 2.5
    proxy.heal()
    b.put("after", b"ok")  # the next operation dials afresh
    assert b.get("after") == b"ok"
    b.close()


def test_a_silent_cut_with_default_options_fails_within_30_s(
    proxy: FaultProxy, sshd_server: SshdServer
) -> None:
    b = _through(proxy, sshd_server, f"cut-default-{os.getpid()}")
    data = os.urandom(64 * _MIB)
    error, elapsed = _cut_during(proxy, lambda: b.put("data/big", data))
    assert isinstance(error, TransientError) and "link lost" in str(error)
    assert elapsed < 30
    b.close()


def test_the_watchdog_ends_a_transfer_no_timeout_catches(
    proxy: FaultProxy, sshd_server: SshdServer
) -> None:
    b = _through(proxy, sshd_server, f"watchdog-{os.getpid()}", link_timeout=2.0)
    b.put("data/big", os.urandom(32 * _MIB))
    for conn in b._idle:  # as if paramiko waited somewhere without a timeout
        conn.sftp.get_channel().settimeout(None)
    error, elapsed = _cut_during(proxy, lambda: b.get("data/big"), after_bytes=2 * _MIB)
    assert isinstance(error, TransientError)
    assert "link lost (no progress for 3 s)" in str(error)
    assert elapsed < 2.0 * 1.5 + 2.5
    b.close()


def test_closed_backend_refuses_work(backend: SftpBackend) -> None:
    backend.put("x", b"1")
    backend.close()
    with pytest.raises(PermanentError, match="closed"):
        backend.get("x")
