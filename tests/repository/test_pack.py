"""Pack files: writer and reader round trip; any tampered byte is caught."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from drvault.repository.crypto import AuthenticationFailed, sha256
from drvault.repository.pack import (
    BLOB_DATA,
    BLOB_TREE,
    COMP_NONE,
    COMP_ZSTD,
    PRELUDE,
    MalformedPack,
    PackEntry,
    PackWriter,
    blob_aad,
    blob_nonce,
    read_entries,
)
from drvault.repository.suite import Suite

KEY = bytes(range(32))
BLOBS = [
    (bytes([1]) * 32, BLOB_DATA, COMP_NONE, b"first blob"),
    (bytes([2]) * 32, BLOB_DATA, COMP_ZSTD, b"second (pretend compressed)" * 3),
    (bytes([3]) * 32, BLOB_DATA, COMP_NONE, b""),
]


def _cipher_for(suite: Suite, key: bytes = KEY):
    return lambda salt: suite.cipher_for(key, b"pack", salt)


def _write(suite: Suite, kind: str = "data") -> tuple[bytes, bytes, list[PackEntry]]:
    writer = PackWriter(kind, _cipher_for(suite))
    for blob_id, blob_type, compression, data in BLOBS:
        blob_type = blob_type if kind == "data" else BLOB_TREE
        writer.add(blob_id, blob_type, compression, data, len(data))
    entries = list(writer.entries)
    name, view = writer.finish()  # a view of the writer's buffer
    return name, bytes(view), entries


def _open_all(suite: Suite, raw: bytes, key: bytes = KEY) -> list[bytes]:
    """read_entries, then open every blob record: what a reader of this pack does."""
    _kind, entries = read_entries(_cipher_for(suite, key), raw)
    salt = raw[8:24]
    cipher = suite.cipher_for(key, b"pack", salt)
    return [
        cipher.open(
            blob_nonce(e.offset),
            raw[e.offset : e.offset + e.length],
            blob_aad(e.blob_id, e.type, e.compression),
        )
        for e in entries
    ]


@pytest.mark.parametrize("suite", ["intl", "gm"])
@pytest.mark.parametrize("kind", ["data", "tree"])
def test_round_trip(suite: str, kind: str) -> None:
    chosen = Suite.choose(suite)
    name, raw, written = _write(chosen, kind)
    assert name == sha256(raw)
    assert raw.startswith(b"DRVP\x01") and raw.endswith(b"DRVE")
    code, entries = read_entries(_cipher_for(chosen), raw)
    assert code == {"data": 0, "tree": 1}[kind]
    assert entries == written
    assert [e.blob_id for e in entries] == [b[0] for b in BLOBS]
    assert [e.raw_length for e in entries] == [len(b[3]) for b in BLOBS]
    assert len({e.offset for e in entries}) == len(entries)  # distinct nonces
    assert entries[0].offset == PRELUDE.size
    assert _open_all(chosen, raw) == [b[3] for b in BLOBS]


def test_blobs_filled_out_of_order_from_threads_while_the_buffer_grows() -> None:
    chosen = Suite.choose("intl")
    writer = PackWriter("data", _cipher_for(chosen), capacity=4096)  # grows on the 2nd reserve
    blobs = [(bytes([i]) * 32, bytes([i]) * (4000 if i == 1 else 50 * i)) for i in range(1, 9)]
    first = writer.reserve(blobs[0][0], BLOB_DATA, COMP_NONE, len(blobs[0][1]), 1)
    grown = threading.Event()

    def reserve_rest() -> list[PackEntry]:  # must wait for the first fill before growing
        rest = [writer.reserve(i, BLOB_DATA, COMP_NONE, len(d), 1) for i, d in blobs[1:]]
        grown.set()
        return rest

    with ThreadPoolExecutor(4) as pool:
        later = pool.submit(reserve_rest)
        assert not grown.wait(0.2)  # a fill is pending: the buffer may not move yet
        writer.fill(first, blobs[0][1])
        entries = [first, *later.result(timeout=10)]
        done = pool.submit(writer.finish)
        time.sleep(0.1)
        assert not done.done()  # finish waits for every reserved blob
        list(pool.map(lambda k: writer.fill(entries[k], blobs[k][1]), reversed(range(1, 8))))
        name, view = done.result(timeout=10)
    raw = bytes(view)
    assert name == sha256(raw)
    assert _open_all(chosen, raw) == [d for _, d in blobs]


def test_salts_make_equal_content_differ() -> None:
    chosen = Suite.choose("intl")
    assert _write(chosen)[1] != _write(chosen)[1]


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_any_tampered_byte_fails_read_entries_or_open(suite: str) -> None:
    chosen = Suite.choose(suite)
    _name, raw, _entries = _write(chosen)
    for position in range(len(raw)):
        for mask in (0x01, 0x80):
            damaged = bytearray(raw)
            damaged[position] ^= mask
            with pytest.raises((MalformedPack, AuthenticationFailed)):
                _open_all(chosen, bytes(damaged))


def test_truncated_or_foreign_packs_fail() -> None:
    chosen = Suite.choose("intl")
    _name, raw, _entries = _write(chosen)
    for cut in (0, 10, PRELUDE.size, PRELUDE.size + 7, len(raw) // 2, len(raw) - 1):
        with pytest.raises(MalformedPack):
            read_entries(_cipher_for(chosen), raw[:cut])
    with pytest.raises(MalformedPack, match="authentication"):
        read_entries(_cipher_for(chosen, bytes(32)), raw)
    with pytest.raises(MalformedPack):
        read_entries(_cipher_for(chosen), b"DRVX" + raw[4:])
