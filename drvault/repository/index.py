"""The blob index: blob ID -> (pack, offset, length, type), in memory and in index files.

Index file body (inside the envelope, see envelope.py), one record per pack in the order of the
envelope's pack list: kind u8 (0 data, 1 tree), pack salt (16), entry count u32 LE, then that many
pack.ENTRY records (48 bytes: ID, type, compression, offset, length, raw length).
Keeping the salt here lets a reader open any blob with one ranged read.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from drvault.repository.pack import ENTRY, PackEntry

PACK_RECORD = struct.Struct("<B16sI")
KIND_NAMES = ("data", "tree")


class MalformedIndex(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PackRef:
    name: bytes
    kind: str
    salt: bytes


@dataclass(frozen=True, slots=True)
class IndexEntry:
    blob_id: bytes
    pack: PackRef
    type: int
    compression: int
    offset: int
    length: int
    raw_length: int


class Index:
    """In-memory index: a dict from blob ID to a row of parallel typed arrays."""

    def __init__(self) -> None:
        self.packs: list[PackRef] = []
        self._pack_numbers: dict[bytes, int] = {}
        self._rows: dict[bytes, int] = {}
        self._pack = array("I")
        self._offset = array("I")
        self._length = array("I")
        self._raw = array("I")
        self._flags = array("B")

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._rows

    def has_pack(self, name: bytes) -> bool:
        return name in self._pack_numbers

    def add_pack(self, ref: PackRef, entries: Iterable[PackEntry]) -> None:
        number = self._pack_numbers.get(ref.name)
        if number is None:
            number = len(self.packs)
            self.packs.append(ref)
            self._pack_numbers[ref.name] = number
        for e in entries:
            if e.blob_id in self._rows:
                continue  # the same blob in two packs (concurrent writers): either copy serves
            self._rows[e.blob_id] = len(self._pack)
            self._pack.append(number)
            self._offset.append(e.offset)
            self._length.append(e.length)
            self._raw.append(e.raw_length)
            self._flags.append(e.type << 4 | e.compression)

    def get(self, blob_id: bytes) -> IndexEntry | None:
        row = self._rows.get(blob_id)
        if row is None:
            return None
        flags = self._flags[row]
        return IndexEntry(
            blob_id,
            self.packs[self._pack[row]],
            flags >> 4,
            flags & 0xF,
            self._offset[row],
            self._length[row],
            self._raw[row],
        )

    def pack_of(self, blob_id: bytes) -> bytes | None:
        row = self._rows.get(blob_id)
        return None if row is None else self.packs[self._pack[row]].name

    def entries(self) -> Iterator[IndexEntry]:
        for blob_id in self._rows:
            entry = self.get(blob_id)
            assert entry is not None
            yield entry


def encode_file(packs: list[tuple[PackRef, list[PackEntry]]]) -> tuple[list[bytes], bytes]:
    """(pack names, body) for an index file covering ``packs``."""
    ordered = sorted(packs, key=lambda p: p[0].name)
    parts: list[bytes] = []
    for ref, entries in ordered:
        parts.append(PACK_RECORD.pack(KIND_NAMES.index(ref.kind), ref.salt, len(entries)))
        parts.extend(
            ENTRY.pack(e.blob_id, e.type, e.compression, e.offset, e.length, e.raw_length)
            for e in entries
        )
    return [ref.name for ref, _ in ordered], b"".join(parts)


def decode_file(names: tuple[bytes, ...], body: bytes) -> list[tuple[PackRef, list[PackEntry]]]:
    out: list[tuple[PackRef, list[PackEntry]]] = []
    pos = 0
    try:
        for name in names:
            kind, salt, count = PACK_RECORD.unpack_from(body, pos)
            pos += PACK_RECORD.size
            if kind > 1:
                raise MalformedIndex(f"unknown pack kind {kind}")
            entries = [
                PackEntry(*ENTRY.unpack_from(body, pos + i * ENTRY.size)) for i in range(count)
            ]
            pos += count * ENTRY.size
            out.append((PackRef(name, KIND_NAMES[kind], salt), entries))
    except struct.error as exc:
        raise MalformedIndex("truncated body") from exc
    if pos != len(body):
        raise MalformedIndex("trailing bytes in body")
    return out
