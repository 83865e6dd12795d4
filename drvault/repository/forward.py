"""Pack forwarding records: where the needed blobs of a pack went when prune removed it.

A snapshot's keyless pack list names the packs it was written with, and its ID is the hash of
that list's envelope, so the list can never change. When a keyed prune repacks a partly needed
pack (or drops a listed pack whose needed blobs also live elsewhere), it first writes a
forwarding record naming, for each removed pack, the packs that now hold every needed blob it
held. Anyone without the key (replication, keyless prune, status) then reads a snapshot's needs
as the closure of its list over the forwarding records.

Object: ``forward/<sha256 of its bytes>``, plaintext canonical JSON (sorted keys, no spaces)::

    {"moved":{"<old pack hex>":["<new pack hex>",...],...},"version":1}

A record is garbage, and prune deletes it, once none of its old packs is reachable from a kept
snapshot. Records are never rewritten; several may name the same old pack (a prune that died
after writing one, then ran again): the closure takes the union.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from drvault.errors import IntegrityError, NotFoundError
from drvault.repository import layout
from drvault.repository.crypto import sha256
from drvault.repository.fanout import fan_out
from drvault.transport.base import Backend

VERSION = 1

Moved = Mapping[bytes, tuple[bytes, ...]]


def encode(moved: Moved) -> bytes:
    doc = {
        "moved": {old.hex(): sorted(n.hex() for n in set(new)) for old, new in moved.items()},
        "version": VERSION,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(raw: bytes, path: str) -> dict[bytes, tuple[bytes, ...]]:
    """A record's map, checked against its name; IntegrityError when it is not one."""
    want = layout.parse_hex_name(path)
    if want is None or sha256(raw) != want:
        raise IntegrityError(path, "content does not match its name (SHA-256 mismatch)")
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        if doc.get("version") != VERSION:
            raise ValueError(f"unknown version {doc.get('version')!r}")
        moved = doc["moved"]
        if not isinstance(moved, dict):
            raise ValueError("moved is not an object")
        out: dict[bytes, tuple[bytes, ...]] = {}
        for old, new in moved.items():
            if not isinstance(new, list):
                raise ValueError("a target list is not an array")
            key = bytes.fromhex(old)
            targets = tuple(bytes.fromhex(n) for n in new)
            if len(key) != 32 or any(len(t) != 32 for t in targets):
                raise ValueError("a pack name is not 32 bytes")
            out[key] = targets
        return out
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(path, f"not a forwarding record ({exc})") from None


def write(backend: Backend, moved: Moved) -> str | None:
    """Store one record (nothing when ``moved`` is empty); its path."""
    if not moved:
        return None
    raw = encode(moved)
    path = layout.forward_path(sha256(raw))
    backend.put(path, raw)
    return path


@dataclass
class Forwards:
    """Every forwarding record of a repository, merged."""

    moved: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)  # old -> union of new
    files: dict[str, tuple[bytes, ...]] = field(default_factory=dict)  # path -> its old packs

    def add(self, path: str, moved: Moved) -> None:
        self.files[path] = tuple(sorted(moved))
        for old, new in moved.items():
            have = self.moved.get(old, ())
            self.moved[old] = tuple(sorted(set(have).union(new)))

    def closure(self, packs: Iterable[bytes]) -> set[bytes]:
        """The packs given and every pack they forward to, transitively (keep both)."""
        out: set[bytes] = set()
        stack = list(packs)
        while stack:
            p = stack.pop()
            if p in out:
                continue
            out.add(p)
            stack.extend(self.moved.get(p, ()))
        return out

    def garbage(self, reachable: set[bytes]) -> list[str]:
        """Records none of whose old packs is reachable from a kept snapshot."""
        return sorted(p for p, olds in self.files.items() if reachable.isdisjoint(olds))


def read_all(
    backend: Backend, parallel: int = 8, errors: list[IntegrityError] | None = None
) -> Forwards:
    """Read and verify every record. A damaged one raises IntegrityError (what a snapshot needs
    is then unknown), or goes to ``errors`` when given."""
    out = Forwards()
    paths = [
        i.name for i in backend.list(layout.FORWARD) if layout.parse_hex_name(i.name) is not None
    ]

    def one(path: str) -> dict[bytes, tuple[bytes, ...]]:
        try:
            raw = backend.get(path)
        except NotFoundError:
            raise IntegrityError(path, "vanished while being read") from None
        return decode(raw, path)

    for path, moved, exc in fan_out(one, sorted(paths), parallel):
        if isinstance(exc, IntegrityError) and errors is not None:
            errors.append(exc)
        elif exc is not None:
            raise exc
        else:
            assert moved is not None
            out.add(path, moved)
    return out
