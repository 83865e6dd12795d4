"""Crypto suites: allowed cipher / ID-hash combinations, subkeys, and end-to-end use."""

from __future__ import annotations

import pytest

from drvault.errors import UsageError
from drvault.repository.crypto import AuthenticationFailed, make_keyed_hash
from drvault.repository.suite import SUITES, Suite

ALLOWED = [
    ("intl", "aes-256-gcm", "blake3"),
    ("intl", "aes-256-gcm", "hmac-sha256"),
    ("intl", "chacha20-poly1305", "blake3"),
    ("intl", "chacha20-poly1305", "hmac-sha256"),
    ("gm", "sm4-gcm", "hmac-sm3"),
]


def test_defaults() -> None:
    assert Suite.choose("intl") == Suite("intl", "aes-256-gcm", "blake3")
    assert Suite.choose("gm") == Suite("gm", "sm4-gcm", "hmac-sm3")
    assert sorted(SUITES) == ["gm", "intl"]


@pytest.mark.parametrize(("suite", "cipher", "id_hash"), ALLOWED)
def test_allowed_combinations_round_trip(suite: str, cipher: str, id_hash: str) -> None:
    chosen = Suite.choose(suite, cipher, id_hash)
    assert (chosen.name, chosen.cipher, chosen.id_hash) == (suite, cipher, id_hash)
    key = bytes(range(32))
    aead = chosen.cipher_for(key, b"pack", b"salt")
    sealed = aead.seal(bytes(12), b"payload", b"aad")
    assert chosen.cipher_for(key, b"pack", b"salt").open(bytes(12), sealed, b"aad") == b"payload"
    with pytest.raises(AuthenticationFailed):
        chosen.cipher_for(key, b"pack", b"other salt").open(bytes(12), sealed, b"aad")
    ids = chosen.id_hasher(key)
    assert ids(b"blob") == make_keyed_hash(id_hash, key)(b"blob")


@pytest.mark.parametrize(
    ("suite", "cipher", "id_hash", "listed"),
    [
        ("intl", "sm4-gcm", None, "allows ciphers aes-256-gcm, chacha20-poly1305, not sm4-gcm"),
        ("intl", None, "hmac-sm3", "allows blob-ID hashes blake3, hmac-sha256, not hmac-sm3"),
        ("gm", "aes-256-gcm", None, "allows ciphers sm4-gcm, not aes-256-gcm"),
        ("gm", "chacha20-poly1305", None, "allows ciphers sm4-gcm, not chacha20-poly1305"),
        ("gm", None, "blake3", "allows blob-ID hashes hmac-sm3, not blake3"),
        ("gm", None, "hmac-sha256", "allows blob-ID hashes hmac-sm3, not hmac-sha256"),
        ("fips", None, None, "unknown crypto suite 'fips' (known: gm, intl)"),
    ],
)
def test_disallowed_combinations_list_the_allowed_names(
    suite: str, cipher: str | None, id_hash: str | None, listed: str
) -> None:
    with pytest.raises(UsageError) as info:
        Suite.choose(suite, cipher, id_hash)
    assert listed in str(info.value)


@pytest.mark.parametrize(
    ("suite", "size", "kdf"), [("intl", 32, "hmac-sha256"), ("gm", 16, "hmac-sm3")]
)
def test_derive_uses_the_suite_kdf_hash_and_separates_labels_and_salts(
    suite: str, size: int, kdf: str
) -> None:
    chosen = Suite.choose(suite)
    key = bytes(range(32))
    sub = chosen.derive(key, b"index", b"salt")
    assert len(sub) == size == chosen.key_size
    assert sub == make_keyed_hash(kdf, key)(b"drvault subkey v1\0index\0salt")[:size]
    assert chosen.derive(key, b"snapshot", b"salt") != sub
    assert chosen.derive(key, b"index", b"salt2") != sub
    assert chosen.derive(bytes(32), b"index", b"salt") != sub
