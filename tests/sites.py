"""Where a test's repositories live: local disk, S3 (moto server) or SFTP (sshd).

``pytest --site=s3`` (or ``DRVAULT_TEST_SITE=s3``) runs the foundation tests with every
repository on that backend; the default is local disk. Tests address repositories by name
through a ``Site``: its URL for the CLI, a raw backend for the library, and byte-level
tampering (flip, truncate, delete) through the backend itself, so the same corruption tests
run against every backend.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from drvault.repository.repository import Repository
from drvault.transport import Backend, LocalBackend, open_backend
from drvault.transport.options import S3Options, SftpOptions, TransportOptions

if TYPE_CHECKING:  # imported at run time by pytest as plugins, not here
    from tests.servers.s3_server import MotoServer
    from tests.servers.sshd_server import SshdServer

SITES = ("local", "s3", "sftp")
PASSWORD = b"correct horse battery staple"
_serial = itertools.count()


@dataclass
class Site:
    """Repositories of one test (or one module), addressed by name."""

    kind: str
    base: str  # local: a directory; s3: a bucket URL without prefix; sftp: a directory URL
    env: dict[str, str] = field(default_factory=dict)  # for CLI subprocesses
    options: TransportOptions = field(default_factory=TransportOptions)
    _backends: dict[str, Backend] = field(default_factory=dict)

    def url(self, name: str = "repo") -> str:
        if self.kind == "local":
            return str(Path(self.base) / name)
        return f"{self.base.rstrip('/')}/{name}"

    def backend(self, name: str = "repo") -> Backend:
        """The raw backend of repository ``name`` (one per name, shared, closed at the end)."""
        if name not in self._backends:
            if self.kind == "local":
                self._backends[name] = LocalBackend(Path(self.base) / name)
            else:
                self._backends[name] = open_backend(self.url(name), self.options)
        return self._backends[name]

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()

    def open(self, name: str = "repo", password: bytes | None = None) -> Repository:
        return Repository.open(self.backend(name), password or PASSWORD)

    def exists(self, name: str = "repo") -> bool:
        """Whether anything of repository ``name`` is there: its directory (local, SFTP) or
        any object under its prefix (S3 has no directories; the bucket always exists)."""
        backend = self.backend(name)
        if self.kind == "s3":
            return any(True for _ in backend.list(""))
        return backend.exists()

    # ------------------------------------------------------------------ tampering

    def objects(self, name: str = "repo", prefix: str = "") -> list[str]:
        return sorted(info.name for info in self.backend(name).list(prefix))

    def size(self, obj: str, name: str = "repo") -> int:
        return self.backend(name).stat(obj).size

    def read(self, obj: str, name: str = "repo") -> bytes:
        return self.backend(name).get(obj)

    def write(self, obj: str, data: bytes, name: str = "repo") -> None:
        self.backend(name).put(obj, data)

    def remove(self, obj: str, name: str = "repo") -> None:
        self.backend(name).delete(obj)

    def flip(self, obj: str, position: int, mask: int = 0x01, name: str = "repo") -> bytes:
        """XOR one byte of a stored object; returns the original bytes (put them back with
        ``write``)."""
        original = self.read(obj, name)
        changed = bytearray(original)
        changed[position] ^= mask
        self.write(obj, bytes(changed), name)
        return original

    def truncate(self, obj: str, size: int, name: str = "repo") -> bytes:
        original = self.read(obj, name)
        self.write(obj, original[:size], name)
        return original


def make_site(kind: str, directory: Path, server: MotoServer | SshdServer | None) -> Site:
    """A fresh, empty site: ``directory`` for local disk, else a new bucket or directory on
    the server fixture passed as ``server``."""
    if kind == "local":
        return Site("local", str(directory))
    if kind == "s3":
        moto = cast("MotoServer", server)
        url = moto.url(moto.new_bucket(), "")
        return Site("s3", url.rstrip("/"), options=TransportOptions(s3=S3Options()))
    if kind == "sftp":
        sshd = cast("SshdServer", server)
        url = sshd.url(f"site-{next(_serial)}-{directory.name}")
        env = sshd.env()
        sftp = SftpOptions(known_hosts=env["DRVAULT_SFTP_KNOWN_HOSTS"], key=env["DRVAULT_SFTP_KEY"])
        options = TransportOptions(sftp=sftp)
        return Site("sftp", url, env=env, options=options)
    raise ValueError(f"unknown site {kind!r} (known: {', '.join(SITES)})")
