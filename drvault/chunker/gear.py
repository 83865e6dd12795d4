"""Gear tables: the 256 random 64-bit values the FastCDC gear hash adds per input byte.

Two derivations exist. Both are FORMAT CONSTANTS: a repository's chunk boundaries depend
on them, so once data has been written with one, its definition can never change.

Canonical table (``canonical_gear``), reproduces the published FastCDC cut points::

    entry[i] = int.from_bytes(MD5(bytes([i]) * 64)[:8], "big")        for i in 0..255

i.e. the first 8 bytes, read big-endian, of the MD5 digest of 64 bytes all equal to i.
This is the table of the paper authors' C code and of the fastcdc crate (entry 0 is
0x3b5d3c7d207e37dc, entry 255 is 0xaabd2b2a451504e1).

Keyed table (``keyed_gear``), the default for new repositories, version 1::

    entry[i] = int.from_bytes(
        HMAC-SHA-256(key=secret, msg=b"drvault gear v1" + bytes([i]))[:8], "big"
    )                                                                   for i in 0..255

where `secret` is the repository's 32-byte chunker secret and the message is the 15
ASCII bytes ``drvault gear v1`` followed by the single byte i. A table derived from a
secret makes chunk boundaries, and so chunk sizes, useless for fingerprinting known
files by an observer who lacks the secret.

In memory both are returned as 2048 bytes: the 256 entries as unsigned 64-bit integers
in the machine's NATIVE byte order, the layout the C extension reads directly. That byte
string is a runtime form only and is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from functools import cache
from typing import Final

__all__ = [
    "GEAR_BYTES",
    "KEYED_GEAR_CONTEXT",
    "SECRET_BYTES",
    "canonical_gear",
    "gear_entries",
    "keyed_gear",
]

GEAR_ENTRIES: Final = 256
GEAR_BYTES: Final = GEAR_ENTRIES * 8
SECRET_BYTES: Final = 32
KEYED_GEAR_CONTEXT: Final = b"drvault gear v1"

_NATIVE_TABLE: Final = struct.Struct(f"={GEAR_ENTRIES}Q")


def _pack(entries: list[int]) -> bytes:
    return _NATIVE_TABLE.pack(*entries)


@cache
def canonical_gear() -> bytes:
    """Return the canonical (published) gear table, 2048 bytes native-endian."""
    return _pack(
        [
            int.from_bytes(hashlib.md5(bytes([i]) * 64, usedforsecurity=False).digest()[:8], "big")
            for i in range(GEAR_ENTRIES)
        ]
    )


def keyed_gear(secret: bytes) -> bytes:
    """Return the gear table derived from a 32-byte repository secret (see module doc)."""
    if not isinstance(secret, bytes | bytearray | memoryview):
        raise TypeError(f"secret must be bytes, got {type(secret).__name__}")
    key = bytes(secret)
    if len(key) != SECRET_BYTES:
        raise ValueError(f"secret must be {SECRET_BYTES} bytes, got {len(key)}")
    return _pack(
        [
            int.from_bytes(
                hmac.digest(key, KEYED_GEAR_CONTEXT + bytes([i]), hashlib.sha256)[:8], "big"
            )
            for i in range(GEAR_ENTRIES)
        ]
    )


def gear_entries(gear: bytes) -> tuple[int, ...]:
    """Decode a 2048-byte native-endian table into its 256 integer entries."""
    if len(gear) != GEAR_BYTES:
        raise ValueError(
            f"gear must be {GEAR_BYTES} bytes (256 native-endian uint64), got {len(gear)}"
        )
    return _NATIVE_TABLE.unpack(gear)
