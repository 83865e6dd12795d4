"""OpenSSH sshd on 127.0.0.1 for the SFTP transport, started by a session fixture.

The server runs as a child process with its own configuration, host key, client key and
``authorized_keys`` in a temporary directory; the bench (``bench/sftp.py``) starts one the same
way through :class:`SshdServer`.
"""

from __future__ import annotations

import getpass
import itertools
import os
import random
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
_CONFIG = """\
ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PidFile {pid_file}
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
LogLevel ERROR
Subsystem sftp internal-sftp
"""


class SshdError(RuntimeError):
    """sshd or ssh-keygen is missing, or the server did not come up."""


def _keygen(path: Path) -> None:
    if not shutil.which("ssh-keygen"):
        raise SshdError("ssh-keygen not found (install openssh-client)")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drvault-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _banner_up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


class SshdServer:
    """A private sshd serving ``root`` (a directory for repositories) over SFTP."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = workdir / "srv"
        self.host_key_path = workdir / "host_ed25519"
        self.key_path = workdir / "client_ed25519"
        self.known_hosts = workdir / "known_hosts"
        self.config = workdir / "sshd_config"
        self.log = workdir / "sshd.log"
        self.user = getpass.getuser()
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, subdir: str) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}{self.root}/{subdir}"

    def env(self, known_hosts: Path | None = None) -> dict[str, str]:
        """What a drvault process needs to reach this server: its key and a known_hosts file
        (this server's own, or ``known_hosts`` for another port such as a proxy's)."""
        return {
            "DRVAULT_SFTP_KEY": str(self.key_path),
            "DRVAULT_SFTP_KNOWN_HOSTS": str(known_hosts or self.known_hosts),
        }

    def host_key_line(self) -> str:
        """The server's public key as ``TYPE BASE64`` (the ``.pub`` file without comment)."""
        kind, blob, *_ = self.host_key_path.with_suffix(".pub").read_text().split()
        return f"{kind} {blob}"

    def start(self) -> None:
        if not os.path.exists(SSHD):
            raise SshdError(f"{SSHD} not found (install openssh-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        _keygen(self.host_key_path)
        _keygen(self.key_path)
        authorized = self.workdir / "authorized_keys"
        authorized.write_text(self.key_path.with_suffix(".pub").read_text())
        self.config.write_text(
            _CONFIG.format(
                host_key=self.host_key_path,
                authorized_keys=authorized,
                pid_file=self.workdir / "sshd.pid",
            )
        )
        os.makedirs("/run/sshd", exist_ok=True)
        for _ in range(20):
            port = random.randrange(20000, 32000)
            if _port_is_free(port) and self._launch(port):
                self.port = port
                self.known_hosts.write_text(f"[{self.host}]:{port} {self.host_key_line()}\n")
                return
        raise SshdError(f"sshd did not come up; log: {self.log.read_text(errors='replace')}")

    def _launch(self, port: int) -> bool:
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config), "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False  # port taken meanwhile, or a bad configuration
            if _banner_up(port):
                self._proc = proc
                return True
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        return False

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> SshdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """A running sshd; DRVAULT_SFTP_KEY and DRVAULT_SFTP_KNOWN_HOSTS point at its files."""
    server = SshdServer(tmp_path_factory.mktemp("sshd"))
    try:
        server.start()
    except (SshdError, subprocess.CalledProcessError) as exc:
        server.stop()
        pytest.fail(f"cannot start sshd for the SFTP tests: {exc}")
    env = server.env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_counter = itertools.count()


@pytest.fixture
def sftp_url(sshd_server: SshdServer) -> str:
    """The URL of a fresh, not yet created repository directory on the test sshd."""
    return sshd_server.url(f"repo-{next(_counter)}-{secrets.token_hex(4)}")
