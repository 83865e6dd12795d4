"""Failures print one ``drvault: error:`` line, no traceback, and the documented exit code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import CHEAP_KDF_OPTION, MakeRepo, RunCli, assert_one_error_line

from drvault.backup import BackupRequest, backup
from drvault.errors import (
    EXIT_BAD_PASSWORD,
    EXIT_CODES,
    EXIT_INTEGRITY,
    EXIT_NO_REPOSITORY,
    EXIT_USAGE,
)
from tests.sites import Site


@pytest.fixture
def repo(make_repo: MakeRepo, site: Site, tmp_path: Path) -> str:
    """A repository with one snapshot (made through the API: the CLI's own tests cover that);
    its URL."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"data" * 1000)
    backup(make_repo(), BackupRequest(paths=(os.fsencode(tmp_path / "src"),)))
    return site.url("repo")


def _missing(site: Site) -> str:
    """What a command on a repository that is not there says. S3 has no directories: a prefix
    with nothing below it is a place without a config, as an empty directory is elsewhere."""
    return "not a drvault repository (no config)" if site.kind == "s3" else "does not exist"


def _commands(repo: str, tmp_path: Path) -> dict[str, list[str | Path]]:
    return {
        "snapshots": ["snapshots", repo],
        "ls": ["ls", repo, "latest"],
        "restore": ["restore", repo, "latest", "--target", tmp_path / "out"],
        "check": ["check", repo],
        "backup": ["backup", repo, tmp_path / "src"],
        "key-list": ["key", "list", repo],
        "key-remove": ["key", "remove", repo, "abc"],
    }


COMMANDS = ["snapshots", "ls", "restore", "check", "backup", "key-list", "key-remove"]


def test_exit_codes_are_documented() -> None:
    assert {0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 130} == set(EXIT_CODES)


@pytest.mark.parametrize("command", COMMANDS)
def test_wrong_password(run_cli: RunCli, repo: str, tmp_path: Path, command: str) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"not the password\n")
    result = run_cli(*_commands(repo, tmp_path)[command], password_file=wrong)
    assert_one_error_line(result, EXIT_BAD_PASSWORD, "wrong password")


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_repository(run_cli: RunCli, site: Site, tmp_path: Path, command: str) -> None:
    (tmp_path / "src").mkdir()
    result = run_cli(*_commands(site.url("nowhere"), tmp_path)[command])
    where = site.backend("nowhere").location
    assert_one_error_line(result, EXIT_NO_REPOSITORY, where, _missing(site))
    assert not site.exists("nowhere")


def test_not_a_repository_and_init_over_one(run_cli: RunCli, site: Site, repo: str) -> None:
    site.backend("plain").create()  # an empty directory (S3: a prefix with nothing below)
    result = run_cli("snapshots", site.url("plain"))
    where = site.backend("plain").location
    assert_one_error_line(result, EXIT_NO_REPOSITORY, where, "not a drvault repository")
    result = run_cli("init", repo, "--kdf", CHEAP_KDF_OPTION)
    where = site.backend("repo").location
    assert_one_error_line(result, EXIT_NO_REPOSITORY, where, "already exists")


@pytest.mark.parametrize(
    ("victim", "command"),
    [("snapshots", "snapshots"), ("index", "ls"), ("data", "restore"), ("keys", "check")],
)
def test_truncated_object(
    run_cli: RunCli, site: Site, repo: str, tmp_path: Path, victim: str, command: str
) -> None:
    name = site.objects("repo", f"{victim}/")[0]
    site.truncate(name, site.size(name) // 2)
    result = run_cli(*_commands(repo, tmp_path)[command])
    assert_one_error_line(result, EXIT_INTEGRITY, name)


def test_truncated_config(run_cli: RunCli, site: Site, repo: str) -> None:
    site.truncate("config", 100)
    result = run_cli("check", repo)
    assert_one_error_line(result, EXIT_INTEGRITY, "config: ")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bogus", "snapshots", "{repo}"], "--bogus"),
        (["snapshots", "{repo}", "--bogus"], "--bogus"),
        (["frobnicate"], "frobnicate"),
        (["restore", "{repo}", "latest"], "--target"),
        (["restore", "{repo}", "--target", "{target}"], "usage: drvault restore"),
        (["backup"], "usage: drvault backup"),
        (["ls", "{repo}", "latest", "/a", "/b"], "usage: drvault ls"),
        (["check", "{repo}", "--read-data-subset", "3/2"], "1 <= N <= M"),
        (["check", "{repo}", "--read-data-subset", "half"], "N/M"),
        (["init", "{new}", "--kdf", "n=1000"], "invalid scrypt parameters"),
        (["init", "{new}", "--kdf", "m=5"], "invalid KDF setting"),
        (["init", "{new}", "--chunk-avg", "1000"], "power of two"),
        (["init", "{new}", "--pack-size", "lots"], "invalid size"),
        (["init", "{new}", "--compression-level", "99"], "99"),
        (["init", "{new}", "--suite", "fips"], "known: gm, intl"),
        (["init", "{new}", "--cipher", "des"], "allows ciphers aes-256-gcm, chacha20-poly1305"),
        (["init", "s3:bucket/x", "--kdf", "n=1024"], "expected s3:http[s]://HOST"),
        (["init", "ftp://host/x", "--kdf", "n=1024"], "unknown repository scheme"),
        (["init", "sftp://host", "--kdf", "n=1024"], "no repository path"),
        (["-o", "s3.nope=1", "snapshots", "/x"], "unknown option"),
        (["--limit-upload", "fast", "snapshots", "/x"], "not a rate"),
        (["ls", "{repo}", "nothex"], "not a snapshot ID"),
        (["ls", "{repo}", "0000000000"], "no snapshot matches"),
        (["ls", "{repo}", "latest", "/no/such/path"], "not in snapshot"),
        (["restore", "{repo}", "latest", "--target", "{target}", "-i", "/nope"], "--include"),
    ],
)
def test_malformed_options_and_arguments(
    run_cli: RunCli, site: Site, repo: str, tmp_path: Path, args: list[str], needle: str
) -> None:
    filled = [a.format(repo=repo, new=site.url("new"), target=tmp_path / "out") for a in args]
    result = run_cli(*filled)
    assert_one_error_line(result, EXIT_USAGE, needle)
    assert not site.exists("new")


def test_no_password_anywhere(run_cli: RunCli, repo: str) -> None:
    result = run_cli("snapshots", repo, password_file=None)
    assert_one_error_line(result, EXIT_USAGE, "no password")
    missing = run_cli("--password-file", "/nonexistent/pw", "snapshots", repo, password_file=None)
    assert_one_error_line(missing, EXIT_USAGE, "cannot read password file")


def test_json_errors_also_print_a_document(run_cli: RunCli, site: Site) -> None:
    result = run_cli("--json", "snapshots", site.url("nowhere"))
    assert_one_error_line(result, EXIT_NO_REPOSITORY)
    doc = json.loads(result.out)
    assert doc["exit_code"] == EXIT_NO_REPOSITORY and _missing(site) in doc["error"]


def test_debug_shows_the_traceback(run_cli: RunCli, site: Site) -> None:
    result = run_cli("--debug", "snapshots", site.url("nowhere"))
    assert result.code == EXIT_NO_REPOSITORY
    assert "Traceback" in result.err
    assert result.err.splitlines()[-1].startswith("drvault: error: ")
