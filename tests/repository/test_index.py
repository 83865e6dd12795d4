"""Index files (encode / decode) and the in-memory index."""

from __future__ import annotations

import pytest

from drvault.repository.index import (
    PACK_RECORD,
    MalformedIndex,
    PackRef,
    decode_file,
    encode_file,
)
from drvault.repository.memindex import Index
from drvault.repository.pack import ENTRY, PackEntry

DATA_PACK = PackRef(bytes([0xDD]) * 32, "data", bytes([1]) * 16)
TREE_PACK = PackRef(bytes([0x11]) * 32, "tree", bytes([2]) * 16)
DATA_ENTRIES = [
    PackEntry(bytes([i]) * 32, 0, i % 2, 24 + 100 * i, 100, 80 + i) for i in range(1, 4)
]
TREE_ENTRIES = [PackEntry(bytes([0x70]) * 32, 1, 1, 24, 300, 1000)]


def test_file_round_trip_orders_packs_by_name() -> None:
    names, body = encode_file([(DATA_PACK, DATA_ENTRIES), (TREE_PACK, TREE_ENTRIES)])
    assert names == [TREE_PACK.name, DATA_PACK.name]
    assert len(body) == 2 * PACK_RECORD.size + 4 * ENTRY.size
    decoded = decode_file(tuple(names), body)
    assert decoded == [(TREE_PACK, TREE_ENTRIES), (DATA_PACK, DATA_ENTRIES)]


def test_empty_file_round_trip() -> None:
    assert encode_file([]) == ([], b"")
    assert decode_file((), b"") == []


def test_malformed_bodies_are_refused() -> None:
    names, body = encode_file([(DATA_PACK, DATA_ENTRIES)])
    with pytest.raises(MalformedIndex, match="truncated"):
        decode_file(tuple(names), body[:-1])
    with pytest.raises(MalformedIndex, match="trailing"):
        decode_file(tuple(names), body + b"\0")
    with pytest.raises(MalformedIndex, match="kind"):
        decode_file(tuple(names), b"\x07" + body[1:])
    with pytest.raises(MalformedIndex):
        decode_file((*names, TREE_PACK.name), body)  # a pack name without its record


def test_in_memory_index() -> None:
    index = Index()
    index.add_pack(DATA_PACK, DATA_ENTRIES)
    index.add_pack(TREE_PACK, TREE_ENTRIES)
    assert len(index) == 4
    assert index.has_pack(DATA_PACK.name) and not index.has_pack(bytes(32))
    blob = DATA_ENTRIES[1]
    assert blob.blob_id in index and bytes(32) not in index
    entry = index.get(blob.blob_id)
    assert entry is not None
    assert (entry.pack, entry.type, entry.compression) == (DATA_PACK, 0, blob.compression)
    assert (entry.offset, entry.length, entry.raw_length) == (
        blob.offset,
        blob.length,
        blob.raw_length,
    )
    assert index.get(bytes(32)) is None
    assert index.pack_of(TREE_ENTRIES[0].blob_id) == TREE_PACK.name
    assert index.pack_of(bytes(32)) is None
    assert sorted(e.blob_id for e in index.entries()) == sorted(
        e.blob_id for e in DATA_ENTRIES + TREE_ENTRIES
    )


def test_a_blob_in_two_packs_keeps_the_first_copy() -> None:
    index = Index()
    index.add_pack(DATA_PACK, DATA_ENTRIES)
    other = PackRef(bytes([0xEE]) * 32, "data", bytes(16))
    index.add_pack(other, [PackEntry(DATA_ENTRIES[0].blob_id, 0, 0, 24, 50, 34)])
    index.add_pack(DATA_PACK, [])  # adding a known pack again is harmless
    assert len(index) == 3
    assert index.pack_of(DATA_ENTRIES[0].blob_id) == DATA_PACK.name
    assert index.packs == [DATA_PACK, other]
