"""Master key and key slots.

The master key is three random 32-byte secrets: ``enc`` (root of every encryption subkey),
``mac`` (blob IDs, config MAC) and ``chunker`` (the keyed gear table). A key slot wraps the master
key under a key derived from one password with scrypt; several slots can open one repository and
any one can be removed. A slot is stored as ``keys/<sha256 of the file>``, so a flipped byte in a
slot is detected before any password is tried.

Key slot file (UTF-8 JSON, one object):
    version 1, created (RFC 3339 UTC), hostname, username, kdf "scrypt", n, r, p,
    salt (base64, 32 bytes), cipher (a name from crypto.CIPHERS), nonce (base64, 12 bytes),
    data (base64 of AEAD(kek, nonce, master JSON, aad=b"drvault key v1")).
kek = scrypt(password, salt, n, r, p, dklen=32), cut to the cipher's key size.
Master JSON: {"version":1,"repository":hex id,"enc":b64,"mac":b64,"chunker":b64}.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drvault.errors import UsageError

if TYPE_CHECKING:
    from drvault.repository.crypto import Aead

# drvault.repository.crypto (and with it the cryptography package) is imported where a cipher
# is needed, not here: a command reads its key slots and starts scrypt before those imports
# (see drvault.repository.unlock).

KEY_AAD = b"drvault key v1"


@dataclass(frozen=True)
class KdfParams:
    """scrypt cost. The default (n=2**15, r=8, p=3: OWASP's 32 MiB setting, as much work as
    n=2**17, p=1) takes ~0.2 s and 32 MiB; 128 MiB would dominate a backup's peak memory."""

    n: int = 2**15
    r: int = 8
    p: int = 3

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.r < 1 or self.p < 1:
            raise UsageError(f"invalid scrypt parameters n={self.n} r={self.r} p={self.p}")

    @classmethod
    def parse(cls, text: str) -> KdfParams:
        """``"n=1024,r=8,p=1"`` (any subset) -> KdfParams."""
        values: dict[str, int] = {}
        for part in filter(None, text.split(",")):
            key, _, value = part.partition("=")
            if key not in ("n", "r", "p") or not value.isdigit():
                raise UsageError(f"invalid KDF setting {part!r} (expected n=, r=, p=)")
            values[key] = int(value)
        return cls(**values)


@dataclass(frozen=True)
class MasterKey:
    repository_id: bytes
    enc: bytes
    mac: bytes
    chunker: bytes

    @classmethod
    def generate(cls, repository_id: bytes) -> MasterKey:
        return cls(repository_id, os.urandom(32), os.urandom(32), os.urandom(32))

    def to_json(self) -> bytes:
        doc = {
            "version": 1,
            "repository": self.repository_id.hex(),
            "enc": _b64(self.enc),
            "mac": _b64(self.mac),
            "chunker": _b64(self.chunker),
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> MasterKey:
        doc = json.loads(data)
        return cls(
            bytes.fromhex(doc["repository"]),
            _unb64(doc["enc"]),
            _unb64(doc["mac"]),
            _unb64(doc["chunker"]),
        )


@dataclass(frozen=True)
class KeySlot:
    """One parsed key slot file; ``name`` is its object name (``keys/<hex>``)."""

    name: str
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def derive(self, password: bytes) -> bytes:
        """The key-encryption key this slot derives from ``password`` (scrypt: the slow part,
        run with the GIL released)."""
        d = self.doc
        return _kdf(password, _unb64(d["salt"]), KdfParams(d["n"], d["r"], d["p"]))

    def unwrap(self, password: bytes, kek: bytes | None = None) -> MasterKey | None:
        """The master key, or None when the password does not open this slot. ``kek``: this
        slot's :meth:`derive` of ``password``, when already done."""
        from drvault.repository.crypto import AuthenticationFailed

        d = self.doc
        if kek is None:
            kek = self.derive(password)
        try:
            plain = _kek_cipher(d["cipher"], kek).open(
                _unb64(d["nonce"]), _unb64(d["data"]), KEY_AAD
            )
        except AuthenticationFailed:
            return None
        return MasterKey.from_json(plain)


class MalformedKeySlot(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


# OpenSSL's bound on scrypt's memory (hashlib.scrypt's maxmem), kept with libsodium: a key slot
# asking for more is refused as malformed, never tried.
_MAX_SCRYPT_MEMORY = 2**31 - 1


def scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, maxmem: int) -> bytes:
    """scrypt (RFC 7914), 32 bytes, by libsodium through PyNaCl, with the GIL released.

    libsodium's salsa20/8 uses SSE2: the default cost (n=2**15, r=8, p=3) takes 0.20 s here
    against 0.32 s for OpenSSL's (hashlib.scrypt), with the same output; every command pays it
    once. PyNaCl is installed with paramiko anyway. Imported here, in the thread that derives.
    """
    from nacl.bindings import crypto_pwhash_scryptsalsa208sha256_ll

    return crypto_pwhash_scryptsalsa208sha256_ll(password, salt, n, r, p, dklen=32, maxmem=maxmem)


def _kdf(password: bytes, salt: bytes, params: KdfParams) -> bytes:
    """scrypt, 32 bytes; a cipher with a shorter key takes their start (_kek_cipher).
    ValueError for a cost at or beyond the memory bound."""
    maxmem = 128 * params.r * params.n * params.p + 2**20
    if maxmem >= _MAX_SCRYPT_MEMORY:
        raise ValueError(f"scrypt would need {maxmem} bytes, above {_MAX_SCRYPT_MEMORY}")
    return scrypt(password, salt, params.n, params.r, params.p, maxmem)


def _kek_cipher(cipher: str, kek: bytes) -> Aead:
    """``cipher`` keyed with the start of a derived key."""
    from drvault.repository.crypto import cipher_spec, make_cipher

    return make_cipher(cipher, kek[: cipher_spec(cipher).key_size])


def wrap(master: MasterKey, password: bytes, cipher: str, params: KdfParams) -> tuple[str, bytes]:
    """A new key slot for ``password``: (object name, file bytes)."""
    salt = os.urandom(32)
    nonce = os.urandom(12)
    data = _kek_cipher(cipher, _kdf(password, salt, params)).seal(nonce, master.to_json(), KEY_AAD)
    doc = {
        "version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hostname": socket.gethostname(),
        "username": getpass.getuser(),
        "kdf": "scrypt",
        "n": params.n,
        "r": params.r,
        "p": params.p,
        "salt": _b64(salt),
        "cipher": cipher,
        "nonce": _b64(nonce),
        "data": _b64(data),
    }
    raw = json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"
    return f"keys/{hashlib.sha256(raw).hexdigest()}", raw


def parse_slot(name: str, raw: bytes) -> KeySlot:
    """Verify a slot file against its name and parse it; raises MalformedKeySlot."""
    slot = parse_slot_fields(name, raw)
    check_cipher(slot)
    return slot


def parse_slot_fields(name: str, raw: bytes) -> KeySlot:
    """:func:`parse_slot` but for the cipher's name, which :func:`check_cipher` checks: that
    needs the cipher table, and with it the cryptography package (a slow import)."""
    if hashlib.sha256(raw).hexdigest() != name.rsplit("/", 1)[-1]:
        raise MalformedKeySlot("content does not match its name (SHA-256 mismatch)")
    try:
        doc = json.loads(raw)
        if doc.get("version") != 1 or doc.get("kdf") != "scrypt":
            raise MalformedKeySlot("unsupported key slot version or KDF")
        for field, kind in (
            ("n", int),
            ("r", int),
            ("p", int),
            ("salt", str),
            ("cipher", str),
            ("nonce", str),
            ("data", str),
        ):
            if not isinstance(doc.get(field), kind):
                raise MalformedKeySlot(f"field {field!r} missing or malformed")
    except ValueError as exc:
        raise MalformedKeySlot(str(exc)) from exc
    return KeySlot(name, doc)


def check_cipher(slot: KeySlot) -> None:
    """Raise MalformedKeySlot unless the slot names a known cipher."""
    from drvault.repository.crypto import cipher_spec

    try:
        cipher_spec(slot.doc["cipher"])
    except UsageError as exc:
        raise MalformedKeySlot(str(exc)) from exc
