"""Three centers end to end through the CLI, with real servers: production on local disk, the
same-city center on S3 (moto server), the remote center on SFTP (sshd). Back up, replicate,
restore from every center, and watch ``status`` follow the copies' age."""

from __future__ import annotations

import json
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CHEAP_KDF_OPTION, PASSWORD, CliResult, assert_one_error_line, run_drvault
from trees import assert_same_tree

from drvault.transport import LocalBackend
from tests.servers.s3_server import MotoServer
from tests.servers.sshd_server import SshdServer

MIB = 1 << 20


@dataclass
class Centers:
    root: Path
    config: Path
    data: Path
    env: dict[str, str]
    password_file: Path

    def run(self, *args: str | os.PathLike[str], timeout: float = 180) -> CliResult:
        return run_drvault(
            "--config", self.config, *args, cwd=self.root, password_file=None, env=self.env,
            timeout=timeout,
        )  # fmt: skip

    @property
    def prod(self) -> LocalBackend:
        return LocalBackend(self.root / "prod" / "ledger")


CONFIG = """\
version: 1
state_dir: {root}/state
metrics_file: {root}/state/drvault.prom
profile: {{sector: bank, bank_tier: other}}
centers:
  gz-prod:
    role: production
    site: {{city: Guangzhou, province: Guangdong, lat: 23.13, lon: 113.26}}
    url: {root}/prod
  gz-dr2:
    role: same_city_dr
    site: {{city: Guangzhou, province: Guangdong}}
    distance_km: 35
    url: {s3}
  zixing-djh:
    role: remote_dr
    site: {{city: Zixing, province: Hunan, lat: 25.97, lon: 113.40}}
    url: {sftp}
    options: {{sftp.key: "{key}", sftp.known-hosts: "{known_hosts}"}}
backup_sets:
  ledger:
    paths: [{root}/data]
    classification: important
    rpo: 1h
    rto: 4h
    password_file: {root}/password
    repository: {{chunk_avg: 16K, pack_size: 1M}}
    copies:
      gz-dr2: {{rpo: 1h}}
      zixing-djh: {{rpo: 2h}}
"""


def write_data(root: Path, seed: int, size: int = 3 * MIB) -> None:
    rnd = random.Random(seed)
    (root / "db").mkdir(parents=True, exist_ok=True)
    rows = "".join(
        f"INSERT INTO ledger VALUES ({i}, {rnd.randrange(10**9)});\n" for i in range(40000)
    )
    (root / "db" / "ledger.sql").write_text(rows)
    (root / "db" / "blob.bin").write_bytes(rnd.randbytes(size))
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "报告.txt").write_text("季度报告\n" * 500)


@pytest.fixture
def centers(tmp_path: Path, s3_server: MotoServer, sshd_server: SshdServer) -> Centers:
    return make_centers(tmp_path, s3_server, sshd_server)


def make_centers(tmp_path: Path, s3_server: MotoServer, sshd_server: SshdServer) -> Centers:
    """Production on local disk, same-city on the moto server, remote on sshd; set initialised."""
    env = sshd_server.env()
    config = tmp_path / "drvault.yaml"
    config.write_text(
        CONFIG.format(
            root=tmp_path,
            s3=s3_server.url(s3_server.new_bucket(), "dr"),
            sftp=sshd_server.url(f"remote-{tmp_path.name}"),
            key=env["DRVAULT_SFTP_KEY"],
            known_hosts=env["DRVAULT_SFTP_KNOWN_HOSTS"],
        )
    )
    (tmp_path / "password").write_bytes(PASSWORD + b"\n")
    write_data(tmp_path / "data", seed=1)
    c = Centers(tmp_path, config, tmp_path / "data", {}, tmp_path / "password")
    assert c.run("init", "--set", "ledger", "--kdf", CHEAP_KDF_OPTION).code == 0
    return c


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, result
    assert "Traceback" not in result.err
    return result


def pack_sizes(backend: LocalBackend) -> dict[str, int]:
    return {i.name: i.size for p in ("data/", "tree/") for i in backend.list(p)}


def test_backup_replicate_restore_from_every_center(centers: Centers) -> None:
    ok(centers.run("backup", "--set", "ledger"))
    summary = ok(centers.run("--json", "replicate", "--all")).json()
    assert summary["ok"]
    for center in ("gz-dr2", "zixing-djh"):
        assert summary["sets"]["ledger"][center]["bytes_transferred"] > 3 * MIB
    for center in ("gz-prod", "gz-dr2", "zixing-djh"):
        out = centers.root / f"restore-{center}"
        ok(centers.run("restore", "--set", "ledger", "--from", center, "latest", "--target", out))
        assert_same_tree(bytes(centers.data), bytes(out / str(centers.data).lstrip("/")))
        ok(centers.run("check", "--set", "ledger", "--from", center, "--read-data"))
    status = ok(centers.run("--json", "status")).json()
    assert status["compliant"], status
    prom = (centers.root / "state" / "drvault.prom").read_text()
    assert 'drvault_replication_bytes_total{set="ledger",center="zixing-djh"}' in prom
    assert 'drvault_compliance_ok{set="ledger"} 1' in prom


def test_second_day_sends_only_new_packs_and_a_rerun_sends_nothing(centers: Centers) -> None:
    ok(centers.run("backup", "--set", "ledger"))
    ok(centers.run("replicate", "--all"))
    before = pack_sizes(centers.prod)
    with open(centers.data / "db" / "ledger.sql", "a") as f:
        f.write("".join(f"INSERT INTO ledger VALUES ({i}, 7);\n" for i in range(40000, 45000)))
    (centers.data / "db" / "new.bin").write_bytes(random.Random(2).randbytes(2 * MIB))
    ok(centers.run("backup", "--set", "ledger"))
    new_packs = sum(s for n, s in pack_sizes(centers.prod).items() if n not in before)
    assert new_packs > 2 * MIB
    day2 = ok(centers.run("--json", "replicate", "--all")).json()
    for center in ("gz-dr2", "zixing-djh"):
        sent = day2["sets"]["ledger"][center]["bytes_transferred"]
        assert new_packs <= sent <= 1.1 * new_packs, (center, sent, new_packs)
    again = ok(centers.run("--json", "replicate", "--all")).json()
    assert again["bytes_transferred"] == 0
    assert all(t["bytes_transferred"] == 0 for t in again["sets"]["ledger"].values())


def test_status_follows_the_age_of_each_copy(centers: Centers) -> None:
    three_hours_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 3600))
    ok(centers.run("backup", "--set", "ledger", "--time", three_hours_ago))
    ok(centers.run("replicate", "--all"))
    stale = centers.run("--json", "status")
    assert stale.code == 4, stale
    rpo = {c["center"]: c["verdict"] for c in stale.json()["sets"][0]["checks"] if c["id"] == "rpo"}
    assert rpo == {"gz-prod": "fail", "gz-dr2": "fail", "zixing-djh": "fail"}
    (centers.data / "db" / "today.sql").write_text("INSERT INTO ledger VALUES (1, 2);\n")
    ok(centers.run("backup", "--set", "ledger"))
    ok(centers.run("replicate", "--all", "--to", "gz-dr2"))
    partial = centers.run("--json", "status")
    assert partial.code == 4
    rpo = {
        c["center"]: c["verdict"] for c in partial.json()["sets"][0]["checks"] if c["id"] == "rpo"
    }
    assert rpo == {"gz-prod": "pass", "gz-dr2": "pass", "zixing-djh": "fail"}
    ok(centers.run("replicate", "--set", "ledger", "--to", "zixing-djh"))
    assert ok(centers.run("status")).code == 0
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3 * 3600))
    judged_later = centers.run("status", "--at", later)
    assert judged_later.code == 4 and "FAIL" in judged_later.out


def test_replication_needs_no_password(centers: Centers) -> None:
    """A replicator at a DR center can pull without the key: no password file, no terminal."""
    ok(centers.run("backup", "--set", "ledger"))
    centers.password_file.unlink()
    summary = ok(centers.run("--json", "replicate", "--all")).json()
    assert all(t["snapshots_sent"] == 1 for t in summary["sets"]["ledger"].values())
    assert centers.run("snapshots", "--set", "ledger", "--from", "zixing-djh").code != 0
    centers.password_file.write_bytes(PASSWORD + b"\n")
    listed = ok(centers.run("--json", "snapshots", "--set", "ledger", "--from", "zixing-djh"))
    assert len(listed.json()) == 1


def test_overlapping_runs_do_not_collide(centers: Centers) -> None:
    from drvault.runlock import RunLock

    ok(centers.run("backup", "--set", "ledger"))
    with RunLock(centers.root / "state", "replicate--ledger--zixing-djh"):
        result = centers.run("--json", "replicate", "--all")
    assert result.code == 12, result
    doc = result.json()
    assert doc["sets"]["ledger"]["gz-dr2"]["ok"]
    assert "already running" in doc["sets"]["ledger"]["zixing-djh"]["error"]
    ok(centers.run("replicate", "--all"))


def test_unreachable_center_fails_alone_with_one_line(centers: Centers) -> None:
    text = centers.config.read_text()
    dead = re.sub(r"(sftp://[^@/]+@127\.0\.0\.1):\d+", r"\1:1", text)
    assert dead != text
    centers.config.write_text(dead)
    ok(centers.run("backup", "--set", "ledger"))
    result = centers.run("--json", "-o", "retry-deadline=2", "replicate", "--all")
    assert result.code == 15, result
    assert "Traceback" not in result.err
    doc = result.json()["sets"]["ledger"]
    assert doc["gz-dr2"]["ok"] and not doc["zixing-djh"]["ok"]
    assert any("zixing-djh: FAILED" in line for line in result.err.splitlines())


def test_malformed_config_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("version: 1\ncenters:\n  a:\n    rol: production\n")
    result = run_drvault("--config", config, "policy", "check", cwd=tmp_path, password_file=None)
    assert_one_error_line(result, 2, f"{config}:4", "rol")


@pytest.mark.parametrize("name", ["drvault.example.yaml", "demo.yaml"])
def test_shipped_configs_pass_policy_check(name: str, tmp_path: Path) -> None:
    config = Path(__file__).parents[2] / "configs" / name
    result = run_drvault("--json", "--config", config, "policy", "check", cwd=tmp_path,
                         password_file=None)  # fmt: skip
    doc = json.loads(result.out)
    assert result.code in (0, 4), result
    assert {s["set"] for s in doc["sets"]}
