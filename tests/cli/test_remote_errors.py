"""Remote repositories that cannot be reached or read: one error line, exit 15, no traceback."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from conftest import CHEAP_KDF_OPTION, RunCli, assert_one_error_line

from drvault.errors import EXIT_BACKEND
from tests.servers.proxy import FaultProxy
from tests.servers.sshd_server import SshdServer

FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "fake", "AWS_SECRET_ACCESS_KEY": "fake"}


def test_unreachable_s3_center_is_one_line(run_cli: RunCli) -> None:
    for args in (
        ["snapshots", "s3:http://127.0.0.1:9/bucket/repo"],
        ["init", "s3:http://127.0.0.1:9/bucket/repo", "--kdf", CHEAP_KDF_OPTION],
    ):
        result = run_cli("-o", "retry-deadline=1", *args, env=FAKE_KEYS)
        assert_one_error_line(result, EXIT_BACKEND, "127.0.0.1:9")


def test_s3_without_credentials_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    result = run_cli("snapshots", "s3:http://127.0.0.1:9/bucket/repo", env=env)
    assert_one_error_line(result, EXIT_BACKEND, "no S3 credentials")


def test_unreachable_sftp_center_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("-o", "retry-deadline=1", "snapshots", "sftp://root@127.0.0.1:9/srv/repo")
    assert_one_error_line(result, EXIT_BACKEND, "127.0.0.1:9")


def test_retries_are_reported_after_success(run_cli: RunCli, s3_url: str) -> None:
    # Nothing fails here, so nothing is reported: the note appears only after retries.
    result = run_cli("init", s3_url, "--kdf", CHEAP_KDF_OPTION)
    assert result.code == 0, result
    assert "note: storage" not in result.err


def _through_proxy(
    proxy: FaultProxy, sshd: SshdServer, tmp_path: Path
) -> tuple[str, dict[str, str], list[str]]:
    """A repository URL through ``proxy``, the env naming a known_hosts for the proxy's port,
    and options that make a dead link fail fast (a few seconds, not the 15 s default)."""
    known = tmp_path / "known_hosts_proxy"
    known.write_text(f"[127.0.0.1]:{proxy.port} {sshd.host_key_line()}\n")
    url = f"sftp://{sshd.user}@127.0.0.1:{proxy.port}{sshd.root}/cut-{tmp_path.name}"
    env = sshd.env(known)
    fast = ["-o", "sftp.link-timeout=3", "-o", "sftp.connect-timeout=3", "-o", "retry-deadline=4"]
    return url, env, fast


def test_a_silent_link_cut_fails_backup_and_restore_with_link_lost(
    run_cli: RunCli, sshd_server: SshdServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(48 << 20))
    with FaultProxy(sshd_server.port) as proxy:
        url, env, fast = _through_proxy(proxy, sshd_server, tmp_path)
        assert run_cli(*fast, "init", url, "--kdf", CHEAP_KDF_OPTION, env=env).code == 0
        proxy.blackhole_after(8 << 20)
        start = time.monotonic()
        result = run_cli(*fast, "backup", url, src, env=env)
        assert time.monotonic() - start < 30
        assert_one_error_line(result, EXIT_BACKEND, "link lost")

        proxy.heal()
        assert run_cli(*fast, "backup", url, src, env=env).code == 0  # nothing was lost
        proxy.blackhole_after(8 << 20)
        start = time.monotonic()
        result = run_cli(*fast, "restore", url, "latest", "--target", tmp_path / "out", env=env)
        assert time.monotonic() - start < 30
        assert_one_error_line(result, EXIT_BACKEND, "link lost")


def test_dropped_connections_are_retried_and_reported(
    run_cli: RunCli, sshd_server: SshdServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(40 << 20)
    (src / "big.bin").write_bytes(payload)
    with FaultProxy(sshd_server.port) as proxy:
        url, env, _fast = _through_proxy(proxy, sshd_server, tmp_path)
        assert run_cli("init", url, "--kdf", CHEAP_KDF_OPTION, env=env).code == 0
        start = proxy.forwarded

        def reset_twice() -> None:
            for step in (1, 2):
                while proxy.forwarded - start < step * (12 << 20):
                    time.sleep(0.005)
                proxy.reset()  # an RST mid-upload: the connection drops

        threading.Thread(target=reset_twice, daemon=True).start()
        result = run_cli("backup", url, src, env=env)
        assert result.code == 0, result
        assert "note: storage:" in result.err and "retries" in result.err, result.err
        restored = run_cli("restore", url, "latest", "--target", tmp_path / "out", env=env)
        assert restored.code == 0, restored
    assert (tmp_path / "out" / src.relative_to("/") / "big.bin").read_bytes() == payload
