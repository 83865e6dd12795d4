"""What a repository holds, read without the key.

Snapshots and index files carry a plaintext list of the packs they name (the envelope), and every
object except the config and locks is named by the SHA-256 of its bytes. So anyone holding only
ciphertext (a DR center, a replicator) can learn which packs each snapshot needs and which index
files describe which packs, and verify all of it: that is what keyless prune works from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drvault.errors import IntegrityError, NotFoundError
from drvault.repository import envelope, layout
from drvault.repository.crypto import sha256
from drvault.repository.fanout import fan_out
from drvault.transport.base import Backend, ObjectInfo


@dataclass
class Inventory:
    snapshots: dict[str, tuple[bytes, ...]] = field(default_factory=dict)  # path -> packs
    index_files: dict[str, tuple[bytes, ...]] = field(default_factory=dict)  # path -> packs
    damaged_index: list[str] = field(default_factory=list)  # unreadable index files
    packs: dict[bytes, ObjectInfo] = field(default_factory=dict)  # pack name -> its object
    tombstones: set[bytes] = field(default_factory=set)  # forgotten snapshot IDs

    def needed(self) -> set[bytes]:
        """Every pack some snapshot needs."""
        out: set[bytes] = set()
        for packs in self.snapshots.values():
            out.update(packs)
        return out

    def pack_bytes(self) -> int:
        return sum(info.size for info in self.packs.values())


def _envelope_packs(backend: Backend, path: str, magic: bytes) -> tuple[bytes, ...]:
    try:
        raw = backend.get(path)
    except NotFoundError as exc:
        raise IntegrityError(path, "vanished while being read") from exc
    want = layout.parse_hex_name(path)
    if want is None or sha256(raw) != want:
        raise IntegrityError(path, "content does not match its name (SHA-256 mismatch)")
    try:
        return envelope.parse(raw, magic).packs
    except envelope.MalformedEnvelope as exc:
        raise IntegrityError(path, str(exc)) from exc


def take_inventory(backend: Backend, parallel: int = 8) -> Inventory:
    """List and read the keyless structure. A damaged snapshot raises ``IntegrityError``: what it
    needs is unknown, so nothing may be deleted on its account. A damaged index file is only
    noted (it describes packs; it decides nothing)."""
    inv = Inventory()
    snapshot_paths = [
        i.name for i in backend.list(layout.SNAPSHOTS) if layout.parse_hex_name(i.name)
    ]
    for path, packs, exc in fan_out(
        lambda p: _envelope_packs(backend, p, envelope.SNAPSHOT_MAGIC), snapshot_paths, parallel
    ):
        if exc is not None:
            raise exc
        assert packs is not None
        inv.snapshots[path] = packs
    index_paths = [i.name for i in backend.list(layout.INDEX) if layout.parse_hex_name(i.name)]
    for path, packs, exc in fan_out(
        lambda p: _envelope_packs(backend, p, envelope.INDEX_MAGIC), index_paths, parallel
    ):
        if isinstance(exc, IntegrityError):
            inv.damaged_index.append(path)
        elif exc is not None:
            raise exc
        else:
            assert packs is not None
            inv.index_files[path] = packs
    for kind in layout.PACK_KINDS:
        for info in backend.list(kind + "/"):
            name = layout.parse_hex_name(info.name)
            if name is not None:
                inv.packs[name] = info
    for info in backend.list(layout.FORGOTTEN):
        name = layout.parse_hex_name(info.name)
        if name is not None:
            inv.tombstones.add(name)
    return inv
