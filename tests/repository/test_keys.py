"""Key slots: wrap / unwrap, and the repository's key management (add, open, remove)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CHEAP_KDF, PASSWORD, MakeRepo, open_repo
from trees import flip

from drvault.errors import IntegrityError, UsageError, WrongPasswordError
from drvault.repository import keys
from drvault.repository.crypto import sha256
from drvault.repository.keys import (
    KdfParams,
    MalformedKeySlot,
    MasterKey,
    parse_slot,
    wrap,
)
from drvault.repository.repository import Repository
from drvault.transport import LocalBackend

OTHER = b"another operator's password"


def test_kdf_params_parse_and_validate() -> None:
    assert KdfParams.parse("") == KdfParams()
    assert KdfParams.parse("n=1024") == KdfParams(n=1024, r=8, p=3)
    assert KdfParams.parse("n=2048,r=4,p=2") == KdfParams(2048, 4, 2)
    for bad in ("n=1000", "n=1024,x=1", "n=abc", "r=0", "n=1"):
        with pytest.raises(UsageError):
            KdfParams.parse(bad)


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305", "sm4-gcm"])
def test_wrap_unwrap_round_trip(cipher: str) -> None:
    master = MasterKey.generate(bytes(range(32)))
    name, raw = wrap(master, PASSWORD, cipher, CHEAP_KDF)
    assert name == "keys/" + sha256(raw).hex()
    doc = json.loads(raw)
    assert (doc["kdf"], doc["n"], doc["r"], doc["p"], doc["cipher"]) == (
        "scrypt",
        1024,
        8,
        1,
        cipher,
    )
    assert master.enc.hex() not in raw.decode()
    slot = parse_slot(name, raw)
    assert slot.id == sha256(raw).hex()
    assert slot.unwrap(PASSWORD) == master
    assert slot.unwrap(OTHER) is None


def test_parse_slot_refuses_damage() -> None:
    master = MasterKey.generate(bytes(32))
    name, raw = wrap(master, PASSWORD, "aes-256-gcm", CHEAP_KDF)
    for position in (0, len(raw) // 2, len(raw) - 1):
        damaged = bytearray(raw)
        damaged[position] ^= 0x01
        with pytest.raises(MalformedKeySlot, match="SHA-256"):
            parse_slot(name, bytes(damaged))
    doc = json.loads(raw)
    doc["cipher"] = "rot13"
    bad = json.dumps(doc).encode()
    with pytest.raises(MalformedKeySlot, match="unknown cipher"):
        parse_slot("keys/" + sha256(bad).hex(), bad)
    del doc["salt"]
    bad = json.dumps(doc).encode()
    with pytest.raises(MalformedKeySlot, match="salt"):
        parse_slot("keys/" + sha256(bad).hex(), bad)


def _slot_names(repo_dir: Path) -> list[str]:
    return sorted(f"keys/{p.name}" for p in (repo_dir / "keys").iterdir())


def test_open_with_the_right_and_a_wrong_password(make_repo: MakeRepo, tmp_path: Path) -> None:
    created = make_repo()
    opened = open_repo(tmp_path / "repo")
    assert opened.master == created.master
    assert opened.slot_id == created.slot_id
    assert _slot_names(tmp_path / "repo") == [f"keys/{created.slot_id}"]
    with pytest.raises(WrongPasswordError, match="1 key slot"):
        open_repo(tmp_path / "repo", OTHER)


def test_add_open_and_remove_keys(make_repo: MakeRepo, tmp_path: Path) -> None:
    first = make_repo()
    second_id = first.add_key(OTHER, CHEAP_KDF)
    assert len(_slot_names(tmp_path / "repo")) == 2
    by_other = open_repo(tmp_path / "repo", OTHER)
    assert by_other.slot_id == second_id
    assert by_other.master == first.master
    assert {s.id for s in by_other.key_slots()} == {first.slot_id, second_id}

    with pytest.raises(UsageError, match="opened with"):
        by_other.remove_key(second_id[:8])  # the current key
    assert by_other.remove_key(first.slot_id[:10]) == first.slot_id  # a unique prefix
    assert _slot_names(tmp_path / "repo") == [f"keys/{second_id}"]
    with pytest.raises(WrongPasswordError):
        open_repo(tmp_path / "repo", PASSWORD)
    assert open_repo(tmp_path / "repo", OTHER).slot_id == second_id


def test_refuse_removing_the_last_key(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    with pytest.raises(UsageError, match="opened with"):
        repo.remove_key(repo.slot_id)
    other_id = repo.add_key(OTHER, CHEAP_KDF)
    by_other = open_repo(tmp_path / "repo", OTHER)
    by_other.remove_key(repo.slot_id)  # now only OTHER's slot is left
    with pytest.raises(UsageError, match="last key slot"):
        repo.remove_key(other_id)  # this session's own slot is gone: other_id is the last
    assert _slot_names(tmp_path / "repo") == [f"keys/{other_id}"]


def test_remove_needs_exactly_one_match(make_repo: MakeRepo) -> None:
    repo = make_repo()
    repo.add_key(OTHER, CHEAP_KDF)
    with pytest.raises(UsageError, match="matches 2 key slots"):
        repo.remove_key("")
    with pytest.raises(UsageError, match="matches 0 key slots"):
        repo.remove_key("not-hex")


def test_a_flipped_byte_in_the_only_slot_names_it(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    name = f"keys/{repo.slot_id}"
    path = tmp_path / "repo" / name
    size = path.stat().st_size
    for position in (0, size // 3, size - 1):
        original = flip(path, position)
        with pytest.raises(IntegrityError) as info:
            open_repo(tmp_path / "repo")
        path.write_bytes(original)
        assert info.value.name == name
        assert str(info.value).startswith(name + ": ")
    assert open_repo(tmp_path / "repo").slot_id == repo.slot_id


def test_a_damaged_slot_does_not_block_an_intact_one(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    other_id = repo.add_key(OTHER, CHEAP_KDF)
    flip(tmp_path / "repo" / "keys" / repo.slot_id, 5)
    assert open_repo(tmp_path / "repo", OTHER).slot_id == other_id
    with pytest.raises(IntegrityError) as info:
        open_repo(tmp_path / "repo", PASSWORD)  # its only slot is the damaged one
    assert info.value.name == f"keys/{repo.slot_id}"
    slots = open_repo(tmp_path / "repo", OTHER).key_slots()
    assert f"keys/{repo.slot_id}" in slots  # a damaged slot is listed by its name


def test_no_key_slots_at_all(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    (tmp_path / "repo" / "keys" / repo.slot_id).unlink()
    with pytest.raises(IntegrityError) as info:
        Repository.open(LocalBackend(tmp_path / "repo"), PASSWORD)
    assert info.value.name == "keys/"


# RFC 7914, section 12: the first 32 bytes of two of its scrypt test vectors.
RFC_7914 = [
    (b"", b"", 16, 1, 1, "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"),
    (
        b"password",
        b"NaCl",
        1024,
        8,
        16,
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162",
    ),
]


@pytest.mark.parametrize(("password", "salt", "n", "r", "p", "expected"), RFC_7914)
def test_scrypt_gives_the_rfc_7914_vectors(
    password: bytes, salt: bytes, n: int, r: int, p: int, expected: str
) -> None:
    assert keys._kdf(password, salt, KdfParams(n, r, p)).hex() == expected


def test_slots_made_with_openssls_scrypt_still_open() -> None:
    # Slots written before libsodium derived the keys used hashlib.scrypt (OpenSSL).
    import hashlib

    salt = bytes(range(32))
    for params in (CHEAP_KDF, KdfParams()):
        maxmem = 128 * params.r * params.n * params.p + 2**20
        openssl = hashlib.scrypt(
            PASSWORD, salt=salt, n=params.n, r=params.r, p=params.p, maxmem=maxmem, dklen=32
        )
        assert keys._kdf(PASSWORD, salt, params) == openssl


def test_a_cost_beyond_the_memory_bound_is_refused_before_any_work() -> None:
    with pytest.raises(ValueError, match="scrypt would need"):
        keys._kdf(PASSWORD, b"salt", KdfParams(n=2**21, r=8, p=1))  # 2 GiB
