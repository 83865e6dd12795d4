"""Cryptographic primitives by name: AEAD ciphers and keyed hashes.

Names are written into the repository config and key slots and stay readable forever; an unknown
name fails with the list of known ones. Every function here is pure.

Ciphers (``seal(nonce, plaintext, aad) -> ciphertext || 16-byte tag``, 12-byte nonces):
    aes-256-gcm, chacha20-poly1305 (32-byte keys), sm4-gcm (16-byte key, GB/T 32907 + GCM).
Keyed hashes (32-byte output, 32-byte key):
    blake3 (keyed mode), hmac-sha256, hmac-sm3 (GB/T 32905).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from drvault.errors import UsageError

_T = TypeVar("_T")

TAG_SIZE = 16
NONCE_SIZE = 12

Buffer = bytes | bytearray | memoryview


class AuthenticationFailed(Exception):
    """The ciphertext, its tag or its associated data was altered, or the key is wrong."""


class Aead(Protocol):
    def seal(self, nonce: bytes, plaintext: Buffer, aad: bytes) -> bytes: ...

    def open(self, nonce: bytes, ciphertext: Buffer, aad: bytes) -> bytes: ...


class _PycaAead:
    """AES-GCM and ChaCha20-Poly1305 through pyca/cryptography's one-shot AEAD API."""

    def __init__(self, impl: AESGCM | ChaCha20Poly1305) -> None:
        self._impl = impl

    def seal(self, nonce: bytes, plaintext: Buffer, aad: bytes) -> bytes:
        return self._impl.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: Buffer, aad: bytes) -> bytes:
        try:
            return self._impl.decrypt(nonce, ciphertext, aad)
        except InvalidTag as exc:
            raise AuthenticationFailed from exc


class _Sm4Gcm:
    """SM4 in GCM mode (RFC 8998) through the streaming cipher API."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def seal(self, nonce: bytes, plaintext: Buffer, aad: bytes) -> bytes:
        enc = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        out = enc.update(plaintext) + enc.finalize()
        return out + enc.tag

    def open(self, nonce: bytes, ciphertext: Buffer, aad: bytes) -> bytes:
        view = memoryview(ciphertext)
        if len(view) < TAG_SIZE:
            raise AuthenticationFailed
        dec = Cipher(
            algorithms.SM4(self._key), modes.GCM(nonce, bytes(view[-TAG_SIZE:]))
        ).decryptor()
        dec.authenticate_additional_data(aad)
        try:
            return dec.update(view[:-TAG_SIZE]) + dec.finalize()
        except InvalidTag as exc:
            raise AuthenticationFailed from exc


@dataclass(frozen=True)
class CipherSpec:
    name: str
    key_size: int
    factory: Callable[[bytes], Aead]


CIPHERS: dict[str, CipherSpec] = {
    "aes-256-gcm": CipherSpec("aes-256-gcm", 32, lambda k: _PycaAead(AESGCM(k))),
    "chacha20-poly1305": CipherSpec(
        "chacha20-poly1305", 32, lambda k: _PycaAead(ChaCha20Poly1305(k))
    ),
    "sm4-gcm": CipherSpec("sm4-gcm", 16, _Sm4Gcm),
}

KeyedHash = Callable[[Buffer], bytes]


def _blake3(key: bytes) -> KeyedHash:
    def digest(data: Buffer) -> bytes:
        return blake3.blake3(data, key=key).digest()

    return digest


def _hmac_sha256(key: bytes) -> KeyedHash:
    def digest(data: Buffer) -> bytes:
        return hmac.digest(key, data, "sha256")

    return digest


def _hmac_sm3(key: bytes) -> KeyedHash:
    def digest(data: Buffer) -> bytes:
        mac = crypto_hmac.HMAC(key, hashes.SM3())
        mac.update(data)
        return mac.finalize()

    return digest


KEYED_HASHES: dict[str, Callable[[bytes], KeyedHash]] = {
    "blake3": _blake3,
    "hmac-sha256": _hmac_sha256,
    "hmac-sm3": _hmac_sm3,
}


def _lookup(registry: dict[str, _T], kind: str, name: str) -> _T:
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise UsageError(f"unknown {kind} {name!r} (known: {known})") from None


def cipher_spec(name: str) -> CipherSpec:
    return _lookup(CIPHERS, "cipher", name)


def make_cipher(name: str, key: bytes) -> Aead:
    spec = cipher_spec(name)
    if len(key) != spec.key_size:
        raise ValueError(f"{name} needs a {spec.key_size}-byte key")
    return spec.factory(key)


def make_keyed_hash(name: str, key: bytes) -> KeyedHash:
    return _lookup(KEYED_HASHES, "keyed hash", name)(key)


def sha256(data: Buffer) -> bytes:
    return hashlib.sha256(data).digest()
