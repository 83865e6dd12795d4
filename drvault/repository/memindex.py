"""The in-memory blob index, compact enough for tens of millions of blobs.

The index is one table of fixed-width rows sorted by blob ID (:mod:`drvault.repository.rows`):
ID 32 bytes, pack number, offset, sealed and plaintext length 4 each, type and compression 1 —
49 bytes a blob in a single ``bytes`` object, against ~250 for a dict of Python objects. A
lookup is one binary search in C. Blobs added during a backup go to a small dict first, and
rows read from index files are converted on arrival and staged; both are sorted and merged into
the table in batches, so a merge (a sort of the batch and one pass over the table) is paid once
per tens of thousands of blobs, not per blob. Loading never creates a Python object per blob.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from drvault.repository.index import IndexEntry, PackRef
from drvault.repository.pack import PackEntry
from drvault.repository.rows import OPS, ROW, ROW_SIZE

if TYPE_CHECKING:
    from typing_extensions import Buffer

MERGE_EVERY = 1 << 16  # overlay size that triggers a merge into the sorted table

_Row = tuple[int, int, int, int, int]  # pack number, offset, length, raw, flags


class Index:
    def __init__(self) -> None:
        self.packs: list[PackRef] = []
        self._pack_numbers: dict[bytes, int] = {}
        self._table = b""  # rows sorted by blob ID, one copy of each blob
        self._overlay: dict[bytes, _Row] = {}
        self._staged = bytearray()  # rows from index files, unsorted, merged on the next lookup
        # Further copies of a blob (two packs holding it: concurrent writers, or a pack and its
        # repacked copy before prune removes the old one), by blob ID: pack numbers.
        self._copies: dict[bytes, list[int]] = {}
        # Lookups may run while another thread adds a pack: every public method holds it.
        self._lock = threading.RLock()

    # -------------------------------------------------------------------------- sizes

    def __len__(self) -> int:
        with self._lock:
            self._merge()
            return len(self._table) // ROW_SIZE + len(self._overlay)

    def nbytes(self) -> int:
        """Bytes held by the sorted table (the overlay is bounded by MERGE_EVERY)."""
        return len(self._table)

    # ------------------------------------------------------------------------ adding

    def _pack_number(self, ref: PackRef) -> int:
        number = self._pack_numbers.get(ref.name)
        if number is None:
            number = len(self.packs)
            self.packs.append(ref)
            self._pack_numbers[ref.name] = number
        return number

    def has_pack(self, name: bytes) -> bool:
        with self._lock:
            return name in self._pack_numbers

    def add_pack(self, ref: PackRef, entries: Iterable[PackEntry]) -> None:
        """Entries of one pack (a pack just written); a blob already indexed keeps its place."""
        with self._lock:
            number = self._pack_number(ref)
            for e in entries:
                if e.blob_id in self._overlay or self._find(e.blob_id) >= 0:
                    # The same blob in two packs: either copy serves; the first is looked up.
                    self._copies.setdefault(e.blob_id, []).append(number)
                    continue
                self._overlay[e.blob_id] = (
                    number,
                    e.offset,
                    e.length,
                    e.raw_length,
                    (e.type << 4 | e.compression & 0x0F) & 0xFF,
                )
            if len(self._overlay) >= MERGE_EVERY:
                self._merge()

    def add_records(self, ref: PackRef, records: Buffer, start: int, count: int) -> None:
        """A pack's ``count`` entries as 48-byte pack-table records at ``start`` of
        ``records`` (an index file's body); merged on the next lookup."""
        with self._lock:
            self._staged += OPS.from_records(records, start, count, self._pack_number(ref))

    def _merge(self) -> None:
        if not self._overlay and not self._staged:
            return
        batch: bytes | bytearray = self._staged
        if self._overlay:
            batch = batch + b"".join(ROW.pack(i, *row) for i, row in self._overlay.items())
        # Stable throughout: among equal IDs the table's row stays first, then staged rows in
        # the order they came, so a repeated ID keeps its first copy.
        new = OPS.sort(batch)
        del batch
        table = OPS.merge(self._table, new) if self._table else new
        del new
        copies: list[tuple[bytes, int]] = []
        dups = OPS.duplicates(table)
        if dups:
            view = memoryview(table)
            keep: list[memoryview] = []
            start = 0
            for i in dups:
                blob_id, pack, *_ = ROW.unpack_from(table, i * ROW_SIZE)
                copies.append((blob_id, pack))
                keep.append(view[start * ROW_SIZE : i * ROW_SIZE])
                start = i + 1
            keep.append(view[start * ROW_SIZE :])
            table = b"".join(keep)
            del keep, view
        # Nothing changes until here: a failure above (out of memory) leaves the index whole.
        self._table, self._staged, self._overlay = table, bytearray(), {}
        for blob_id, pack in copies:
            self._copies.setdefault(blob_id, []).append(pack)

    # ------------------------------------------------------------------------ lookups

    def _find(self, blob_id: bytes) -> int:
        if self._staged:
            self._merge()
        return OPS.find(self._table, blob_id) if self._table else -1

    def __contains__(self, blob_id: bytes) -> bool:
        with self._lock:
            return blob_id in self._overlay or self._find(blob_id) >= 0

    def _row(self, blob_id: bytes) -> _Row | None:
        with self._lock:
            row = self._overlay.get(blob_id)
            if row is not None:
                return row
            i = self._find(blob_id)
            if i < 0:
                return None
            _, pack, offset, length, raw, flags = ROW.unpack_from(self._table, i * ROW_SIZE)
            return pack, offset, length, raw, flags

    def get(self, blob_id: bytes) -> IndexEntry | None:
        row = self._row(blob_id)
        if row is None:
            return None
        pack, offset, length, raw, flags = row
        return IndexEntry(blob_id, self.packs[pack], flags >> 4, flags & 0xF, offset, length, raw)

    def pack_of(self, blob_id: bytes) -> bytes | None:
        row = self._row(blob_id)
        return None if row is None else self.packs[row[0]].name

    def copies_of(self, blob_id: bytes) -> list[bytes]:
        """Every pack holding the blob: the one looked up first, then any further copies."""
        first = self.pack_of(blob_id)
        if first is None:
            return []
        with self._lock:
            return [first, *(self.packs[n].name for n in self._copies.get(blob_id, ()))]

    def further_copies(self) -> list[tuple[bytes, bytes]]:
        """(blob ID, pack) for every copy of a blob but the one looked up first."""
        with self._lock:
            self._merge()
            return [
                (blob_id, self.packs[n].name)
                for blob_id, numbers in self._copies.items()
                for n in numbers
            ]

    def packs_of(self, ids: list[bytes]) -> list[bytes | None]:
        """``pack_of`` for many IDs at once, under one acquisition of the lock."""
        out: list[bytes | None] = [None] * len(ids)
        with self._lock:
            if self._staged:
                self._merge()
            overlay, table, packs, find = self._overlay, self._table, self.packs, OPS.find
            for k, blob_id in enumerate(ids):
                row = overlay.get(blob_id)
                if row is not None:
                    out[k] = packs[row[0]].name
                elif table and (i := find(table, blob_id)) >= 0:
                    out[k] = packs[ROW.unpack_from(table, i * ROW_SIZE)[1]].name
        return out

    def entries(self) -> Iterator[IndexEntry]:
        with self._lock:
            self._merge()
            table = self._table
        for blob_id, pack, offset, length, raw, flags in ROW.iter_unpack(table):
            yield IndexEntry(
                blob_id, self.packs[pack], flags >> 4, flags & 0xF, offset, length, raw
            )
