"""An open repository: the one object services use to store and fetch blobs and snapshots.

Write path: ``put_blob`` -> pack writer (one per kind) -> pack upload -> pending index entries ->
index file -> ``save_snapshot`` (the commit point). Read path: index lookup -> ranged read ->
AEAD open -> decompress -> blob ID check. Every failure of a stored object becomes an
``IntegrityError`` naming the object.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import zstandard

from drvault.errors import (
    AlreadyExistsError,
    IntegrityError,
    NotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    UsageError,
)
from drvault.repository import config as config_codec
from drvault.repository import envelope, layout
from drvault.repository import index as index_codec
from drvault.repository.config import ChunkerSettings, RepoConfig
from drvault.repository.crypto import Aead, AuthenticationFailed, sha256
from drvault.repository.fanout import fan_out
from drvault.repository.index import IndexEntry, PackRef
from drvault.repository.keys import (
    KdfParams,
    KeySlot,
    MalformedKeySlot,
    MasterKey,
    parse_slot,
    wrap,
)
from drvault.repository.pack import (
    BLOB_DATA,
    BLOB_TREE,
    COMP_NONE,
    COMP_ZSTD,
    MalformedPack,
    PackEntry,
    PackWriter,
    blob_aad,
    blob_nonce,
    read_entries,
)
from drvault.repository.suite import Suite
from drvault.repository.unlock import Unlock
from drvault.repository.uploader import Uploader
from drvault.transport.base import Backend, ShortReadError, create_object

if TYPE_CHECKING:
    from drvault.repository.memindex import Index

INDEX_EVERY_PACKS = 32
MAX_PACKS_IN_FLIGHT = 6  # bounds memory: parallel pack reads and uploads
PROBE = 4096  # bytes per compressibility sample
_ZEROS = bytes(16 << 20)


def is_zero(data: bytes | memoryview) -> bool:
    """All bytes zero (memcmp against a zero buffer; VM images hold long zero runs)."""
    return len(data) <= len(_ZEROS) and _ZEROS.startswith(data)


TREE_PACK_CACHE = 8  # whole tree packs kept in memory while walking trees
BLOB_KIND = {BLOB_DATA: "data", BLOB_TREE: "tree"}


class ProbeHint:
    """What the previous blob of one stream (a file read in order) did under compression.

    After a blob that compressed, the next one of the same stream is compressed without the
    compressibility probe: blobs of one file are mostly alike, and on a database dump the
    probe cost about a fifth as much as compressing at level 1. After a blob stored raw, the
    next is probed again, so an incompressible stretch costs one wasted compression at most.
    """

    __slots__ = ("compressed",)

    def __init__(self) -> None:
        self.compressed = False


@dataclass
class WriteStats:
    blobs_new: int = 0
    blobs_dedup: int = 0
    bytes_raw_new: int = 0
    bytes_stored_new: int = 0
    packs_written: int = 0
    pack_bytes_written: int = 0


@dataclass(frozen=True)
class SnapshotRecord:
    """A loaded snapshot: its name, the keyless pack list and the decrypted document."""

    id: bytes
    packs: tuple[bytes, ...]
    body: bytes


@dataclass
class _Pending:
    packs: list[tuple[PackRef, list[PackEntry]]] = field(default_factory=list)


class Repository:
    def __init__(
        self, backend: Backend, config: RepoConfig, master: MasterKey, slot_id: str
    ) -> None:
        self.backend = backend
        self.config = config
        self.master = master
        self.slot_id = slot_id
        self.suite = config.suite
        self.index = _new_index()
        self.stats = WriteStats()
        self.session_packs: list[bytes] = []
        self._blob_id = self.suite.id_hasher(master.mac)
        self._ciphers: dict[bytes, Aead] = {}
        self._tree_packs: dict[bytes, bytes] = {}
        self._lock = threading.RLock()  # writers, pending IDs, index, stats
        self._zero_ids: dict[int, bytes] = {}  # blob ID of an all-zero chunk, by length
        self._writers: dict[str, PackWriter] = {}
        self._pending_ids: set[bytes] = set()
        self._unindexed = _Pending()
        self._zstd = threading.local()  # zstd contexts are not thread-safe: one per thread
        self._uploader = Uploader(self.parallel_pack_reads)  # uploads: the same bound
        # Called (in an uploader thread) with each pack once stored: prune learns where the
        # blobs it repacks landed.
        self.on_pack_stored: Callable[[PackRef, list[PackEntry]], None] | None = None

    # ----------------------------------------------------------------- creating and opening

    @classmethod
    def init(
        cls,
        backend: Backend,
        password: bytes,
        *,
        suite: Suite,
        chunker: ChunkerSettings | None = None,
        kdf: KdfParams | None = None,
        compression_level: int = 3,
        pack_size: int = 16 << 20,
    ) -> Repository:
        if backend.exists() and _object_exists(backend, layout.CONFIG):  # list() lists prefixes
            raise RepositoryExistsError(f"{backend.location}: a repository already exists here")
        if backend.exists() and any(True for _ in backend.list(layout.KEYS)):
            raise RepositoryExistsError(f"{backend.location}: holds key files but no config")
        backend.create()
        repo_id = os.urandom(32)
        config = RepoConfig(
            repository_id=repo_id,
            suite=suite,
            chunker=chunker or ChunkerSettings(),
            compression_level=compression_level,
            pack_size=pack_size,
        )
        master = MasterKey.generate(repo_id)
        name, raw = wrap(master, password, suite.cipher, kdf or KdfParams())
        create_object(backend, name, raw)
        mac = suite.id_hasher(master.mac)(config_codec.mac_input(config.body()))
        try:
            create_object(backend, layout.CONFIG, config_codec.encode(config, mac))
        except AlreadyExistsError:
            raise RepositoryExistsError(
                f"{backend.location}: another process created a repository here at the same time"
            ) from None
        return cls(backend, config, master, name.rsplit("/", 1)[-1])

    @classmethod
    def open(
        cls,
        backend: Backend,
        password: bytes,
        *,
        load_index: bool = True,
        unlock: Unlock | None = None,
    ) -> Repository:
        """Open with ``password``; ``unlock``: its :class:`Unlock` of ``backend``, made
        earlier so that the key was derived while the caller did other work."""
        if unlock is None:
            unlock = Unlock(backend, password)
        config, body, mac = read_config(backend)
        master, slot_id = unlock.result()
        if master.repository_id != config.repository_id:
            raise IntegrityError(layout.CONFIG, "belongs to another repository than the key")
        if config.suite.id_hasher(master.mac)(config_codec.mac_input(body)) != mac:
            raise IntegrityError(layout.CONFIG, "MAC mismatch: the config was altered")
        repo = cls(backend, config, master, slot_id)
        if load_index:
            repo.load_index()
        return repo

    # ----------------------------------------------------------------------------- index

    def list_names(self, prefix: str) -> list[str]:
        return [info.name for info in self.backend.list(prefix)]

    def load_index(self, errors: list[IntegrityError] | None = None) -> None:
        """(Re)read every index file into a fresh index, fetching them in parallel. With
        ``errors``, bad files are collected there, not raised."""
        self.index = _new_index()
        names = self.list_names(layout.INDEX)
        for _name, records, exc in fan_out(self._read_index_file, names, self.parallel_reads):
            if exc is None:
                for ref, body, start, count in records or ():
                    self.index.add_records(ref, body, start, count)
            elif isinstance(exc, IntegrityError) and errors is not None:
                errors.append(exc)
            else:
                raise exc

    def _read_index_file(self, name: str) -> list[tuple[PackRef, bytes, int, int]]:
        """(pack, body, first record's offset, record count) for each pack of an index file."""
        raw = self._get_verified(name)
        try:
            env = envelope.parse(raw, envelope.INDEX_MAGIC)
            body = envelope.open_body(env, self.suite, self.master.enc)
            return index_codec.decode_records(env.packs, body)
        except (envelope.MalformedEnvelope, index_codec.MalformedIndex) as exc:
            raise IntegrityError(name, str(exc)) from exc

    @property
    def parallel_reads(self) -> int:
        """Requests worth having in flight when reading many objects."""
        return max(1, self.backend.capabilities.connections)

    @property
    def parallel_pack_reads(self) -> int:
        """Whole packs worth fetching at once (each up to a pack size in memory)."""
        return max(1, min(self.backend.capabilities.connections, MAX_PACKS_IN_FLIGHT))

    def _get_verified(self, name: str) -> bytes:
        """Fetch a content-addressed object and check it against its name."""
        raw = self._get(name)
        want = layout.parse_hex_name(name)
        if want is None or sha256(raw) != want:
            raise IntegrityError(name, "content does not match its name (SHA-256 mismatch)")
        return raw

    def _get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            return self.backend.get(name, offset, length)
        except ShortReadError as exc:
            raise IntegrityError(name, "truncated (short read)") from exc
        except NotFoundError as exc:
            raise IntegrityError(name, "missing") from exc

    # ----------------------------------------------------------------------------- blobs

    def blob_id(self, data: bytes | memoryview) -> bytes:
        return self._blob_id(data)

    def has_blob(self, blob_id: bytes) -> bool:
        with self._lock:
            return blob_id in self._pending_ids or blob_id in self.index

    def pack_cipher(self, salt: bytes) -> Aead:
        cipher = self._ciphers.get(salt)
        if cipher is None:
            if len(self._ciphers) > 256:
                self._ciphers.clear()
            cipher = self._ciphers[salt] = self.suite.cipher_for(self.master.enc, b"pack", salt)
        return cipher

    def put_blob(
        self,
        blob_type: int,
        data: bytes | memoryview,
        blob_id: bytes | None = None,
        hint: ProbeHint | None = None,
    ) -> tuple[bytes, bool]:
        """Store ``data`` unless present: (blob ID, whether it was new). ``hint`` carries the
        compressibility of the stream's previous blob (see :class:`ProbeHint`).

        Thread-safe: hashing and compression run in the calling thread without any lock, so
        several threads storing blobs use several cores. A blob is claimed under the lock
        before it is compressed, so two threads never store the same blob twice.
        """
        if blob_id is None:
            zero = is_zero(data)
            blob_id = self._zero_ids.get(len(data)) if zero else None
            if blob_id is None:
                blob_id = self._blob_id(data)
                if zero:
                    self._zero_ids[len(data)] = blob_id
        with self._lock:
            if blob_id in self._pending_ids or blob_id in self.index:
                self.stats.blobs_dedup += 1
                return blob_id, False
            self._pending_ids.add(blob_id)
        stored, compression = self.compress(data, hint)
        self.put_sealed_input(blob_type, blob_id, stored, compression, len(data))
        return blob_id, True

    def _compressor(self) -> zstandard.ZstdCompressor:
        c = getattr(self._zstd, "c", None)
        if c is None:
            c = self._zstd.c = zstandard.ZstdCompressor(level=self.config.compression_level)
        return c

    def _probe_compressor(self) -> zstandard.ZstdCompressor:
        c = getattr(self._zstd, "probe", None)
        if c is None:
            c = self._zstd.probe = zstandard.ZstdCompressor(level=1)
        return c

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        d = getattr(self._zstd, "d", None)
        if d is None:
            d = self._zstd.d = zstandard.ZstdDecompressor()
        return d

    def compress(
        self, data: bytes | memoryview, hint: ProbeHint | None = None
    ) -> tuple[bytes | memoryview, int]:
        """zstd unless that does not make the blob smaller; (stored bytes, compression code).

        Large blobs are probed first: when two 4 KiB samples (at a quarter and three quarters)
        do not shrink by 3% at zstd level 1, the blob is stored raw without compressing it.
        Scanned PDFs, JPEGs, archives and encrypted data cost a few microseconds, not a full
        zstd pass. With a ``hint`` saying the stream's previous blob compressed, the probe is
        skipped.
        """
        n = len(data)
        if self.config.compression != "zstd" or n <= 64:
            return data, COMP_NONE
        if n >= 4 * PROBE and not (hint is not None and hint.compressed):
            probe = self._probe_compressor()
            view = memoryview(data)
            a, b = n // 4, 3 * n // 4
            if (
                len(probe.compress(view[a : a + PROBE])) > PROBE * 0.97
                and len(probe.compress(view[b : b + PROBE])) > PROBE * 0.97
            ):
                return data, COMP_NONE
        packed = self._compressor().compress(data)
        if hint is not None:
            hint.compressed = len(packed) < n * 0.97
        if len(packed) < n:
            return packed, COMP_ZSTD
        return data, COMP_NONE

    def put_sealed_input(
        self,
        blob_type: int,
        blob_id: bytes,
        stored: bytes | memoryview,
        compression: int,
        raw_length: int,
    ) -> None:
        kind = BLOB_KIND[blob_type]
        full: PackWriter | None = None
        with self._lock:
            writer = self._writers.get(kind)
            if writer is None:
                writer = self._writers[kind] = PackWriter(
                    kind, self.pack_cipher, self.config.pack_size + (1 << 20)
                )
            entry = writer.reserve(blob_id, blob_type, compression, len(stored), raw_length)
            self._pending_ids.add(blob_id)
            self.stats.blobs_new += 1
            self.stats.bytes_raw_new += raw_length
            self.stats.bytes_stored_new += len(stored)
            if len(writer) >= self.config.pack_size:
                full = self._writers.pop(kind)
        writer.fill(entry, stored)  # sealed outside the lock; finish() waits for it
        if full is not None:
            self._uploader.submit(lambda: self._upload(full))

    def _upload(self, writer: PackWriter) -> None:
        """Finish and store a pack (in the uploader's threads, outside the lock), then index it."""
        name, data = writer.finish()
        self.backend.put(layout.pack_path(writer.kind, name), data)
        ref = PackRef(name, writer.kind, writer.salt)
        if self.on_pack_stored is not None:
            self.on_pack_stored(ref, writer.entries)
        to_index: list[tuple[PackRef, list[PackEntry]]] = []
        with self._lock:
            self.index.add_pack(ref, writer.entries)
            for e in writer.entries:
                self._pending_ids.discard(e.blob_id)
            self._unindexed.packs.append((ref, writer.entries))
            self.session_packs.append(name)
            self.stats.packs_written += 1
            self.stats.pack_bytes_written += len(data)
            if len(self._unindexed.packs) >= INDEX_EVERY_PACKS:
                to_index, self._unindexed = self._unindexed.packs, _Pending()
        self._write_index(to_index)

    def write_index(self, packs: list[tuple[PackRef, list[PackEntry]]]) -> str | None:
        """Write one index file describing ``packs``; its name (None when there is nothing)."""
        return self._write_index(packs)

    def _write_index(self, packs: list[tuple[PackRef, list[PackEntry]]]) -> str | None:
        if not packs:
            return None
        names, body = index_codec.encode_file(packs)
        raw = envelope.seal(envelope.INDEX_MAGIC, self.suite, self.master.enc, names, body)
        path = layout.index_path(sha256(raw))
        self.backend.put(path, raw)
        return path

    def flush(self) -> None:
        """Upload open packs and index them: everything put so far is durable afterwards.

        Call it when no other thread is storing blobs."""
        with self._lock:
            writers = [w for w in self._writers.values() if w.entries]
            self._writers = {}
        for writer in writers:
            self._uploader.submit(lambda w=writer: self._upload(w))  # type: ignore[misc]
        self._uploader.wait()
        with self._lock:
            to_index, self._unindexed = self._unindexed.packs, _Pending()
        self._write_index(to_index)

    def get_blob(self, blob_id: bytes) -> bytes:
        """One blob, verified. Tree blobs come from whole tree packs, fetched once, checked
        against their SHA-256 names and kept in a small cache: a walk over trees makes one
        request per pack, not per directory, and notices damage anywhere in a tree pack."""
        entry = self.index.get(blob_id)
        if entry is None:
            raise IntegrityError(f"blob {blob_id.hex()}", "not in any index (missing)")
        if entry.pack.kind == "tree":
            data = self._tree_pack(entry.pack)
            sealed: bytes | memoryview = memoryview(data)[
                entry.offset : entry.offset + entry.length
            ]
            if len(sealed) != entry.length:
                raise IntegrityError(layout.pack_path("tree", entry.pack.name), "truncated")
        else:
            sealed = self._get(
                layout.pack_path(entry.pack.kind, entry.pack.name), entry.offset, entry.length
            )
        return self.open_blob(entry, sealed)

    def _tree_pack(self, ref: PackRef) -> bytes:
        data = self._tree_packs.pop(ref.name, None)
        if data is None:
            data = self.read_pack(ref)
            while len(self._tree_packs) >= TREE_PACK_CACHE:
                self._tree_packs.pop(next(iter(self._tree_packs)))
        self._tree_packs[ref.name] = data  # most recently used last
        return data

    def open_blob(
        self, entry: IndexEntry | PackEntry, sealed: bytes | memoryview, pack: PackRef | None = None
    ) -> bytes:
        """Decrypt, decompress and verify one sealed blob record."""
        ref = pack if pack is not None else entry.pack  # type: ignore[union-attr]
        return self._expand(entry, self.unseal(entry, sealed, ref), ref)

    def unseal(
        self, entry: IndexEntry | PackEntry, sealed: bytes | memoryview, ref: PackRef
    ) -> bytes:
        """Decrypt one sealed blob record to its stored (maybe compressed) bytes."""
        try:
            return self.pack_cipher(ref.salt).open(
                blob_nonce(entry.offset),
                sealed,
                blob_aad(entry.blob_id, entry.type, entry.compression),
            )
        except AuthenticationFailed as exc:
            raise IntegrityError(
                layout.pack_path(ref.kind, ref.name),
                f"blob {entry.blob_id.hex()[:16]} fails authentication",
            ) from exc

    def copy_sealed(self, entry: PackEntry, sealed: bytes | memoryview, ref: PackRef) -> None:
        """Store again one blob record read from pack ``ref`` (prune's repack): decrypted and
        verified against its ID, then put into a new pack as stored, never recompressed. The
        index keeps its first copy until the old pack's index files are rewritten."""
        stored = self.unseal(entry, sealed, ref)
        self._expand(entry, stored, ref)
        self.put_sealed_input(
            entry.type, entry.blob_id, stored, entry.compression, entry.raw_length
        )

    def read_index_entries(self, name: str) -> list[tuple[PackRef, list[PackEntry]]]:
        """One index file, verified and parsed: (pack, its entries) for each pack it names."""
        raw = self._get_verified(name)
        try:
            env = envelope.parse(raw, envelope.INDEX_MAGIC)
            return index_codec.decode_file(
                env.packs, envelope.open_body(env, self.suite, self.master.enc)
            )
        except (envelope.MalformedEnvelope, index_codec.MalformedIndex) as exc:
            raise IntegrityError(name, str(exc)) from exc

    def _expand(self, entry: IndexEntry | PackEntry, stored: bytes, ref: PackRef) -> bytes:
        """The plaintext of a blob decrypted from pack ``ref``, checked against its length and
        ID (the pack's path is worked out only for an error: this runs once a blob)."""
        if entry.compression == COMP_ZSTD:
            try:
                declared = zstandard.frame_content_size(stored)
                if declared != entry.raw_length:
                    raise _bad_blob(ref, entry, "has a bad size")
                data = self._decompressor().decompress(stored, max_output_size=entry.raw_length)
            except zstandard.ZstdError as exc:
                raise _bad_blob(ref, entry, "does not decompress") from exc
        else:
            data = stored
        if len(data) != entry.raw_length or self._blob_id(data) != entry.blob_id:
            raise _bad_blob(ref, entry, "does not match its ID")
        return data

    # ----------------------------------------------------------------------------- packs

    def read_pack(self, ref: PackRef) -> bytes:
        """A whole pack, verified against its name."""
        return self._get_verified(layout.pack_path(ref.kind, ref.name))

    def pack_entries(self, path: str, data: bytes) -> tuple[str, list[PackEntry]]:
        """Parse a whole pack's own blob table: (kind, entries)."""
        try:
            kind, entries = read_entries(self.pack_cipher, data)
        except MalformedPack as exc:
            raise IntegrityError(path, str(exc)) from exc
        if path.split("/", 1)[0] != index_codec.KIND_NAMES[kind]:
            raise IntegrityError(path, "pack kind does not match its prefix")
        return index_codec.KIND_NAMES[kind], entries

    # ------------------------------------------------------------------------- snapshots

    def save_snapshot(self, body: bytes, packs: Iterable[bytes]) -> bytes:
        """Flush everything, then write the snapshot: the commit point. Returns its ID."""
        self.flush()
        raw = envelope.seal(envelope.SNAPSHOT_MAGIC, self.suite, self.master.enc, list(packs), body)
        snapshot_id = sha256(raw)
        self.backend.put(layout.snapshot_path(snapshot_id), raw)
        return snapshot_id

    def snapshot_ids(self) -> list[bytes]:
        ids = []
        for name in self.list_names(layout.SNAPSHOTS):
            parsed = layout.parse_hex_name(name)
            if parsed is not None:
                ids.append(parsed)
        return ids

    def load_snapshot(self, snapshot_id: bytes) -> SnapshotRecord:
        name = layout.snapshot_path(snapshot_id)
        raw = self._get_verified(name)
        try:
            env = envelope.parse(raw, envelope.SNAPSHOT_MAGIC)
            body = envelope.open_body(env, self.suite, self.master.enc, max_size=1 << 26)
        except envelope.MalformedEnvelope as exc:
            raise IntegrityError(name, str(exc)) from exc
        return SnapshotRecord(snapshot_id, env.packs, body)

    # ------------------------------------------------------------------------------ keys

    def key_slots(self) -> list[KeySlot | str]:
        """Parsed slots; a damaged slot appears as its object name."""
        out: list[KeySlot | str] = []
        for name in self.list_names(layout.KEYS):
            try:
                out.append(parse_slot(name, self.backend.get(name)))
            except MalformedKeySlot:
                out.append(name)
        return out

    def add_key(self, password: bytes, kdf: KdfParams | None = None) -> str:
        name, raw = wrap(self.master, password, self.suite.cipher, kdf or KdfParams())
        create_object(self.backend, name, raw)
        return name.rsplit("/", 1)[-1]

    def remove_key(self, slot_id: str) -> str:
        names = self.list_names(layout.KEYS)
        matches = [n for n in names if n.rsplit("/", 1)[-1].startswith(slot_id)]
        if len(matches) != 1:
            raise UsageError(f"key {slot_id!r} matches {len(matches)} key slots (need exactly one)")
        target = matches[0].rsplit("/", 1)[-1]
        if target == self.slot_id:
            raise UsageError("refusing to remove the key slot this session was opened with")
        if len(names) < 2:
            raise UsageError("refusing to remove the last key slot")
        self.backend.delete(matches[0])
        return target


def _object_exists(backend: Backend, name: str) -> bool:
    try:
        backend.stat(name)
    except NotFoundError:
        return False
    return True


def _bad_blob(ref: PackRef, entry: IndexEntry | PackEntry, problem: str) -> IntegrityError:
    """The error for a blob of pack ``ref`` that fails a check, naming the pack and the blob."""
    return IntegrityError(
        layout.pack_path(ref.kind, ref.name), f"blob {entry.blob_id.hex()[:16]} {problem}"
    )


def read_config(backend: Backend) -> tuple[RepoConfig, dict[str, object], bytes]:
    if not backend.exists():
        raise RepositoryNotFoundError(f"{backend.location}: repository does not exist")
    try:
        raw = backend.get(layout.CONFIG)
    except NotFoundError:
        raise RepositoryNotFoundError(
            f"{backend.location}: not a drvault repository (no config)"
        ) from None
    try:
        return config_codec.decode(raw)
    except config_codec.MalformedConfig as exc:
        raise IntegrityError(layout.CONFIG, str(exc)) from exc


def _new_index() -> Index:
    """An empty in-memory index (its module is imported on first use: commands that open no
    repository never load it)."""
    from drvault.repository.memindex import Index

    return Index()
