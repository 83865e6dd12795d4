"""The link to the SFTP center goes silent in the middle of a replication (a proxy stops moving
bytes in both directions and closes nothing, as a cut fibre or a dropped route would): the run
fails with one clear error well within 30 s instead of hanging, nothing half-written becomes
visible, and the next run completes the copy, which restores byte-exact."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from conftest import CHEAP_KDF_OPTION, PASSWORD, CliResult, run_drvault
from trees import assert_same_tree

from drvault.errors import EXIT_BACKEND
from tests.servers.proxy import FaultProxy
from tests.servers.sshd_server import SshdServer

MIB = 1 << 20

CONFIG = """\
version: 1
state_dir: {root}/state
centers:
  sz-prod:
    role: production
    site: {{city: Shenzhen, province: Guangdong}}
    url: {root}/prod
  sg-sdv:
    role: remote_dr
    site: {{city: Shaoguan, province: Guangdong}}
    url: {sftp}
    options:
      sftp.key: "{key}"
      sftp.known-hosts: "{known_hosts}"
      sftp.link-timeout: "5"
      sftp.connect-timeout: "5"
      retry-deadline: "8"
backup_sets:
  ledger:
    paths: [{root}/data]
    classification: general
    rpo: 1h
    rto: 4h
    password_file: {root}/password
    copies:
      sg-sdv: {{rpo: 2h}}
"""


def cut_after(proxy: FaultProxy, moved: int) -> threading.Thread:
    """Go silent once ``moved`` more bytes passed the proxy."""
    start = proxy.forwarded

    def watch() -> None:
        deadline = time.monotonic() + 60
        while proxy.forwarded - start < moved and time.monotonic() < deadline:
            time.sleep(0.005)
        proxy.blackhole()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_silent_cut_mid_replication_fails_fast_and_the_next_run_completes(
    sshd_server: SshdServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dump.bin").write_bytes(os.urandom(24 * MIB))
    (data / "small.txt").write_text("账户 ledger\n" * 1000)
    (tmp_path / "password").write_bytes(PASSWORD + b"\n")
    with FaultProxy(sshd_server.port) as proxy:
        known = tmp_path / "known_hosts_proxy"
        known.write_text(f"[127.0.0.1]:{proxy.port} {sshd_server.host_key_line()}\n")
        url = f"sftp://{sshd_server.user}@127.0.0.1:{proxy.port}{sshd_server.root}/cut-{tmp_path.name}"
        config = tmp_path / "drvault.yaml"
        config.write_text(
            CONFIG.format(
                root=tmp_path,
                sftp=url,
                key=sshd_server.env()["DRVAULT_SFTP_KEY"],
                known_hosts=known,
            )
        )

        def run(*args: str | os.PathLike[str]) -> CliResult:
            return run_drvault("--config", config, *args, cwd=tmp_path, password_file=None)

        assert run("init", "--set", "ledger", "--kdf", CHEAP_KDF_OPTION).code == 0
        assert run("backup", "--set", "ledger").code == 0
        cut_after(proxy, 6 * MIB)
        start = time.monotonic()
        cut = run("replicate", "--all")
        took = time.monotonic() - start
        assert took < 30, f"took {took:.1f} s"
        assert cut.code == EXIT_BACKEND, cut
        assert "Traceback" not in cut.err
        assert "link lost" in cut.err
        errors = [line for line in cut.err.splitlines() if "error" in line]
        assert len(errors) == 1, cut.err  # one clear line for the one failed center

        proxy.heal()
        healed = run("--json", "replicate", "--all")
        assert healed.code == 0, healed
        assert healed.json()["ok"]
        out = tmp_path / "restored"
        assert (
            run("restore", "--set", "ledger", "--from", "sg-sdv", "latest", "--target", out).code
            == 0
        )
        assert_same_tree(os.fsencode(data), os.fsencode(out / str(data).lstrip("/")))
        assert run("check", "--set", "ledger", "--from", "sg-sdv", "--read-data").code == 0
