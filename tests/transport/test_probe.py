"""``transport check``: the contract run against a live target, passing and failing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunCli

from drvault.transport import Backend, LocalBackend
from drvault.transport.probe import probe
from drvault.transport.stack import Wrapper
from tests.servers.sshd_server import SshdServer

STEPS = [
    "reach",
    "put/get",
    "ranged get",
    "not found",
    "atomic create",
    "upload",
    "list",
    "download",
    "delete",
]


def test_probe_passes_on_local_disk_and_leaves_nothing(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "target")
    report = probe(backend, size=1 << 20)
    assert report.ok, report.steps
    assert [s.name for s in report.steps] == STEPS
    assert report.upload_mb_s and report.upload_mb_s > 0
    assert report.download_mb_s and report.download_mb_s > 0
    assert list(backend.list("")) == []


class _NoExclusive(Wrapper):
    """A store whose conditional put silently overwrites (a broken S3 look-alike)."""

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        self.inner.put(name, data, storage_class=storage_class)


class _SloppyRanges(Wrapper):
    """A store that pads short ranged reads instead of failing them."""

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(name, offset, None)
        return data if length is None else data[:length].ljust(length, b"\0")


@pytest.mark.parametrize(
    ("broken", "step"), [(_NoExclusive, "atomic create"), (_SloppyRanges, "ranged get")]
)
def test_probe_names_the_broken_promise(tmp_path: Path, broken: type[Wrapper], step: str) -> None:
    backend: Backend = broken(LocalBackend(tmp_path / "target"))
    report = probe(backend, size=1 << 20)
    assert not report.ok
    failed = [s.name for s in report.steps if not s.ok]
    assert failed == [step]
    assert list(backend.list("")) == []  # cleaned up all the same


def test_cli_transport_check_on_s3(run_cli: RunCli, s3_url: str) -> None:
    human = run_cli("transport", "check", s3_url, "--size", "2M")
    assert human.code == 0, human
    assert "contract kept" in human.out
    doc = run_cli("--json", "transport", "check", s3_url, "--size", "2M").json()
    assert doc["ok"] is True
    assert [s["name"] for s in doc["steps"]] == STEPS
    assert doc["upload_mb_s"] > 0 and doc["download_mb_s"] > 0


def test_cli_transport_check_on_sftp(
    run_cli: RunCli, sftp_url: str, sshd_server: SshdServer
) -> None:
    result = run_cli(
        "--json", "transport", "check", sftp_url, "--size", "2M", env=sshd_server.env()
    )
    assert result.code == 0, result
    assert result.json()["ok"] is True


def test_cli_transport_check_of_an_unreachable_store_fails(run_cli: RunCli) -> None:
    result = run_cli("-o", "retry-deadline=1", "transport", "check", "s3:http://127.0.0.1:9/bucket")
    assert result.code == 15, result
    assert "FAIL reach" in result.out
    assert "Traceback" not in result.err + result.out
