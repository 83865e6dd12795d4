"""The link to the SFTP center goes silent (a proxy stops moving bytes in both directions and
closes nothing, as a cut fibre or a dropped route would) in the middle of a replication, of a
drill from that center and of a repair of it: each run fails with one clear error well within
30 s instead of hanging, nothing half-written becomes visible, and the next run completes, so
the copy restores byte-exact and passes a drill."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
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
      sftp.link-timeout: "3"
      sftp.connect-timeout: "3"
      retry-deadline: "5"
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


def assert_fails_fast(run: Callable[[], CliResult], proxy: FaultProxy, after: int) -> None:
    """Cut the link after ``after`` more bytes; the run fails within 30 s with one line."""
    proxy.blackhole_after(after)
    start = time.monotonic()
    cut = run()
    took = time.monotonic() - start
    proxy.heal()
    assert took < 30, f"took {took:.1f} s"
    assert cut.code == EXIT_BACKEND, cut
    assert "Traceback" not in cut.err
    assert "link lost" in cut.err
    errors = [line for line in cut.err.splitlines() if "error" in line]
    assert len(errors) == 1, cut.err  # one clear line for the one failed center


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
        assert_fails_fast(lambda: run("replicate", "--all"), proxy, 6 * MIB)
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

        # A drill from the remote center, cut while it restores; then one that passes.
        drill = ("drill", "--set", "ledger", "--from", "sg-sdv", "--target", tmp_path / "drills")
        assert_fails_fast(lambda: run(*drill), proxy, 4 * MIB)
        assert run(*drill).code == 0

        # The remote copy loses packs; a repair from production, cut while it writes them.
        remote = sshd_server.root / f"cut-{tmp_path.name}" / "ledger"
        lost = sorted(remote.glob("data/*/*"), key=lambda p: -p.stat().st_size)[:2]
        for pack in lost:
            pack.unlink()
        repair = ("repair", "--center", "sg-sdv", "--from", "sz-prod")
        assert_fails_fast(lambda: run(*repair), proxy, 2 * MIB)
        healed_copy = run(*repair)
        assert healed_copy.code == 0, healed_copy
        assert all(p.exists() for p in lost)
        assert run("scrub", "--center", "sg-sdv").code == 0
        assert run(*drill).code == 0
