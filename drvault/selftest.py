"""Known-answer tests run by ``drvault selftest``: a broken build or library is caught at once.

Vectors: RFC 8998 A.1 (SM4-GCM), the GCM specification's test case 14 (AES-256-GCM), RFC 8439
2.8.2 (ChaCha20-Poly1305), RFC 4231 case 2 (HMAC-SHA-256), GB/T 32905 A.1 (SM3 "abc", via
HMAC-SM3's hash), BLAKE3's empty-input hash, the chunker's own vectors, and a pack round trip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import blake3
from cryptography.hazmat.primitives import hashes

from drvault import chunker
from drvault.repository.crypto import make_cipher, make_keyed_hash
from drvault.repository.pack import PackWriter, read_entries
from drvault.repository.suite import Suite


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    detail: str = ""


def _sm4_gcm() -> bool:
    c = make_cipher("sm4-gcm", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"))
    pt = bytes.fromhex("".join(ch * 16 for ch in "ABCDEFEA"))
    out = c.seal(
        bytes.fromhex("00001234567800000000ABCD"),
        pt,
        bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2"),
    )
    return out.hex() == (
        "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
        "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
        "83de3541e4c2b58177e065a9bf7b62ec"
    )


def _aes_gcm() -> bool:
    out = make_cipher("aes-256-gcm", bytes(32)).seal(bytes(12), bytes(16), b"")
    return out.hex() == "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"


def _chacha() -> bool:
    key = bytes(range(0x80, 0xA0))
    nonce = bytes.fromhex("070000004041424344454647")
    aad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    pt = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
        b"for the future, sunscreen would be it."
    )
    out = make_cipher("chacha20-poly1305", key).seal(nonce, pt, aad)
    return out[-16:].hex() == "1ae10b594f09e26a7e902ecbd0600691"


def _hmac_sha256() -> bool:
    mac = make_keyed_hash("hmac-sha256", b"Jefe")(b"what do ya want for nothing?")
    return mac.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def _sm3() -> bool:
    h = hashes.Hash(hashes.SM3())
    h.update(b"abc")
    digest = h.finalize().hex()
    mac_ok = len(make_keyed_hash("hmac-sm3", bytes(32))(b"abc")) == 32
    return mac_ok and digest == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def _blake3() -> bool:
    return blake3.blake3(b"").hexdigest() == (
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )


def _pack_round_trip() -> bool:
    key = bytes(range(32))
    for suite in (Suite.choose("intl"), Suite.choose("gm")):
        cipher_for = functools.partial(suite.cipher_for, key, b"pack")
        writer = PackWriter("data", cipher_for)
        writer.add(bytes(32), 0, 0, b"hello", 5)
        _name, data = writer.finish()
        _kind, entries = read_entries(cipher_for, data)
        if len(entries) != 1 or entries[0].raw_length != 5:
            return False
    return True


def _chunker() -> bool:
    chunker.selftest()
    return True


CHECKS: list[tuple[str, Callable[[], bool]]] = [
    ("chunker (FastCDC 2020 vectors, " + chunker.IMPLEMENTATION + ")", _chunker),
    ("AES-256-GCM (GCM spec test case 14)", _aes_gcm),
    ("ChaCha20-Poly1305 (RFC 8439 2.8.2)", _chacha),
    ("SM4-GCM (RFC 8998 A.1)", _sm4_gcm),
    ("HMAC-SHA-256 (RFC 4231 case 2)", _hmac_sha256),
    ("SM3 / HMAC-SM3 (GB/T 32905)", _sm3),
    ("BLAKE3 (empty input)", _blake3),
    ("pack seal/open round trip (intl, gm)", _pack_round_trip),
]


def run() -> list[Outcome]:
    out = []
    for name, fn in CHECKS:
        try:
            ok = fn()
            out.append(Outcome(name, ok, "" if ok else "wrong answer"))
        except Exception as exc:  # a selftest reports every failure, whatever it is
            out.append(Outcome(name, False, f"{type(exc).__name__}: {exc}"))
    return out
