"""Shared fixtures: a password, cheap-KDF repositories, and the CLI run in a subprocess.

Cheap scrypt settings are passed explicitly (``KdfParams(n=1024)`` / ``--kdf n=1024``) so no
global switch exists that production could inherit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from drvault.repository.config import ChunkerSettings
from drvault.repository.keys import KdfParams
from drvault.repository.repository import Repository
from drvault.repository.suite import Suite
from drvault.transport import Backend, LocalBackend
from tests.sites import PASSWORD, SITES, Site, make_site

pytest_plugins = ["tests.servers.s3_server", "tests.servers.sshd_server"]

CHEAP_KDF = KdfParams(n=1024, r=8, p=1)
CHEAP_KDF_OPTION = "n=1024"
# Small chunks and packs make small trees span many chunks and packs.
SMALL_CHUNKS = ChunkerSettings(min_size=1024, avg_size=4096, max_size=16384)


class CliResult(NamedTuple):
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


RunCli = Callable[..., CliResult]
MakeRepo = Callable[..., Repository]


def uncached(path: Path) -> Path:
    """``path`` with its pages written out and dropped from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--site",
        choices=SITES,
        default=os.environ.get("DRVAULT_TEST_SITE", "local"),
        help="Where the foundation tests keep their repositories (env DRVAULT_TEST_SITE).",
    )


def _site(request: pytest.FixtureRequest, directory: Path) -> Site:
    kind: str = request.config.getoption("--site")
    server = None
    if kind == "s3":
        server = request.getfixturevalue("s3_server")
    elif kind == "sftp":
        server = request.getfixturevalue("sshd_server")
    return make_site(kind, directory, server)


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """This test's repositories, on the backend chosen with ``--site``."""
    s = _site(request, tmp_path)
    yield s
    s.close()


@pytest.fixture(scope="module")
def module_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """Repositories shared by a module's tests, on the backend chosen with ``--site``."""
    s = _site(request, tmp_path_factory.mktemp("site"))
    yield s
    s.close()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_bytes(PASSWORD + b"\n")
    return path


def open_repo(path: Path | str, password: bytes = PASSWORD) -> Repository:
    return Repository.open(LocalBackend(path), password)


def new_repo(
    backend: Backend,
    *,
    suite: str = "intl",
    cipher: str | None = None,
    id_hash: str | None = None,
    chunker: ChunkerSettings | None = None,
    pack_size: int = 32 << 20,
    password: bytes = PASSWORD,
) -> Repository:
    """A repository on ``backend`` with the cheap KDF (never a global switch)."""
    return Repository.init(
        backend,
        password,
        suite=Suite.choose(suite, cipher, id_hash),
        chunker=chunker,
        kdf=CHEAP_KDF,
        pack_size=pack_size,
    )


@pytest.fixture
def make_repo(site: Site) -> MakeRepo:
    """Create a repository on the test's site: ``make_repo(name="repo", suite="intl", ...)``."""

    def make(
        name: str = "repo",
        *,
        suite: str = "intl",
        cipher: str | None = None,
        id_hash: str | None = None,
        chunker: ChunkerSettings | None = None,
        pack_size: int = 32 << 20,
        password: bytes = PASSWORD,
    ) -> Repository:
        return new_repo(
            site.backend(name),
            suite=suite,
            cipher=cipher,
            id_hash=id_hash,
            chunker=chunker,
            pack_size=pack_size,
            password=password,
        )

    return make


@pytest.fixture
def repo(make_repo: MakeRepo) -> Repository:
    return make_repo()


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRVAULT_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_drvault(
    *args: str | os.PathLike[str],
    cwd: Path,
    password_file: Path | None,
    env: dict[str, str] | None = None,
    code: str | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run ``python -m drvault ARGS`` (or ``python -c CODE ARGS``) in a subprocess.

    The environment is this process's without any DRVAULT_* variable, plus
    DRVAULT_PASSWORD_FILE when ``password_file`` is given, plus ``env``.
    """
    full_env = _clean_env()
    if password_file is not None:
        full_env["DRVAULT_PASSWORD_FILE"] = str(password_file)
    full_env.update(env or {})
    head = [sys.executable, "-c", code] if code else [sys.executable, "-m", "drvault"]
    proc = subprocess.run(
        [*head, *map(os.fspath, args)],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    return CliResult(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


@pytest.fixture
def run_cli(tmp_path: Path, password_file: Path, site: Site) -> RunCli:
    """``run_cli(*args, env=..., password_file=None, code=...)`` -> (exit code, stdout, stderr).

    Runs in tmp_path with DRVAULT_PASSWORD_FILE set to the test's password file unless
    ``password_file=None`` is passed, and with what the site's backend needs (SFTP key and
    known_hosts) in the environment.
    """

    def run(
        *args: str | os.PathLike[str],
        password_file: Path | None = password_file,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> CliResult:
        full_env = {**site.env, **(env or {})}
        return run_drvault(*args, cwd=tmp_path, password_file=password_file, env=full_env, **kwargs)

    return run


def assert_one_error_line(result: CliResult, code: int, *needles: str) -> str:
    """The documented failure shape: exit ``code``, one ``drvault: error:`` line, no traceback."""
    assert result.code == code, result
    assert "Traceback" not in result.err and "Traceback" not in result.out
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("drvault: error: "), result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
