"""What a repository holds, read without the key.

Snapshots and index files carry a plaintext list of the packs they name (the envelope), and every
object except the config and locks is named by the SHA-256 of its bytes. So anyone holding only
ciphertext (a DR center, a replicator) can learn which packs each snapshot needs and which index
files describe which packs, and verify all of it: that is what keyless prune works from.
Forwarding records (``forward/``, plaintext) say where prune moved the needed blobs of a pack,
so a snapshot's needs are its pack list's closure over them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drvault.errors import IntegrityError, NotFoundError
from drvault.repository import envelope, forward, layout
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
    forwards: forward.Forwards = field(default_factory=forward.Forwards)

    def reachable(self) -> set[bytes]:
        """Every pack name a snapshot lists, closed over the forwarding records (existing or
        not): what a forwarding record must still answer for."""
        return self.forwards.closure(p for packs in self.snapshots.values() for p in packs)

    def indexed(self) -> set[bytes]:
        """Packs some intact index file names."""
        return set().union(*self.index_files.values()) if self.index_files else set()

    def superseded(self, name: bytes, indexed: set[bytes] | None = None) -> bool:
        """A forwarded pack whose every target is here and indexed (or itself superseded): the
        snapshots listing it are served by the targets, so it is no longer needed."""
        indexed = self.indexed() if indexed is None else indexed
        seen: set[bytes] = set()

        def ok(p: bytes) -> bool:
            targets = self.forwards.moved.get(p)
            if targets is None or p in seen:
                return False
            seen.add(p)
            return all((t in self.packs and t in indexed) or ok(t) for t in targets)

        return ok(name)

    def needed(self) -> set[bytes]:
        """Every pack here some snapshot needs: its list, followed through the forwarding
        records past each superseded pack (a pack not superseded is kept together with
        whatever it forwards to)."""
        out: set[bytes] = set()
        done: set[bytes] = set()
        indexed = self.indexed()
        stack = [p for packs in self.snapshots.values() for p in packs]
        while stack:
            p = stack.pop()
            if p in done:
                continue
            done.add(p)
            if p in self.packs and not self.superseded(p, indexed):
                out.add(p)
            stack.extend(self.forwards.moved.get(p, ()))
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
    inv.forwards = forward.read_all(backend, parallel)
    for info in backend.list(layout.FORGOTTEN):
        name = layout.parse_hex_name(info.name)
        if name is not None:
            inv.tombstones.add(name)
    return inv
