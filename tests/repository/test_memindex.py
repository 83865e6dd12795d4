"""The compact in-memory index: correct lookups at scale, under 64 bytes a blob."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench.index_memory import synthetic_records
from drvault.repository.index import PackRef
from drvault.repository.memindex import MERGE_EVERY, Index
from drvault.repository.pack import ENTRY, PackEntry


def _ref(n: int) -> PackRef:
    return PackRef(n.to_bytes(32, "big"), "data", bytes(16))


def _add_in_packs(index: Index, records: np.ndarray, per_pack: int) -> None:
    """Add ``records`` as index files hold them: pack number p gets rows p*per_pack onwards."""
    body = records.tobytes()
    for p, first in enumerate(range(0, len(records), per_pack)):
        index.add_records(_ref(p), body, first * ENTRY.size, min(per_pack, len(records) - first))


def test_bulk_records_and_lookups_at_200k_blobs() -> None:
    records = synthetic_records(200_000, seed=3)
    index = Index()
    _add_in_packs(index, records, 1000)
    assert len(index) == 200_000
    assert index.nbytes() / len(index) < 64
    rng = np.random.default_rng(4)
    for i in rng.integers(0, len(records), 2000):
        blob_id = records["id"][i].tobytes()
        entry = index.get(blob_id)
        assert entry is not None
        assert entry.pack.name == _ref(int(i) // 1000).name
        assert (entry.offset, entry.length, entry.raw_length) == (
            int(records["offset"][i]),
            int(records["length"][i]),
            int(records["raw"][i]),
        )
    for _ in range(2000):
        assert os.urandom(32) not in index


def test_keys_that_collide_on_the_first_eight_bytes_are_told_apart() -> None:
    index = Index()
    ids = [bytes(8) + bytes([i]) * 24 for i in range(5)]
    index.add_pack(_ref(1), [PackEntry(b, 0, 0, 24 + 10 * k, 26, 10) for k, b in enumerate(ids)])
    index.add_records(_ref(2), synthetic_records(10, seed=5).tobytes(), 0, 10)
    assert len(index) == 15  # merges both
    for k, b in enumerate(ids):
        entry = index.get(b)
        assert entry is not None and entry.offset == 24 + 10 * k
    assert bytes(8) + bytes([9]) * 24 not in index


def test_overlay_merges_and_first_copy_wins() -> None:
    index = Index()
    first = [PackEntry(os.urandom(32), 0, 1, 24 + i, 20, 4) for i in range(MERGE_EVERY + 10)]
    index.add_pack(_ref(1), first)
    again = [PackEntry(e.blob_id, 0, 0, 999, 30, 14) for e in first[:100]]
    index.add_pack(_ref(2), again)
    assert len(index) == MERGE_EVERY + 10
    for e in first[:100]:
        got = index.get(e.blob_id)
        assert got is not None and got.pack.name == _ref(1).name and got.offset == e.offset
    assert sorted(e.blob_id for e in index.entries()) == sorted(e.blob_id for e in first)


def test_packs_of_many_ids_matches_one_by_one() -> None:
    records = synthetic_records(50_000, seed=7)
    index = Index()
    _add_in_packs(index, records, 1000)
    fresh = [PackEntry(os.urandom(32), 0, 0, 24, 20, 4) for _ in range(10)]
    index.add_pack(_ref(999), fresh)  # in the overlay
    colliding = bytes(records["id"][5][:8]) + bytes(24)  # same key as a stored ID, not stored
    ids = [records["id"][i].tobytes() for i in range(0, 50_000, 97)]
    ids += [e.blob_id for e in fresh] + [os.urandom(32), colliding]
    assert index.packs_of(ids) == [index.pack_of(i) for i in ids]
    assert index.packs_of(ids)[-2:] == [None, None]


def test_a_merge_that_fails_leaves_the_index_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from drvault.repository import memindex

    index = Index()
    _add_in_packs(index, synthetic_records(300, seed=8), 100)
    assert len(index) == 300  # merged into the table
    fresh = [PackEntry(os.urandom(32), 0, 0, 24, 20, 4) for _ in range(5)]
    index.add_pack(_ref(7), fresh)
    index.add_records(_ref(8), synthetic_records(50, seed=9).tobytes(), 0, 50)

    def out_of_memory(rows: object) -> bytes:
        raise MemoryError

    monkeypatch.setattr(memindex, "OPS", memindex.OPS._replace(sort=out_of_memory))
    with pytest.raises(MemoryError):
        len(index)
    monkeypatch.undo()
    assert len(index) == 355
    for e in fresh:
        assert index.pack_of(e.blob_id) == _ref(7).name
