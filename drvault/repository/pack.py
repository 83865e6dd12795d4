"""Pack files: many sealed blobs plus their own sealed blob table.

    offset  size  field
    0       4     magic b"DRVP"
    4       1     pack version = 1
    5       1     kind: 0 data, 1 tree
    6       2     reserved, zero
    8       16    salt (random); pack key = suite.derive(master.enc, b"pack", salt)
    24      ...   blob records, back to back. The record at offset o is
                  AEAD(pack key, nonce = o as 12-byte big-endian, stored bytes,
                       aad = blob ID (32) || type (1) || compression (1))
    H       L     blob table, sealed:
                  AEAD(pack key, nonce = 12 bytes 0xFF, table, aad = bytes 0..24)
    H+L     4     L, u32 little-endian
    H+L+4   4     magic b"DRVE"

Blob table: count u32 LE, then per blob an ENTRY (48 bytes): ID (32), type u8 (0 data, 1 tree),
compression u8 (0 none, 1 zstd), reserved u16, offset u32 LE, length u32 LE (sealed length,
stored + 16), raw length u32 LE (plaintext length).

Nonces are unique under a pack key because record offsets are distinct and the table nonce is
no valid offset; pack keys are unique per pack by the 128-bit random salt, so the scheme holds
for any number of blobs (2^64 packs before a salt collision is even likely).
The pack's name is the SHA-256 of all its bytes.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from drvault.pages import private_map
from drvault.repository.crypto import TAG_SIZE, Aead, AuthenticationFailed, sha256

MAGIC = b"DRVP"
END_MAGIC = b"DRVE"
VERSION = 1
PRELUDE = struct.Struct("<4sBB2x16s")
ENTRY = struct.Struct("<32sBBxxIII")
TRAILER = struct.Struct("<I4s")
TABLE_NONCE = b"\xff" * 12

BLOB_DATA = 0
BLOB_TREE = 1
COMP_NONE = 0
COMP_ZSTD = 1
KIND_CODES = {"data": 0, "tree": 1}


CipherFactory = Callable[[bytes], Aead]
"""Gives the pack cipher for a pack's salt."""


class MalformedPack(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PackEntry:
    blob_id: bytes
    type: int
    compression: int
    offset: int
    length: int
    raw_length: int


def blob_nonce(offset: int) -> bytes:
    return offset.to_bytes(12, "big")


def blob_aad(blob_id: bytes, blob_type: int, compression: int) -> bytes:
    return blob_id + bytes((blob_type, compression))


class _Buffer:
    """An append-only byte buffer in private anonymous memory (:mod:`drvault.pages`: huge
    pages past the first 2 MiB, so filling a 16 MiB pack takes about 500-1,000 page faults,
    its first 2 MiB and unaligned edges in 4 KiB pages, instead of 4,096): pages cost memory
    only once written, and growing never copies more than once per doubling (a pack is
    written once, read once).

    Sealed blobs (``bytes``) are copied in with ``ctypes.memmove``, which runs without the
    GIL: the first touch of each fresh page is a page fault (about 15 ms per 16 MiB pack in
    4 KiB pages on the benchmark machine, against 2 ms for the copy itself), and a slice
    assignment would take all of that under the GIL, which the hashing and compressing
    threads need.
    """

    def __init__(self, capacity: int) -> None:
        self._map = private_map(capacity)
        self._pin = ctypes.c_char.from_buffer(self._map)  # exported while it lives
        self._base = ctypes.addressof(self._pin)
        self._len = 0

    def __len__(self) -> int:
        return self._len

    @property
    def capacity(self) -> int:
        return len(self._map)

    def extend(self, n: int) -> int:
        """Claim the next ``n`` bytes (growing the buffer: no write may be in progress then);
        their offset."""
        start, end = self._len, self._len + n
        if end > len(self._map):
            bigger = private_map(max(end, 2 * len(self._map)))
            bigger[:start] = self._map[:start]
            del self._pin
            self._map.close()
            self._map = bigger
            self._pin = ctypes.c_char.from_buffer(self._map)
            self._base = ctypes.addressof(self._pin)
        self._len = end
        return start

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Fill claimed bytes at ``offset``."""
        end = offset + len(data)
        if offset < 0 or end > self._len:
            raise ValueError(f"write of {len(data)} bytes at {offset} outside {self._len}")
        if type(data) is bytes:
            ctypes.memmove(self._base + offset, data, len(data))  # in bounds: checked above
        else:
            self._map[offset:end] = data

    def append(self, data: bytes | memoryview) -> None:
        self.write(self.extend(len(data)), data)

    def view(self) -> memoryview:
        return memoryview(self._map)[: self._len]


class PackWriter:
    """Accumulates sealed blobs in memory until the pack is finished.

    A blob goes in in two steps: :meth:`reserve` claims its place (its offset, and so its
    nonce; callers serialise these), then :meth:`fill` seals it into that place from any
    thread, with no lock held: sealing and copying (with the page faults of fresh pages) run
    in parallel. :meth:`finish` waits for every reserved blob to be filled.
    """

    def __init__(self, kind: str, cipher_for_salt: CipherFactory, capacity: int = 1 << 20) -> None:
        self.kind = kind
        self.salt = os.urandom(16)
        self._cipher = cipher_for_salt(self.salt)
        self._buf = _Buffer(capacity)
        self._buf.append(PRELUDE.pack(MAGIC, VERSION, KIND_CODES[kind], self.salt))
        self.entries: list[PackEntry] = []
        self._filling = 0  # blobs reserved and not yet filled
        self._failed = False
        self._filled = threading.Condition()

    def __len__(self) -> int:
        return len(self._buf)

    def reserve(
        self, blob_id: bytes, blob_type: int, compression: int, stored_length: int, raw_length: int
    ) -> PackEntry:
        """Claim the place of one blob of ``stored_length`` bytes before sealing."""
        length = stored_length + TAG_SIZE
        with self._filled:
            if len(self._buf) + length > self._buf.capacity:
                while self._filling:  # the buffer moves when it grows
                    self._filled.wait()
            offset = self._buf.extend(length)
            self._filling += 1
        entry = PackEntry(blob_id, blob_type, compression, offset, length, raw_length)
        self.entries.append(entry)
        return entry

    def fill(self, entry: PackEntry, stored: bytes | memoryview) -> None:
        """Seal a reserved blob into its place."""
        try:
            aad = blob_aad(entry.blob_id, entry.type, entry.compression)
            sealed = self._cipher.seal(blob_nonce(entry.offset), stored, aad)
            if len(sealed) != entry.length:
                raise ValueError(f"sealed {len(sealed)} bytes into a place of {entry.length}")
            self._buf.write(entry.offset, sealed)
        except BaseException:
            self._failed = True
            raise
        finally:
            with self._filled:
                self._filling -= 1
                self._filled.notify_all()

    def add(
        self,
        blob_id: bytes,
        blob_type: int,
        compression: int,
        stored: bytes | memoryview,
        raw_length: int,
    ) -> None:
        """Reserve and fill in one step."""
        self.fill(self.reserve(blob_id, blob_type, compression, len(stored), raw_length), stored)

    def finish(self) -> tuple[bytes, memoryview]:
        """(pack name, pack bytes): a view of the writer's own buffer, handed over uncopied."""
        with self._filled:
            while self._filling:
                self._filled.wait()
        if self._failed:
            raise RuntimeError("a blob of this pack failed to seal: the pack is not written")
        table = struct.pack("<I", len(self.entries)) + b"".join(
            ENTRY.pack(e.blob_id, e.type, e.compression, e.offset, e.length, e.raw_length)
            for e in self.entries
        )
        prelude = bytes(self._buf.view()[: PRELUDE.size])
        sealed = self._cipher.seal(TABLE_NONCE, table, prelude)
        self._buf.append(sealed + TRAILER.pack(len(sealed), END_MAGIC))
        data = self._buf.view()
        return sha256(data), data


def parse_prelude(data: bytes | memoryview) -> tuple[int, bytes]:
    """(kind code, salt) from a pack's first 24 bytes."""
    if len(data) < PRELUDE.size:
        raise MalformedPack("truncated prelude")
    magic, version, kind, salt = PRELUDE.unpack_from(data)
    if magic != MAGIC or version != VERSION or kind not in (0, 1):
        raise MalformedPack("bad prelude (magic, version or kind)")
    return kind, salt


def table_length(trailer: bytes | memoryview) -> int:
    length, magic = TRAILER.unpack(trailer)
    if magic != END_MAGIC:
        raise MalformedPack("bad trailer magic")
    return length


def open_table(
    cipher: Aead, prelude: bytes | memoryview, sealed: bytes | memoryview
) -> list[PackEntry]:
    try:
        table = cipher.open(TABLE_NONCE, sealed, bytes(prelude[: PRELUDE.size]))
    except AuthenticationFailed as exc:
        raise MalformedPack("blob table fails authentication") from exc
    (count,) = struct.unpack_from("<I", table)
    if len(table) != 4 + count * ENTRY.size:
        raise MalformedPack("blob table has the wrong length")
    return [PackEntry(*ENTRY.unpack_from(table, 4 + i * ENTRY.size)) for i in range(count)]


def read_entries(
    cipher_for_salt: CipherFactory, data: bytes | memoryview
) -> tuple[int, list[PackEntry]]:
    """Parse a whole pack's table: (kind code, entries). Raises MalformedPack."""
    kind, salt = parse_prelude(data)
    if len(data) < PRELUDE.size + TRAILER.size:
        raise MalformedPack("truncated")
    length = table_length(data[-TRAILER.size :])
    start = len(data) - TRAILER.size - length
    if start < PRELUDE.size:
        raise MalformedPack("table length out of range")
    entries = open_table(cipher_for_salt(salt), data, data[start : len(data) - TRAILER.size])
    for e in entries:
        if e.offset < PRELUDE.size or e.offset + e.length > start or e.length < TAG_SIZE:
            raise MalformedPack("blob entry out of range")
    return kind, entries
