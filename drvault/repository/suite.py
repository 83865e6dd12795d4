"""Crypto suites: the allowed combinations of cipher and blob-ID hash.

``intl``: AES-256-GCM (default) or ChaCha20-Poly1305; keyed BLAKE3 (default) or HMAC-SHA-256.
``gm``: SM4-GCM with HMAC-SM3, for deployments that must use Chinese commercial cryptography
(GM/T, checked under 密评). A suite also fixes the key-derivation hash for subkeys: HMAC-SHA-256
for ``intl`` and HMAC-SM3 for ``gm``, so a ``gm`` repository uses no non-GM primitive past the
password KDF.
"""

from __future__ import annotations

from dataclasses import dataclass

from drvault.errors import UsageError
from drvault.repository.crypto import Aead, KeyedHash, cipher_spec, make_cipher, make_keyed_hash


@dataclass(frozen=True)
class SuiteRule:
    ciphers: tuple[str, ...]
    id_hashes: tuple[str, ...]
    kdf_hash: str


SUITES: dict[str, SuiteRule] = {
    "intl": SuiteRule(
        ("aes-256-gcm", "chacha20-poly1305"), ("blake3", "hmac-sha256"), "hmac-sha256"
    ),
    "gm": SuiteRule(("sm4-gcm",), ("hmac-sm3",), "hmac-sm3"),
}


@dataclass(frozen=True)
class Suite:
    name: str
    cipher: str
    id_hash: str

    @classmethod
    def choose(cls, name: str, cipher: str | None = None, id_hash: str | None = None) -> Suite:
        rule = SUITES.get(name)
        if rule is None:
            raise UsageError(f"unknown crypto suite {name!r} (known: {', '.join(sorted(SUITES))})")
        cipher = cipher or rule.ciphers[0]
        id_hash = id_hash or rule.id_hashes[0]
        if cipher not in rule.ciphers:
            raise UsageError(f"suite {name} allows ciphers {', '.join(rule.ciphers)}, not {cipher}")
        if id_hash not in rule.id_hashes:
            raise UsageError(
                f"suite {name} allows blob-ID hashes {', '.join(rule.id_hashes)}, not {id_hash}"
            )
        return cls(name, cipher, id_hash)

    @property
    def key_size(self) -> int:
        return cipher_spec(self.cipher).key_size

    def derive(self, key: bytes, label: bytes, salt: bytes = b"") -> bytes:
        """A subkey for ``label`` and ``salt``: their keyed hash, cut to the cipher's key size."""
        kdf = make_keyed_hash(SUITES[self.name].kdf_hash, key)
        return kdf(b"drvault subkey v1\0" + label + b"\0" + salt)[: self.key_size]

    def cipher_for(self, key: bytes, label: bytes, salt: bytes = b"") -> Aead:
        return make_cipher(self.cipher, self.derive(key, label, salt))

    def id_hasher(self, mac_key: bytes) -> KeyedHash:
        return make_keyed_hash(self.id_hash, mac_key)
