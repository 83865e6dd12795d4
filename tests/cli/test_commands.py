"""Every command of the CLI, in human and --json form, run in subprocesses."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CHEAP_KDF_OPTION, PASSWORD, CliResult, RunCli, run_drvault
from trees import GBK_NAME, describe

from drvault.errors import EXIT_USAGE
from drvault.snapshot import display_name
from tests.sites import Site

OTHER_PASSWORD = b"second operator"


@dataclass
class World:
    """One repository with two snapshots of a small tree, made through the CLI."""

    base: Path
    site: Site
    repo: str  # its URL
    src: Path
    password_file: Path
    init: dict[str, Any]
    first: dict[str, Any]
    second_out: str

    def run(
        self,
        *args: str | os.PathLike[str],
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> CliResult:
        kwargs.setdefault("password_file", self.password_file)
        return run_drvault(*args, cwd=self.base, env={**self.site.env, **(env or {})}, **kwargs)

    def ids(self) -> list[str]:
        return [s["id"] for s in self.run("--json", "snapshots", self.repo).json()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_site: Site) -> World:
    base = tmp_path_factory.mktemp("cli")
    password_file = base / "password"
    password_file.write_bytes(PASSWORD + b"\n")
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "skip.tmp").write_bytes(b"excluded\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    (src / "sub" / "c.txt").write_bytes(b"c")
    with open(os.path.join(os.fsencode(src), GBK_NAME), "wb") as f:
        f.write(b"gbk named")
    repo = module_site.url("repo")

    def run(*args: str | os.PathLike[str]) -> CliResult:
        return run_drvault(*args, cwd=base, password_file=password_file, env=module_site.env)

    init = run("--json", "init", repo, "--kdf", CHEAP_KDF_OPTION, "--pack-size", "64K")
    assert init.code == 0, init
    first = run(
        "--json", "backup", repo, src, "--tag", "first", "--set", "docs", "--host", "hostA",
        "--exclude", "*.tmp",
    )  # fmt: skip
    assert first.code == 0, first
    (src / "a.txt").write_bytes(b"alpha, changed\n")
    second = run("backup", repo, src, "--set", "docs", "--host", "hostA", "--exclude", "*.tmp")
    assert second.code == 0, second
    return World(base, module_site, repo, src, password_file, init.json(), first.json(), second.out)


def test_init_json_document(world: World) -> None:
    doc = world.init
    assert doc["repository"] == world.repo
    assert len(doc["id"]) == 64 and len(doc["key"]) == 64
    assert doc["config"]["suite"] == "intl"
    assert doc["config"]["cipher"] == "aes-256-gcm"
    assert doc["config"]["pack_size"] == 64 * 1024
    assert world.site.objects("repo", "keys/") == [f"keys/{doc['key']}"]


@pytest.mark.parametrize(
    ("options", "config"),
    [
        ([], {"suite": "intl", "cipher": "aes-256-gcm", "id_hash": "blake3"}),
        (
            ["--cipher", "chacha20-poly1305", "--id-hash", "hmac-sha256"],
            {"suite": "intl", "cipher": "chacha20-poly1305", "id_hash": "hmac-sha256"},
        ),
        (["--suite", "gm"], {"suite": "gm", "cipher": "sm4-gcm", "id_hash": "hmac-sm3"}),
    ],
)
def test_init_human_and_suites(
    run_cli: RunCli, site: Site, options: list[str], config: dict[str, str]
) -> None:
    human = run_cli("init", site.url("h"), "--kdf", CHEAP_KDF_OPTION, *options)
    assert human.code == 0, human
    assert human.out.startswith("created repository ") and f"suite {config['suite']}" in human.out
    doc = run_cli("--json", "init", site.url("j"), "--kdf", CHEAP_KDF_OPTION, *options).json()
    assert {k: doc["config"][k] for k in config} == config


def test_init_rejects_a_disallowed_combination_listing_the_allowed(
    run_cli: RunCli, site: Site
) -> None:
    result = run_cli("init", site.url("r"), "--suite", "gm", "--cipher", "aes-256-gcm")
    assert result.code == EXIT_USAGE
    assert "allows ciphers sm4-gcm" in result.err
    assert not site.exists("r")


def test_backup_json_and_human(world: World) -> None:
    doc = world.first
    assert set(doc) == {"snapshot", "stats", "warnings"}
    snap = doc["snapshot"]
    assert snap["tags"] == ["first"] and snap["backup_set"] == "docs"
    assert snap["hostname"] == "hostA"
    assert snap["paths"] == [str(world.src)]
    assert doc["stats"]["files_new"] == 4  # a.txt, sub/b.bin, sub/c.txt, the GBK name
    assert doc["warnings"] == []
    assert world.second_out.startswith("snapshot ")
    assert "saved: 0 new, 1 changed, 3 unmodified files" in world.second_out


def test_snapshots_human_and_json(world: World) -> None:
    docs = world.run("--json", "snapshots", world.repo).json()
    assert docs[0]["id"] == world.first["snapshot"]["id"]
    assert len(docs) == 2
    assert docs[1]["parent"] == docs[0]["id"]
    human = world.run("snapshots", world.repo)
    assert human.code == 0
    lines = human.out.splitlines()
    assert lines[0].startswith("ID ") and lines[-1] == "2 snapshot(s)"
    assert lines[1].startswith(docs[0]["id"][:8]) and "hostA" in lines[1]


def test_ls_all_below_a_path_long_and_json(world: World) -> None:
    src = str(world.src)
    listing = world.run("ls", world.repo, "latest")
    assert listing.code == 0
    paths = listing.out.splitlines()
    assert f"{src}/a.txt" in paths and f"{src}/sub/b.bin" in paths
    assert f"{src}/skip.tmp" not in paths  # excluded
    assert f"{src}/{display_name(GBK_NAME)}" in paths  # GBK name, bytes not UTF-8 escaped
    assert "\\xb2\\xe2" in display_name(GBK_NAME)
    below = world.run("ls", world.repo, world.ids()[0][:8], f"{src}/sub").out.splitlines()
    assert below == [f"{src}/sub", f"{src}/sub/b.bin", f"{src}/sub/c.txt"]
    long = world.run("ls", "-l", world.repo, "latest", f"{src}/sub/b.bin").out
    assert long.split() == ["file", "0644", "0:0", "100000", f"{src}/sub/b.bin"]
    lines = world.run("--json", "ls", world.repo, "latest", f"{src}/sub").out.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["path"] for d in docs] == below
    assert docs[1]["type"] == "file" and docs[1]["size"] == 100_000
    assert docs[0]["type"] == "dir"


@pytest.mark.parametrize("selector", ["full", "prefix", "latest"])
def test_restore_by_full_id_prefix_and_latest(world: World, tmp_path: Path, selector: str) -> None:
    latest = world.ids()[-1]
    ref = {"full": latest, "prefix": latest[:7], "latest": "latest"}[selector]
    result = world.run("restore", world.repo, ref, "--target", tmp_path / "out", "--verify")
    assert result.code == 0, result
    assert result.out.startswith(f"restored snapshot {latest[:8]} to ")
    assert "verified: OK" in result.out
    want, want_links = describe(os.fsencode(world.src))
    del want[b"skip.tmp"]  # excluded
    assert describe(os.fsencode(tmp_path / "out") + os.fsencode(world.src)) == (want, want_links)


def test_restore_older_snapshot_include_and_json(world: World, tmp_path: Path) -> None:
    first = world.ids()[0]
    result = world.run(
        "--json", "restore", world.repo, first, "--target", tmp_path / "out",
        "--include", f"{world.src}/a.txt", "--verify",
    )  # fmt: skip
    assert result.code == 0, result
    doc = result.json()
    assert doc["snapshot"] == first and doc["mismatches"] == [] and doc["warnings"] == []
    assert doc["stats"]["files"] == 1
    restored = tmp_path / "out" / str(world.src).lstrip("/")
    assert os.listdir(restored) == ["a.txt"]
    assert (restored / "a.txt").read_bytes() == b"alpha\n"  # the first version


@pytest.mark.parametrize(
    "options", [[], ["--read-data"], ["--read-data-subset", "1/2"], ["--read-data-subset", "2/2"]]
)
def test_check_human_and_json(world: World, options: list[str]) -> None:
    human = world.run("check", world.repo, *options)
    assert human.code == 0, human
    assert human.out.startswith("no errors: 2 snapshots")
    doc = world.run("--json", "check", world.repo, *options).json()
    assert doc["ok"] is True and doc["errors"] == []
    stats = doc["stats"]
    assert stats["snapshots"] == 2 and stats["packs_read"] == stats["packs"] >= 3
    if options == ["--read-data"]:
        assert stats["blobs_verified"] >= stats["blobs_referenced"] > 0


def test_read_data_subsets_split_the_data_packs(world: World) -> None:
    def verified(*options: str) -> int:
        return world.run("--json", "check", world.repo, *options).json()["stats"]["blobs_verified"]

    trees_only = verified()
    everything = verified("--read-data")
    one, two = verified("--read-data-subset", "1/2"), verified("--read-data-subset", "2/2")
    assert one - trees_only + two - trees_only == everything - trees_only
    assert verified("--read-data-subset", "1/1") == everything


def test_key_add_list_remove(run_cli: RunCli, site: Site, tmp_path: Path) -> None:
    repo = site.url("repo")
    first = run_cli("--json", "init", repo, "--kdf", CHEAP_KDF_OPTION).json()["key"]
    new_password = tmp_path / "new-password"
    new_password.write_bytes(OTHER_PASSWORD + b"\n")
    added = run_cli(
        "--json", "key", "add", repo, "--new-password-file", new_password,
        "--kdf", CHEAP_KDF_OPTION,
    )  # fmt: skip
    assert added.code == 0, added
    second = added.json()["key"]
    assert site.objects("repo", "keys/") == sorted([f"keys/{first}", f"keys/{second}"])
    listed = run_cli("--json", "key", "list", repo).json()
    assert {d["id"]: d["current"] for d in listed} == {first: True, second: False}
    human = run_cli("key", "list", repo, password_file=new_password).out.splitlines()
    assert f"* {second[:8]}" in "\n".join(human) and f"  {first[:8]}" in "\n".join(human)
    removed = run_cli("--json", "key", "remove", repo, first[:12], password_file=new_password)
    assert removed.code == 0, removed
    assert removed.json() == {"removed": first}
    assert site.objects("repo", "keys/") == [f"keys/{second}"]
    assert run_cli("snapshots", repo).code == 11  # the old password no longer opens it
    assert run_cli("snapshots", repo, password_file=new_password).code == 0
    last = run_cli("key", "remove", repo, second, password_file=new_password)
    assert last.code == EXIT_USAGE and "refusing" in last.err
    no_new = run_cli("key", "add", repo, password_file=new_password)
    assert no_new.code == EXIT_USAGE and "--new-password-file" in no_new.err


def test_selftest_prints_one_outcome_per_check(run_cli: RunCli) -> None:
    doc = run_cli("--json", "selftest").json()
    names = [o["name"] for o in doc]
    assert len(names) == 8
    for expected in ("AES-256-GCM", "ChaCha20-Poly1305", "SM4-GCM", "HMAC-SHA-256", "BLAKE3"):
        assert any(expected in n for n in names), expected
    assert any("chunker" in n and "native" in n for n in names)
    human = run_cli("selftest").out.splitlines()
    assert len(human) == 8 and all(line.startswith(("ok   ", "FAIL ")) for line in human)


def test_selftest_passes(run_cli: RunCli) -> None:
    result = run_cli("--json", "selftest")
    assert [o for o in result.json() if not o["ok"]] == []
    assert result.code == 0


# ---------------------------------------------------------------------------------- env


def test_repository_and_password_from_the_environment(world: World, tmp_path: Path) -> None:
    env = {"DRVAULT_REPOSITORY": str(world.repo), "DRVAULT_PASSWORD": PASSWORD.decode()}
    no_file = {"password_file": None, "env": env}
    snapshots = world.run("--json", "snapshots", **no_file)
    assert snapshots.code == 0, snapshots
    ids = [d["id"] for d in snapshots.json()]
    assert ids == world.ids()
    assert world.run("ls", "latest", f"{world.src}/sub", **no_file).out.splitlines()[0] == str(
        world.src / "sub"
    )
    assert world.run("check", **no_file).code == 0
    assert world.run("--json", "key", "list", **no_file).json()[0]["current"] is True
    restored = world.run("restore", ids[0][:8], "--target", tmp_path / "out", **no_file)
    assert restored.code == 0, restored
    assert (tmp_path / "out" / str(world.src).lstrip("/") / "a.txt").read_bytes() == b"alpha\n"
    # the repository given both ways is one repository, not a path to back up
    same = world.run("--json", "ls", str(world.repo), "latest", f"{world.src}/a.txt", **no_file)
    assert same.code == 0 and json.loads(same.out)["path"] == f"{world.src}/a.txt"


def test_backup_and_init_with_environment_only(run_cli: RunCli, site: Site, tmp_path: Path) -> None:
    password_file = tmp_path / "pw-env"
    password_file.write_bytes(b"from a file in the environment\n")
    env = {"DRVAULT_REPOSITORY": site.url("envrepo")}
    init = run_cli("init", "--kdf", CHEAP_KDF_OPTION, env=env, password_file=password_file)
    assert init.code == 0, init
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_bytes(b"f")
    backup = run_cli("--json", "backup", tmp_path / "data", env=env, password_file=password_file)
    assert backup.code == 0, backup
    assert backup.json()["snapshot"]["paths"] == [str(tmp_path / "data")]
    wrong = run_cli("snapshots", env=env)  # the test's default password file: wrong password
    assert wrong.code == 11
    by_option = run_cli(
        "--password-file", password_file, "--json", "snapshots", env=env, password_file=None
    )
    assert by_option.code == 0 and len(by_option.json()) == 1


# ------------------------------------------------------------------------------- --json


# (world, a local directory, a site for new repositories) -> the command's arguments
JSON_COMMANDS = {
    "snapshots": lambda w, t, s: ["snapshots", w.repo],
    "ls": lambda w, t, s: ["ls", w.repo, "latest"],
    "restore": lambda w, t, s: ["restore", w.repo, "latest", "--target", t / "o"],
    "check": lambda w, t, s: ["check", w.repo],
    "check-read-data": lambda w, t, s: ["check", "--read-data", w.repo],
    "check-subset": lambda w, t, s: ["check", "--read-data-subset", "1/2", w.repo],
    "key-list": lambda w, t, s: ["key", "list", w.repo],
    "selftest": lambda w, t, s: ["selftest"],
    "init": lambda w, t, s: ["init", s.url("new"), "--kdf", CHEAP_KDF_OPTION],
    "backup": lambda w, t, s: ["backup", s.url("new-repo"), w.src],
}


@pytest.mark.parametrize("command", sorted(JSON_COMMANDS))
def test_every_command_prints_one_json_document(
    world: World, site: Site, tmp_path: Path, command: str
) -> None:
    if command == "backup":
        assert world.run("init", site.url("new-repo"), "--kdf", CHEAP_KDF_OPTION).code == 0
    result = world.run("--json", *JSON_COMMANDS[command](world, tmp_path, site), env=site.env)
    assert result.code == 0, result
    if command == "ls":
        docs = [json.loads(line) for line in result.out.splitlines()]
        assert len(docs) > 5 and all("path" in d and "type" in d for d in docs)
    else:
        json.loads(result.out)  # exactly one document: trailing text would fail to parse
