"""Gear tables: canonical derivation against the reference table, keyed derivation."""

from __future__ import annotations

import hashlib
import hmac
import struct
import sys

import pytest

from drvault.chunker import Chunker, ChunkerParams, canonical_gear, keyed_gear
from drvault.chunker.gear import GEAR_BYTES, gear_entries

# First and last rows of the GEAR table in the fastcdc crate (src/v2020/mod.rs).
REFERENCE_HEAD = (
    0x3B5D3C7D207E37DC,
    0x784D68BA91123086,
    0xCD52880F882E7298,
    0xEACF8E4E19FDCCA7,
    0xC31F385DFBD1632B,
    0x1D5F27001E25ABE6,
    0x83130BDE3C9AD991,
    0xC4B225676E9B7649,
)
REFERENCE_TAIL = (0x8E3E4221D3614413, 0xEF14D0D86BF1A22C, 0xE1D830D3F16C5DDB, 0xAABD2B2A451504E1)


def test_canonical_gear_matches_reference_table() -> None:
    entries = gear_entries(canonical_gear())
    assert entries[:8] == REFERENCE_HEAD
    assert entries[-4:] == REFERENCE_TAIL


def test_canonical_gear_derivation() -> None:
    expected = [
        int.from_bytes(hashlib.md5(bytes([i]) * 64).digest()[:8], "big") for i in range(256)
    ]
    assert list(gear_entries(canonical_gear())) == expected


def test_gear_is_native_endian_uint64() -> None:
    gear = canonical_gear()
    assert len(gear) == GEAR_BYTES == 2048
    assert gear[:8] == REFERENCE_HEAD[0].to_bytes(8, sys.byteorder)
    assert struct.unpack("=256Q", gear)[0] == REFERENCE_HEAD[0]


def test_keyed_gear_derivation() -> None:
    secret = bytes(range(32))
    expected = [
        int.from_bytes(
            hmac.new(secret, b"drvault gear v1" + bytes([i]), hashlib.sha256).digest()[:8],
            "big",
        )
        for i in range(256)
    ]
    assert list(gear_entries(keyed_gear(secret))) == expected


def test_keyed_gear_known_answer() -> None:
    # A format constant: this value must never change.
    assert gear_entries(keyed_gear(bytes(range(32))))[0] == 0xCC7B559CA743A4ED


def test_keyed_gear_is_deterministic() -> None:
    secret = b"\x42" * 32
    assert keyed_gear(secret) == keyed_gear(bytearray(secret)) == keyed_gear(secret)


def test_different_secrets_give_different_tables_and_cut_points() -> None:
    first, second = keyed_gear(b"\x01" * 32), keyed_gear(b"\x02" * 32)
    assert first != second
    assert first != canonical_gear()
    assert len(set(gear_entries(first)) & set(gear_entries(second))) == 0
    data = hashlib.shake_256(b"cut points").digest(64 * 1024)
    params = ChunkerParams.for_average(1024)
    cuts = [Chunker(params, gear).cut_points(data) for gear in (first, second, canonical_gear())]
    assert cuts[0] != cuts[1]
    assert cuts[0] != cuts[2]
    assert cuts[1] != cuts[2]


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_keyed_gear_rejects_wrong_secret_size(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        keyed_gear(bytes(size))


def test_keyed_gear_rejects_str() -> None:
    with pytest.raises(TypeError):
        keyed_gear("x" * 32)  # type: ignore[arg-type]


def test_gear_entries_rejects_wrong_size() -> None:
    with pytest.raises(ValueError, match="2048"):
        gear_entries(bytes(2047))
