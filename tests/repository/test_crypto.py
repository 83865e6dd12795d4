"""Ciphers and keyed hashes by name: round trips, tamper detection, known answers."""

from __future__ import annotations

import hashlib
import hmac

import blake3
import pytest

from drvault.errors import UsageError
from drvault.repository.crypto import (
    CIPHERS,
    KEYED_HASHES,
    TAG_SIZE,
    AuthenticationFailed,
    cipher_spec,
    make_cipher,
    make_keyed_hash,
    sha256,
)

CIPHER_NAMES = ("aes-256-gcm", "chacha20-poly1305", "sm4-gcm")
HASH_NAMES = ("blake3", "hmac-sha256", "hmac-sm3")
NONCE = bytes(range(12))
AAD = b"associated data"
PLAINTEXT = b"the quick brown fox jumps over the lazy dog" * 3


def test_registries_hold_exactly_the_documented_names() -> None:
    assert sorted(CIPHERS) == sorted(CIPHER_NAMES)
    assert sorted(KEYED_HASHES) == sorted(HASH_NAMES)


@pytest.mark.parametrize("name", CIPHER_NAMES)
def test_cipher_round_trip(name: str) -> None:
    key = bytes(range(cipher_spec(name).key_size))
    cipher = make_cipher(name, key)
    sealed = cipher.seal(NONCE, PLAINTEXT, AAD)
    assert len(sealed) == len(PLAINTEXT) + TAG_SIZE
    assert PLAINTEXT not in sealed
    assert cipher.open(NONCE, sealed, AAD) == PLAINTEXT
    assert cipher.open(NONCE, memoryview(sealed), AAD) == PLAINTEXT
    assert cipher.open(NONCE, cipher.seal(NONCE, b"", AAD), AAD) == b""


@pytest.mark.parametrize("name", CIPHER_NAMES)
def test_cipher_detects_every_flipped_byte(name: str) -> None:
    key = bytes(range(cipher_spec(name).key_size))
    cipher = make_cipher(name, key)
    sealed = cipher.seal(NONCE, PLAINTEXT, AAD)
    for position in range(len(sealed)):
        damaged = bytearray(sealed)
        damaged[position] ^= 0x80
        with pytest.raises(AuthenticationFailed):
            cipher.open(NONCE, bytes(damaged), AAD)


@pytest.mark.parametrize("name", CIPHER_NAMES)
def test_cipher_detects_wrong_aad_nonce_key_and_short_input(name: str) -> None:
    size = cipher_spec(name).key_size
    cipher = make_cipher(name, bytes(range(size)))
    sealed = cipher.seal(NONCE, PLAINTEXT, AAD)
    with pytest.raises(AuthenticationFailed):
        cipher.open(NONCE, sealed, AAD + b"!")
    with pytest.raises(AuthenticationFailed):
        cipher.open(bytes(12), sealed, AAD)
    with pytest.raises(AuthenticationFailed):
        make_cipher(name, bytes(size)).open(NONCE, sealed, AAD)
    with pytest.raises(AuthenticationFailed):
        cipher.open(NONCE, sealed[: TAG_SIZE - 1], AAD)


@pytest.mark.parametrize("name", CIPHER_NAMES)
def test_cipher_refuses_a_key_of_the_wrong_size(name: str) -> None:
    with pytest.raises(ValueError, match="byte key"):
        make_cipher(name, bytes(cipher_spec(name).key_size + 1))


def test_key_sizes() -> None:
    assert [cipher_spec(n).key_size for n in CIPHER_NAMES] == [32, 32, 16]


def test_unknown_names_fail_with_the_known_ones() -> None:
    with pytest.raises(UsageError, match="aes-256-gcm, chacha20-poly1305, sm4-gcm"):
        make_cipher("des", bytes(8))
    with pytest.raises(UsageError, match="blake3, hmac-sha256, hmac-sm3"):
        make_keyed_hash("md5", bytes(32))


def test_sm4_gcm_rfc8998_vector() -> None:
    cipher = make_cipher("sm4-gcm", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"))
    plaintext = bytes.fromhex("".join(c * 16 for c in "ABCDEFEA"))  # 64 bytes
    sealed = cipher.seal(
        bytes.fromhex("00001234567800000000ABCD"),
        plaintext,
        bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2"),
    )
    assert sealed.hex() == (
        "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
        "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
        "83de3541e4c2b58177e065a9bf7b62ec"
    )


def test_aes_256_gcm_known_answer() -> None:
    sealed = make_cipher("aes-256-gcm", bytes(32)).seal(bytes(12), bytes(16), b"")
    assert sealed.hex() == "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"


def test_chacha20_poly1305_rfc8439_vector() -> None:
    plaintext = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
        b"for the future, sunscreen would be it."
    )
    sealed = make_cipher("chacha20-poly1305", bytes(range(0x80, 0xA0))).seal(
        bytes.fromhex("070000004041424344454647"),
        plaintext,
        bytes.fromhex("50515253c0c1c2c3c4c5c6c7"),
    )
    assert sealed[:16].hex() == "d31a8d34648e60db7b86afbc53ef7ec2"
    assert sealed[-16:].hex() == "1ae10b594f09e26a7e902ecbd0600691"


@pytest.mark.parametrize("name", HASH_NAMES)
def test_keyed_hash_is_32_bytes_and_depends_on_key_and_data(name: str) -> None:
    digest = make_keyed_hash(name, bytes(32))
    assert len(digest(b"abc")) == 32
    assert digest(b"abc") == make_keyed_hash(name, bytes(32))(memoryview(b"abc"))
    assert digest(b"abc") != digest(b"abd")
    assert digest(b"abc") != make_keyed_hash(name, bytes(31) + b"\x01")(b"abc")


def test_keyed_hashes_match_reference_implementations() -> None:
    key = bytes(range(32))
    data = b"what do ya want for nothing?"
    assert make_keyed_hash("blake3", key)(data) == blake3.blake3(data, key=key).digest()
    assert make_keyed_hash("hmac-sha256", b"Jefe")(data).hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"  # RFC 4231 case 2
    )
    sm3 = hmac.new(key, data, lambda: hashlib.new("sm3")).digest()
    assert make_keyed_hash("hmac-sm3", key)(data) == sm3
    assert hashlib.new("sm3", b"abc").hexdigest() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"  # GB/T 32905 A.1
    )


def test_sha256() -> None:
    assert sha256(b"").hex().startswith("e3b0c44298fc1c14")
