"""The index's row tables: the C extension and the pure-Python reference give the same answers."""

from __future__ import annotations

import random

import pytest

from drvault.repository import rows
from drvault.repository.pack import ENTRY
from drvault.repository.rows import OPS, PYTHON, ROW, ROW_SIZE, Implementation

IMPLEMENTATIONS = [PYTHON, OPS]


def _native() -> Implementation:
    assert OPS.name == "native"
    return OPS


def test_the_extension_is_built_and_in_use() -> None:
    # A failed build would fall back to the slow reference without a word: not here.
    from drvault.repository import _rows  # noqa: F401

    assert rows.OPS.name == "native"


def _random_rows(rng: random.Random, n: int, ids: list[bytes] | None = None) -> list[bytes]:
    out = []
    for k in range(n):
        blob_id = rng.choice(ids) if ids else rng.randbytes(32)
        out.append(ROW.pack(blob_id, k, rng.getrandbits(32), rng.getrandbits(32), k, k & 0xFF))
    return out


def _tricky_ids(rng: random.Random) -> list[bytes]:
    """IDs that share their first 8 bytes, or all but the last byte, or everything."""
    head = rng.randbytes(8)
    return [
        head + rng.randbytes(24),
        head + rng.randbytes(24),
        head + bytes(23) + b"\x01",
        head + bytes(24),
        bytes(32),
        b"\xff" * 32,
        rng.randbytes(32),
    ]


def _reference_sort(table: list[bytes]) -> bytes:
    return b"".join(sorted(table, key=lambda r: r[:32]))  # stable


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_from_records_builds_rows_of_one_pack(impl: Implementation) -> None:
    rng = random.Random(1)
    records = [
        (rng.randbytes(32), t, c, rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32))
        for t, c in [(0, 0), (0, 1), (1, 0), (1, 1), (0, 1)]
    ]
    body = b"junk" + b"".join(ENTRY.pack(*r) for r in records) + b"tail"
    got = impl.from_records(body, 4 + ENTRY.size, 3, 77)
    assert got == b"".join(
        ROW.pack(i, 77, off, length, raw, t << 4 | c) for i, t, c, off, length, raw in records[1:4]
    )
    assert impl.from_records(body, 4, 0, 0) == b""
    for start, count in [(4, 6), (-1, 1), (len(body) + 1, 0), (4, -1)]:
        with pytest.raises(ValueError):
            impl.from_records(body, start, count, 0)
    with pytest.raises(OverflowError):
        impl.from_records(body, 4, 1, 1 << 32)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_sort_is_by_id_and_stable(impl: Implementation) -> None:
    rng = random.Random(2)
    ids = _tricky_ids(rng)
    table = _random_rows(rng, 300, ids) + _random_rows(rng, 300)
    rng.shuffle(table)
    got = impl.sort(b"".join(table))
    assert got == _reference_sort(table)
    assert impl.sort(b"") == b""


def test_native_sort_matches_the_reference_at_scale() -> None:
    rng = random.Random(3)
    ids = [rng.randbytes(32) for _ in range(5000)] + _tricky_ids(rng)
    table = _random_rows(rng, 30_000, ids) + _random_rows(rng, 30_000)
    rng.shuffle(table)
    assert _native().sort(b"".join(table)) == _reference_sort(table)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_merge_keeps_the_first_tables_rows_ahead(impl: Implementation) -> None:
    rng = random.Random(4)
    ids = _tricky_ids(rng) + [rng.randbytes(32) for _ in range(50)]
    a = _random_rows(rng, 200, ids)
    b = _random_rows(rng, 150, ids) + _random_rows(rng, 100)
    sa, sb = _reference_sort(a), _reference_sort(b)
    assert impl.merge(sa, sb) == _reference_sort(a + b)
    assert impl.merge(sa, b"") == sa
    assert impl.merge(b"", sb) == sb


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_duplicates_and_find(impl: Implementation) -> None:
    rng = random.Random(5)
    ids = _tricky_ids(rng)
    table = _reference_sort(_random_rows(rng, 40, ids) + _random_rows(rng, 40))
    row_ids = [table[k : k + 32] for k in range(0, len(table), ROW_SIZE)]
    assert impl.duplicates(table) == [k for k in range(1, 80) if row_ids[k] == row_ids[k - 1]]
    for blob_id in set(row_ids):
        assert impl.find(table, blob_id) == row_ids.index(blob_id)
    head = ids[0][:8]
    for missing in [head + bytes(23) + b"\x02", head + b"\xff" * 24, b"\x00" * 31 + b"\x01"]:
        assert missing not in row_ids
        assert impl.find(table, missing) == -1
    assert impl.find(b"", bytes(32)) == -1


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_malformed_tables_and_ids_are_refused(impl: Implementation) -> None:
    one = ROW.pack(bytes(32), 0, 0, 0, 0, 0)
    for call in [
        lambda: impl.sort(one + b"x"),
        lambda: impl.merge(one, one[:-1]),
        lambda: impl.duplicates(one * 2 + b"\x00"),
        lambda: impl.find(one[:48], bytes(32)),
        lambda: impl.find(one, bytes(31)),
    ]:
        with pytest.raises(ValueError):
            call()
