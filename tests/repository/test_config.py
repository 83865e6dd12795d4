"""The repository config: encoding, keyless checksum, keyed MAC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SMALL_CHUNKS, MakeRepo, open_repo
from trees import flip

from drvault.errors import IntegrityError
from drvault.repository import config as config_codec
from drvault.repository.config import FORMAT_VERSION, ChunkerSettings, RepoConfig
from drvault.repository.crypto import sha256
from drvault.repository.suite import Suite


def _config(**kw: object) -> RepoConfig:
    return RepoConfig(bytes(range(32)), Suite.choose("gm"), SMALL_CHUNKS, **kw)  # type: ignore[arg-type]


def test_encode_decode_round_trip() -> None:
    config = _config(compression_level=7, pack_size=1 << 20)
    raw = config_codec.encode(config, b"\x42" * 32)
    decoded, body, mac = config_codec.decode(raw)
    assert decoded == config
    assert body == config.body()
    assert mac == b"\x42" * 32
    doc = json.loads(raw)
    assert doc["sha256"] == sha256(config_codec.canonical(body)).hex()
    assert body["version"] == FORMAT_VERSION
    assert body["chunker"]["algorithm"] == "fastcdc2020"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["body"].update(pack_size=1), "checksum"),
        (lambda d: d.pop("mac"), "malformed"),
        (lambda d: d["body"].update(suite="gm", cipher="aes-256-gcm"), "checksum"),
    ],
)
def test_decode_refuses_altered_documents(change, reason: str) -> None:
    doc = json.loads(config_codec.encode(_config(), bytes(32)))
    change(doc)
    with pytest.raises(config_codec.MalformedConfig, match=reason):
        config_codec.decode(json.dumps(doc).encode())


def test_decode_refuses_unknown_version_and_chunker() -> None:
    for field, value, reason in (
        ("version", 99, "unsupported format version"),
        ("chunker", {**_config().body()["chunker"], "algorithm": "rabin"}, "unknown chunker"),
    ):
        body = _config().body() | {field: value}
        doc = {"body": body, "sha256": sha256(config_codec.canonical(body)).hex(), "mac": "00"}
        with pytest.raises(config_codec.MalformedConfig, match=reason):
            config_codec.decode(json.dumps(doc).encode())


def test_every_flipped_byte_of_the_config_is_named(make_repo: MakeRepo, tmp_path: Path) -> None:
    make_repo()
    path = tmp_path / "repo" / "config"
    for position in range(path.stat().st_size):
        original = flip(path, position)
        try:
            with pytest.raises(IntegrityError) as info:
                open_repo(tmp_path / "repo")
        finally:
            path.write_bytes(original)
        assert info.value.name == "config", position
        assert str(info.value).startswith("config: ")
    open_repo(tmp_path / "repo")


def test_a_consistent_but_unkeyed_change_fails_the_mac(make_repo: MakeRepo, tmp_path: Path) -> None:
    """Someone without the key rewrites the config with a valid checksum: the MAC catches it."""
    make_repo(chunker=ChunkerSettings())
    path = tmp_path / "repo" / "config"
    doc = json.loads(path.read_bytes())
    doc["body"]["chunker"]["gear"] = "canonical"
    doc["sha256"] = sha256(config_codec.canonical(doc["body"])).hex()
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="MAC mismatch") as info:
        open_repo(tmp_path / "repo")
    assert info.value.name == "config"


def test_a_config_from_another_repository_is_refused(make_repo: MakeRepo, tmp_path: Path) -> None:
    make_repo("one")
    make_repo("two")
    (tmp_path / "one" / "config").write_bytes((tmp_path / "two" / "config").read_bytes())
    with pytest.raises(IntegrityError, match="another repository") as info:
        open_repo(tmp_path / "one")
    assert info.value.name == "config"


def test_settings_survive_reopening(make_repo: MakeRepo, tmp_path: Path) -> None:
    created = make_repo(suite="intl", cipher="chacha20-poly1305", id_hash="hmac-sha256")
    opened = open_repo(tmp_path / "repo")
    assert opened.config == created.config
    assert opened.suite == Suite("intl", "chacha20-poly1305", "hmac-sha256")
