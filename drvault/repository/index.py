"""Index files: which blobs each pack holds, at which offset, of which length and type.

The in-memory index they load into is ``memindex.Index``.

Index file body (inside the envelope, see envelope.py), one record per pack in the order of the
envelope's pack list: kind u8 (0 data, 1 tree), pack salt (16), entry count u32 LE, then that many
pack.ENTRY records (48 bytes: ID, type, compression, offset, length, raw length).
Keeping the salt here lets a reader open any blob with one ranged read.
"""

from __future__ import annotations

import struct
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


def decode_records(names: tuple[bytes, ...], body: bytes) -> list[tuple[PackRef, bytes, int, int]]:
    """Split a body into (pack, body, first record offset, record count) without parsing the
    records, for callers that read them in bulk."""
    out: list[tuple[PackRef, bytes, int, int]] = []
    pos = 0
    try:
        for name in names:
            kind, salt, count = PACK_RECORD.unpack_from(body, pos)
            pos += PACK_RECORD.size
            if kind > 1:
                raise MalformedIndex(f"unknown pack kind {kind}")
            if pos + count * ENTRY.size > len(body):
                raise MalformedIndex("truncated body")
            out.append((PackRef(name, KIND_NAMES[kind], salt), body, pos, count))
            pos += count * ENTRY.size
    except struct.error as exc:
        raise MalformedIndex("truncated body") from exc
    if pos != len(body):
        raise MalformedIndex("trailing bytes in body")
    return out


def decode_file(names: tuple[bytes, ...], body: bytes) -> list[tuple[PackRef, list[PackEntry]]]:
    """Parse a body into (pack, entries) pairs."""
    return [
        (ref, [PackEntry(*ENTRY.unpack_from(data, start + i * ENTRY.size)) for i in range(count)])
        for ref, data, start, count in decode_records(names, body)
    ]
