"""``drvault drill`` and ``drvault report`` end to end through the CLI, with real servers:
production on local disk, the same-city center on S3 (moto server), the remote center on SFTP
(sshd). A drill from each center restores the same data and is recorded there; a drill over
its RTO, or from a center with a corrupt pack, fails and is recorded; ``status`` follows the
drill's age; ``report`` gathers every drill and each center's replication lag."""

from __future__ import annotations

import json
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CHEAP_KDF_OPTION, PASSWORD, CliResult, assert_one_error_line, run_drvault
from trees import assert_same_tree

from drvault import errors
from drvault.centers import open_center
from drvault.drillrecord import FIELDS, read_drills
from drvault.policy.load import load_config
from drvault.repository.repository import Repository
from drvault.transport import LocalBackend
from drvault.transport.options import TransportOptions
from tests.servers.s3_server import MotoServer
from tests.servers.sshd_server import SshdServer

KIB = 1 << 10
SET = "ledger"
CENTERS = ("gz-prod", "gz-dr2", "zixing-djh")
ROLES = {"gz-prod": "production", "gz-dr2": "same-city", "zixing-djh": "remote"}

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
    storage: {{ladder: [{{after: 0s, to: GLACIER}}]}}
  zixing-djh:
    role: remote_dr
    site: {{city: Zixing, province: Hunan, lat: 25.97, lon: 113.40}}
    url: {sftp}
    options: {{sftp.key: "{key}", sftp.known-hosts: "{known_hosts}"}}
  elsewhere:
    role: archive_vault
    site: {{city: Guiyang, province: Guizhou}}
    distance_km: 775
    url: {root}/elsewhere
backup_sets:
  {set}:
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


@dataclass
class Centers:
    root: Path
    config: Path
    data: Path

    def run(self, *args: str | os.PathLike[str], **kw: Any) -> CliResult:
        return run_drvault(
            "--config", self.config, *args, cwd=self.root, password_file=None, timeout=180, **kw
        )

    def drills_at(self, center: str) -> list[dict[str, Any]]:
        """The drill records stored at the center, read with the library."""
        config = load_config(str(self.config))
        backend = open_center(config.center(center), SET, TransportOptions())
        try:
            return read_drills(Repository.open(backend, PASSWORD, load_index=False))
        finally:
            backend.close()


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, result
    assert "Traceback" not in result.err
    return result


@pytest.fixture
def centers(tmp_path: Path, s3_server: MotoServer, sshd_server: SshdServer) -> Centers:
    env = sshd_server.env()
    config = tmp_path / "drvault.yaml"
    config.write_text(
        CONFIG.format(
            root=tmp_path,
            set=SET,
            s3=s3_server.url(s3_server.new_bucket(), "dr"),
            sftp=sshd_server.url(f"drill-{tmp_path.name}"),
            key=env["DRVAULT_SFTP_KEY"],
            known_hosts=env["DRVAULT_SFTP_KNOWN_HOSTS"],
        )
    )
    (tmp_path / "password").write_bytes(PASSWORD + b"\n")
    data = tmp_path / "data"
    rnd = random.Random(3)
    (data / "db").mkdir(parents=True)
    (data / "db" / "blob.bin").write_bytes(rnd.randbytes(1500 * KIB))
    (data / "db" / "ledger.sql").write_text("".join(f"INSERT {i};\n" for i in range(8000)))
    (data / "docs").mkdir()
    (data / "docs" / "报告.txt").write_text("季度报告\n" * 200)
    c = Centers(tmp_path, config, data)
    ok(c.run("init", "--set", SET, "--kdf", CHEAP_KDF_OPTION))
    ok(c.run("backup", "--set", SET))
    ok(c.run("replicate", "--all"))
    return c


def drill_check(status: CliResult) -> dict[str, Any]:
    [check] = [c for c in status.json()["sets"][0]["checks"] if c["id"] == "drill"]
    return check  # type: ignore[no-any-return]


def test_a_drill_from_every_center_passes_is_recorded_there_and_reported(
    centers: Centers,
) -> None:
    before = ok(centers.run("--json", "status"))
    assert drill_check(before)["verdict"] == "warn"  # important data: a prompt to drill
    ok(centers.run("tier", "--center", "gz-dr2"))  # the same-city copy's data goes cold
    reports = centers.root / "reports"
    records = {}
    for center in CENTERS:
        scratch = centers.root / f"scratch-{center}"
        result = ok(
            centers.run(
                "--json", "drill", "--set", SET, "--from", center, "--thaw-poll", "1s",
                "--target", scratch, "--keep", "--report", reports,
            )
        )  # fmt: skip
        record = result.json()
        assert set(record) == FIELDS
        assert record["passed"] and record["reasons"] == []
        assert (record["set"], record["center"]) == (SET, center)
        assert record["center_role"] == ROLES[center] and record["rto_seconds"] == 4 * 3600
        assert record["files"] == record["verified_files"] == 3
        assert record["mismatched_files"] == 0 and not record["scratch"]
        restored = Path(record["target"])
        assert restored.parent == scratch
        assert_same_tree(bytes(centers.data), bytes(restored / str(centers.data).lstrip("/")))
        assert centers.drills_at(center) == [record]
        records[center] = record
    # Only the cold center waited for a thaw (one poll), and its total counts the wait.
    thawed = records["gz-dr2"]
    assert thawed["thaw_seconds"] >= 1.0 > records["gz-prod"]["thaw_seconds"]
    assert thawed["total_seconds"] >= thawed["thaw_seconds"] + thawed["restore_seconds"]
    assert thawed["ttfb_seconds"] >= thawed["thaw_seconds"]
    # The same snapshot came back from all three.
    assert len({r["snapshot"] for r in records.values()}) == 1
    written = sorted(p.name for p in reports.iterdir())
    assert len(written) == 6
    for center, record in records.items():
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(record["finished"]))
        base = reports / f"drill-{SET}-{center}-{stamp}"
        assert json.loads(base.with_suffix(".json").read_text()) == record
        page = base.with_suffix(".html").read_text()
        assert page.startswith("<!DOCTYPE html>") and record["snapshot"][:8] in page
    # status sees them: the drill check passes and names a center.
    after = ok(centers.run("--json", "status"))
    check = drill_check(after)
    assert check["verdict"] == "pass" and check["center"] in CENTERS
    assert after.json()["compliant"]
    # The metrics file has the last success per (set, center).
    prom = (centers.root / "state" / "drvault.prom").read_text()
    for center in CENTERS:
        line = f'drvault_last_drill_success_timestamp_seconds{{set="{SET}",center="{center}"}}'
        assert line in prom


def test_status_warns_once_the_drill_is_older_than_the_maximum_age(centers: Centers) -> None:
    ok(centers.run("drill", "--set", SET, "--from", "zixing-djh"))
    in_a_month = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400 + 3600))
    check = drill_check(centers.run("--json", "status", "--at", in_a_month))
    assert check["verdict"] == "pass" and "passed 30d" in check["reason"]
    in_400_days = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 400 * 86400 + 3600))
    late = centers.run("--json", "status", "--at", in_400_days)
    check = drill_check(late)
    assert check["verdict"] == "warn" and "is 400d" in check["reason"] and "365d" in check["reason"]
    # Judged before the drill happened, there was none.
    yesterday = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    assert (
        "no restore drill"
        in drill_check(centers.run("--json", "status", "--at", yesterday))["reason"]
    )


def test_a_drill_over_its_rto_exits_4_and_is_recorded_as_failed(centers: Centers) -> None:
    result = centers.run("--json", "drill", "--set", SET, "--from", "gz-dr2", "--rto", "0.000001")
    assert result.code == errors.EXIT_NONCOMPLIANT, result
    record = result.json()
    assert not record["passed"]
    [reason] = record["reasons"]
    assert reason.startswith("took ") and reason.endswith(", over the RTO of 0.001ms")
    assert record["verified_files"] == 3  # the data was fine: it was too slow
    assert "drill FAILED: took" in result.err and "Traceback" not in result.err
    assert centers.drills_at("gz-dr2") == [record]
    # A newest drill that failed after a passed one: status warns.
    ok(centers.run("drill", "--set", SET, "--from", "gz-prod"))
    text = centers.run("drill", "--set", SET, "--from", "gz-dr2", "--rto", "0.000001")
    assert text.code == 4 and "FAIL" in text.out and "MISSED" in text.out
    check = drill_check(centers.run("--json", "status"))
    assert check["verdict"] == "warn" and "failed" in check["reason"]


def test_a_corrupt_data_pack_fails_the_drill_naming_it(centers: Centers) -> None:
    prod = LocalBackend(centers.root / "prod" / SET)
    pack = sorted(i.name for i in prod.list("data/"))[0]
    raw = bytearray(prod.get(pack))
    raw[len(raw) // 3] ^= 0x01
    prod.put(pack, bytes(raw))
    result = centers.run("--json", "drill", "--set", SET, "--from", "gz-prod")
    assert result.code == errors.EXIT_INTEGRITY, result
    record = result.json()
    assert not record["passed"] and pack in record["reasons"][0]
    assert pack in result.err and "Traceback" not in result.err
    assert centers.drills_at("gz-prod") == [record]
    assert not Path(record["target"]).exists()  # the scratch directory went with the failure
    # The DR copies are intact: a drill from them passes.
    ok(centers.run("drill", "--set", SET, "--from", "zixing-djh"))


def test_report_holds_every_drill_and_the_lag_of_every_center(centers: Centers) -> None:
    (centers.data / "db" / "today.sql").write_text("INSERT today;\n")
    ok(centers.run("backup", "--set", SET))
    ok(centers.run("replicate", "--all"))
    for center in CENTERS:
        ok(centers.run("drill", "--set", SET, "--from", center))
    assert centers.run("drill", "--set", SET, "--from", "gz-prod", "--rto", "0.000001").code == 4
    page = centers.root / "report.html"
    doc = ok(centers.run("--json", "report", "--since", "7d", "--html", page)).json()
    assert set(doc) == {"version", "generated", "since", "sets"}
    assert doc["version"] == 1 and doc["generated"] - doc["since"] == pytest.approx(7 * 86400)
    [s] = doc["sets"]
    assert set(s) == {
        "id", "classification", "rto_seconds", "rpo_seconds", "verdict", "checks", "centers",
        "drills",
    }  # fmt: skip
    assert (s["id"], s["classification"], s["rto_seconds"], s["rpo_seconds"]) == (
        SET, "important", 4 * 3600, 3600,
    )  # fmt: skip
    assert {c["id"] for c in s["checks"]} >= {"rpo", "drill"}
    assert all(set(c) == {"id", "verdict", "reason", "center"} for c in s["checks"])
    assert [c["id"] for c in s["centers"]] == list(CENTERS)
    for c in s["centers"]:
        assert set(c) == {"id", "role", "city", "rpo_seconds", "lag"}
        assert len(c["lag"]) == 2  # both snapshots, oldest first
        assert c["lag"][0][0] < c["lag"][1][0]
        assert all(landed >= snap - 5 for snap, landed in c["lag"])
    assert [d["center"] for d in s["drills"]] == [*CENTERS, "gz-prod"]
    assert [d["passed"] for d in s["drills"]] == [True, True, True, False]
    assert all(set(d) == FIELDS for d in s["drills"])
    html = page.read_text()
    assert html.count('<tr class="drill">') == 4
    for center in CENTERS:
        assert f"{center}: snapshot" in html  # a point of its lag series
    text = ok(centers.run("report", "--html", centers.root / "again.html"))
    assert "1 set(s), 4 drill(s)" in text.out


def test_report_of_an_unreachable_center_is_a_failed_check(centers: Centers) -> None:
    ok(centers.run("drill", "--set", SET, "--from", "gz-prod"))
    broken = centers.root / "broken.yaml"
    broken.write_text(
        re.sub(r"url: s3:\S+", "url: s3:http://127.0.0.1:9/nowhere/dr", centers.config.read_text())
    )
    result = run_drvault(
        "--config", broken, "-o", "retry-deadline=1", "--json", "report", "--html",
        centers.root / "r.html", cwd=centers.root, password_file=None, timeout=180,
    )  # fmt: skip
    doc = ok(result).json()
    [s] = doc["sets"]
    reach = [c for c in s["checks"] if c["id"] == "reachable"]
    assert reach and reach[0]["verdict"] == "fail" and reach[0]["center"] == "gz-dr2"
    dr2 = next(c for c in s["centers"] if c["id"] == "gz-dr2")
    assert dr2["lag"] == []
    assert [d["center"] for d in s["drills"]] == ["gz-prod"]


# ---------------------------------------------------------------------------- bad input


def test_a_drill_of_a_repository_url_needs_no_config(centers: Centers, tmp_path: Path) -> None:
    url = str(centers.root / "prod" / SET)
    result = run_drvault(
        "--json", "drill", url, "--report", tmp_path / "out",
        cwd=tmp_path, password_file=centers.root / "password",
    )  # fmt: skip
    record = ok(result).json()
    assert (record["set"], record["center"], record["center_role"]) == ("", url, "")
    assert record["rto_seconds"] is None and record["passed"]
    assert len(list((tmp_path / "out").glob("drill-repo-*.html"))) == 1
    assert centers.drills_at("gz-prod") == [record]


def test_bad_input_is_one_error_line(centers: Centers) -> None:
    unknown = centers.run("drill", "--set", SET, "--from", "nowhere")
    assert_one_error_line(unknown, errors.EXIT_USAGE, "unknown center 'nowhere'", "gz-prod")
    not_held = centers.run("drill", "--set", SET, "--from", "elsewhere")
    assert_one_error_line(not_held, errors.EXIT_USAGE, "holds no copy of set 'ledger'")
    no_set = centers.run("drill", "--set", "payroll")
    assert_one_error_line(no_set, errors.EXIT_USAGE, "unknown backup set 'payroll'")
    snap = centers.run("drill", "--set", SET, "--snapshot", "deadbeef")
    assert_one_error_line(snap, errors.EXIT_USAGE, "no snapshot matches 'deadbeef'")
    rto = centers.run("drill", "--set", SET, "--rto", "soon")
    assert_one_error_line(rto, errors.EXIT_USAGE, "--rto: invalid duration 'soon'")
    (centers.root / "password").write_bytes(b"not the password\n")
    wrong = centers.run("drill", "--set", SET, "--from", "zixing-djh")
    assert_one_error_line(wrong, errors.EXIT_BAD_PASSWORD, "wrong password")
    no_config = run_drvault("drill", "--set", SET, cwd=centers.root, password_file=None)
    assert_one_error_line(no_config, errors.EXIT_USAGE, "--set needs --config")
    for center in CENTERS:
        assert centers.drills_at(center) == []  # nothing was drilled
