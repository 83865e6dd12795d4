"""The sealed envelope of index files and snapshots."""

from __future__ import annotations

import pytest

from drvault.repository import envelope
from drvault.repository.envelope import INDEX_MAGIC, SNAPSHOT_MAGIC, MalformedEnvelope
from drvault.repository.suite import Suite

KEY = bytes(range(32))
PACKS = [bytes([9]) * 32, bytes([1]) * 32, bytes([9]) * 32, bytes([5]) * 32]
BODY = b'{"some": "document"}' * 20


@pytest.mark.parametrize("suite", ["intl", "gm"])
@pytest.mark.parametrize("magic", [INDEX_MAGIC, SNAPSHOT_MAGIC])
def test_seal_parse_open_round_trip(suite: str, magic: bytes) -> None:
    chosen = Suite.choose(suite)
    raw = envelope.seal(magic, chosen, KEY, PACKS, BODY)
    env = envelope.parse(raw, magic)  # keyless
    assert env.magic == magic
    assert env.packs == tuple(sorted(set(PACKS)))
    assert raw[:4] == magic
    assert raw[24:28] == (3).to_bytes(4, "little")
    assert raw[28 : 28 + 96] == b"".join(sorted(set(PACKS)))
    assert envelope.open_body(env, chosen, KEY) == BODY
    assert envelope.seal(magic, chosen, KEY, PACKS, BODY) != raw  # fresh salt each time


def test_empty_pack_list_and_body() -> None:
    chosen = Suite.choose("intl")
    env = envelope.parse(envelope.seal(INDEX_MAGIC, chosen, KEY, [], b""), INDEX_MAGIC)
    assert env.packs == ()
    assert envelope.open_body(env, chosen, KEY) == b""


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_every_tampered_byte_is_detected(suite: str) -> None:
    chosen = Suite.choose(suite)
    raw = envelope.seal(SNAPSHOT_MAGIC, chosen, KEY, PACKS, BODY)
    for position in range(len(raw)):
        damaged = bytearray(raw)
        damaged[position] ^= 0x01
        with pytest.raises(MalformedEnvelope):
            envelope.open_body(envelope.parse(bytes(damaged), SNAPSHOT_MAGIC), chosen, KEY)


def test_wrong_magic_truncation_and_wrong_key() -> None:
    chosen = Suite.choose("intl")
    raw = envelope.seal(INDEX_MAGIC, chosen, KEY, PACKS, BODY)
    with pytest.raises(MalformedEnvelope, match="magic"):
        envelope.parse(raw, SNAPSHOT_MAGIC)
    for cut in (0, 20, 28, 28 + 96 + 15):
        with pytest.raises(MalformedEnvelope, match="truncated"):
            envelope.parse(raw[:cut], INDEX_MAGIC)
    with pytest.raises(MalformedEnvelope, match="authentication failed"):
        envelope.open_body(envelope.parse(raw, INDEX_MAGIC), chosen, bytes(32))
    with pytest.raises(MalformedEnvelope, match="version"):
        envelope.parse(raw[:4] + b"\x02" + raw[5:], INDEX_MAGIC)


def test_body_size_limit() -> None:
    chosen = Suite.choose("intl")
    raw = envelope.seal(SNAPSHOT_MAGIC, chosen, KEY, [], bytes(10_000))
    env = envelope.parse(raw, SNAPSHOT_MAGIC)
    assert envelope.open_body(env, chosen, KEY, max_size=10_000) == bytes(10_000)
    with pytest.raises(MalformedEnvelope, match="limit"):
        envelope.open_body(env, chosen, KEY, max_size=9_999)
