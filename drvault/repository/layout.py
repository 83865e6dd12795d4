"""Where each kind of object lives in a repository's flat namespace.

    config                     repository config (JSON)
    keys/<sha256>              key slots
    data/<aa>/<sha256>         data packs (file contents); <aa> = first two hex digits
    tree/<aa>/<sha256>         tree packs (directory listings): metadata, never archived
    index/<sha256>             index files
    snapshots/<sha256>         snapshots
    locks/<id>                 locks
    forgotten/<sha256>         tombstones: snapshots this repository forgot (never re-replicated)
    forward/<sha256>           forwarding records: where prune moved the needed blobs of a pack
    drills/<sha256>            drill records: the outcome of a restore drill from this center

Every object except ``config`` and locks is named by the SHA-256 of its bytes, so anyone can
verify a copy without keys.
"""

from __future__ import annotations

from typing import Literal

PackKind = Literal["data", "tree"]
PACK_KINDS: tuple[PackKind, ...] = ("data", "tree")

CONFIG = "config"
KEYS = "keys/"
INDEX = "index/"
SNAPSHOTS = "snapshots/"
LOCKS = "locks/"
FORGOTTEN = "forgotten/"
FORWARD = "forward/"
DRILLS = "drills/"


def pack_path(kind: str, name: bytes) -> str:
    h = name.hex()
    return f"{kind}/{h[:2]}/{h}"


def index_path(name: bytes) -> str:
    return INDEX + name.hex()


def snapshot_path(name: bytes) -> str:
    return SNAPSHOTS + name.hex()


def tombstone_path(name: bytes) -> str:
    return FORGOTTEN + name.hex()


def forward_path(name: bytes) -> str:
    return FORWARD + name.hex()


def drill_path(name: bytes) -> str:
    return DRILLS + name.hex()


def parse_hex_name(path: str) -> bytes | None:
    """The 32-byte name at the end of an object path, or None for a foreign file."""
    tail = path.rsplit("/", 1)[-1]
    if len(tail) != 64:
        return None
    try:
        return bytes.fromhex(tail)
    except ValueError:
        return None
