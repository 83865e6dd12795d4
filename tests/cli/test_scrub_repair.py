"""``drvault scrub`` and ``drvault repair`` through the command line, on the three real centers
(production on local disk, same-city on moto S3, remote on sshd SFTP): damage the remote copy,
name every bad object without the key, heal it from another center, then a drill from it
passes and a restore from it is byte-exact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import SMALL_CHUNKS, CliResult, assert_one_error_line, new_repo, run_drvault
from trees import assert_same_tree

from drvault.backup import BackupRequest, backup
from drvault.errors import EXIT_INTEGRITY, EXIT_NO_REPOSITORY, EXIT_USAGE
from drvault.replicate import replicate
from drvault.transport import LocalBackend
from tests.cli.test_centers import Centers, make_centers, ok
from tests.servers.s3_server import MotoServer
from tests.servers.sshd_server import SshdServer


@pytest.fixture
def centers(tmp_path: Path, s3_server: MotoServer, sshd_server: SshdServer) -> Centers:
    return make_centers(tmp_path, s3_server, sshd_server)


def remote_dir(sshd_server: SshdServer, centers: Centers) -> Path:
    """The remote center's repository directory, as sshd serves it."""
    (found,) = (sshd_server.root / f"remote-{centers.root.name}").glob("*/config")
    return found.parent


def flip_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def corrupt_on_s3(s3_server: MotoServer, centers: Centers, name: str) -> None:
    """Flip a byte of object ``name`` of the set at the same-city center (gz-dr2)."""
    config = yaml.safe_load(centers.config.read_text())
    url = config["centers"]["gz-dr2"]["url"]  # s3:http://host:port/bucket/prefix
    bucket, prefix = url.split("/", 4)[3:5]
    client = s3_server.client()
    (key,) = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        if o["Key"].endswith(name)
    ]
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[100] ^= 0x40
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))


def data_packs(root: Path) -> list[Path]:
    """The data packs, largest first (the pack holding the big file's chunks comes first)."""
    return sorted(root.glob("data/*/*"), key=lambda p: (-p.stat().st_size, p.name))


def test_scrub_names_the_damage_and_repair_heals_it_from_another_center(
    centers: Centers, sshd_server: SshdServer, s3_server: MotoServer
) -> None:
    ok(centers.run("backup", "--set", "ledger"))
    ok(centers.run("replicate", "--all"))
    remote = remote_dir(sshd_server, centers)
    for center in ("gz-prod", "gz-dr2", "zixing-djh"):
        clean = ok(centers.run("scrub", "--keyless", "--center", center))
        assert clean.out.rstrip().endswith("OK")

    corrupt, deleted = data_packs(remote)[:2]
    flip_byte(corrupt)
    deleted.unlink()
    corrupt_name = f"data/{corrupt.parent.name}/{corrupt.name}"

    found = centers.run("--json", "scrub", "--keyless", "--center", "zixing-djh")
    assert found.code == EXIT_INTEGRITY and "Traceback" not in found.err
    (doc,) = found.json()["repositories"]
    problems = {(p["path"], p["kind"]) for p in doc["problems"]}
    assert problems == {(corrupt_name, "corrupt"), (f"pack {deleted.name}", "missing")}
    human = centers.run("scrub", "--keyless", "--center", "zixing-djh")
    assert human.code == EXIT_INTEGRITY
    assert corrupt_name in human.out and deleted.name in human.out
    # The other centers are untouched and scrub clean, with the key too.
    ok(centers.run("scrub", "--center", "gz-dr2"))

    healed = ok(centers.run("repair", "--center", "zixing-djh", "--from", "gz-dr2"))
    assert f"repaired {corrupt_name} from gz-dr2" in healed.out
    assert f"repaired data/{deleted.parent.name}/{deleted.name} from gz-dr2" in healed.out
    assert "rechecked: OK" in healed.out
    assert deleted.exists()
    ok(centers.run("scrub", "--center", "zixing-djh"))
    drill = ok(centers.run("--json", "drill", "--set", "ledger", "--from", "zixing-djh"))
    assert drill.json()["passed"] and drill.json()["mismatched_files"] == 0
    out = centers.root / "restore-remote"
    ok(centers.run("restore", "--set", "ledger", "--from", "zixing-djh", "latest", "--target", out))
    assert_same_tree(bytes(centers.data), bytes(out / str(centers.data).lstrip("/")))


def test_repair_never_writes_a_bad_copy(
    centers: Centers, sshd_server: SshdServer, s3_server: MotoServer
) -> None:
    """The same pack corrupt at the remote and the same-city center: the same-city copy fails
    verification and is skipped, production's good copy is used. With no good copy anywhere
    the damaged object is left as it is, named, and repair exits 13."""
    ok(centers.run("backup", "--set", "ledger"))
    ok(centers.run("replicate", "--all"))
    remote = remote_dir(sshd_server, centers)
    pack = data_packs(remote)[0]
    name = f"data/{pack.parent.name}/{pack.name}"
    flip_byte(pack)
    corrupt_on_s3(s3_server, centers, name)

    healed = ok(
        centers.run("repair", "--center", "zixing-djh", "--from", "gz-dr2", "--from", "gz-prod")
    )
    assert f"repaired {name} from gz-prod" in healed.out
    ok(centers.run("scrub", "--keyless", "--center", "zixing-djh"))

    # Now production's copy is damaged too, and the remote one again: nowhere good.
    flip_byte(pack, at=200)
    damaged = pack.read_bytes()
    flip_byte(centers.root / "prod" / "ledger" / name, at=300)
    failed = centers.run(
        "repair", "--center", "zixing-djh", "--from", "gz-dr2", "--from", "gz-prod"
    )
    assert failed.code == EXIT_INTEGRITY and "Traceback" not in failed.err
    assert f"not repaired {name}: corrupt; no center holds a good copy" in failed.out
    assert pack.read_bytes() == damaged  # left as it was: never replaced by another bad copy


def test_repair_usage_errors_are_one_line(centers: Centers) -> None:
    assert_one_error_line(
        centers.run("repair", "--from", "gz-dr2"), EXIT_USAGE, "repair needs --center"
    )
    assert_one_error_line(centers.run("scrub", "--center", "moon"), EXIT_USAGE, "moon")
    assert_one_error_line(
        centers.run("repair", "--center", "zixing-djh", "--from", "moon"), EXIT_USAGE, "moon"
    )


def test_scrub_and_repair_on_repository_urls(tmp_path: Path, password_file: Path) -> None:
    """Without a configuration: ``scrub URL`` and ``repair URL --from OTHER_URL``."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(600 << 10))
    good, copy = LocalBackend(tmp_path / "good"), LocalBackend(tmp_path / "copy")
    backup(new_repo(good, chunker=SMALL_CHUNKS), BackupRequest(paths=(os.fsencode(src),)))
    assert replicate(good, {"copy": copy})["copy"].error is None
    pack = sorted(i.name for i in copy.list("data/"))[0]
    copy.delete(pack)

    def run(*args: str | os.PathLike[str]) -> CliResult:
        return run_drvault(*args, cwd=tmp_path, password_file=password_file)

    found = run("--json", "scrub", tmp_path / "copy", "--keyless")
    assert found.code == EXIT_INTEGRITY
    (doc,) = found.json()["repositories"]
    assert [p["kind"] for p in doc["problems"]] == ["missing"]
    assert run("repair", tmp_path / "copy").code == EXIT_USAGE  # --from is required
    healed = run("repair", tmp_path / "copy", "--from", tmp_path / "good")
    assert healed.code == 0, healed
    assert f"repaired {pack} from {tmp_path / 'good'}" in healed.out
    assert run("scrub", tmp_path / "copy").code == 0
    missing = run("scrub", tmp_path / "nowhere")
    assert_one_error_line(missing, EXIT_NO_REPOSITORY, "does not exist")
