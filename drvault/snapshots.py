"""Finding snapshots: list them, resolve an ID, prefix or ``latest``, walk their trees."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from drvault.errors import IntegrityError, UsageError
from drvault.repository.fanout import fan_out
from drvault.repository.repository import Repository
from drvault.snapshot import Node, NodeType, decode_tree
from drvault.snapshot.document import Snapshot


def load(repo: Repository, snapshot_id: bytes) -> Snapshot:
    record = repo.load_snapshot(snapshot_id)
    return Snapshot.decode(record.body, record.id, record.packs)


def load_all(repo: Repository, errors: list[IntegrityError] | None = None) -> list[Snapshot]:
    """Every snapshot, oldest first. With ``errors``, damaged ones are collected, not raised."""
    out: list[Snapshot] = []
    loaded = fan_out(lambda i: load(repo, i), repo.snapshot_ids(), repo.parallel_reads)
    for _snapshot_id, snapshot, exc in loaded:
        if snapshot is not None:
            out.append(snapshot)
        elif isinstance(exc, IntegrityError) and errors is not None:
            errors.append(exc)
        elif exc is not None:
            raise exc
    out.sort(key=lambda s: (s.time_ns, s.id))
    return out


def resolve(repo: Repository, ref: str, damaged: list[IntegrityError] | None = None) -> Snapshot:
    """``latest``, a full ID, or a unique prefix of one.

    For ``latest``, damaged snapshots are passed over (and collected in ``damaged`` when given,
    so the caller can say so) rather than making every intact one unreachable.
    """
    if ref == "latest":
        errors: list[IntegrityError] = [] if damaged is None else damaged
        snapshots = load_all(repo, errors)
        if not snapshots:
            if errors:
                raise errors[0]
            raise UsageError("the repository has no snapshots")
        return snapshots[-1]
    ref = ref.lower()
    if not ref or any(c not in "0123456789abcdef" for c in ref):
        raise UsageError(f"{ref!r} is not a snapshot ID (hex digits or 'latest')")
    matches = [i for i in repo.snapshot_ids() if i.hex().startswith(ref)]
    if not matches:
        raise UsageError(f"no snapshot matches {ref!r}")
    if len(matches) > 1:
        raise UsageError(f"{ref!r} matches {len(matches)} snapshots: give more digits")
    return load(repo, matches[0])


@dataclass(frozen=True)
class Entry:
    """A node with its path inside the snapshot (``/``-separated bytes, no leading slash)."""

    path: bytes
    node: Node


def split_path(path: bytes) -> list[bytes]:
    return [p for p in os.path.normpath(b"/" + path).split(b"/") if p]


def walk(repo: Repository, tree: bytes, prefix: bytes = b"") -> Iterator[Entry]:
    """Depth-first, parents before children, names in byte order."""
    for node in decode_tree(repo.get_blob(tree), f"tree {tree.hex()[:16]}"):
        path = prefix + b"/" + node.name if prefix else node.name
        yield Entry(path, node)
        if node.type == NodeType.DIR and node.subtree is not None:
            yield from walk(repo, node.subtree, path)


def find(repo: Repository, tree: bytes, path: bytes) -> Entry | None:
    """The entry at ``path`` in the snapshot, or None."""
    parts = split_path(path)
    node: Node | None = None
    current = tree
    for i, part in enumerate(parts):
        nodes = {n.name: n for n in decode_tree(repo.get_blob(current))}
        node = nodes.get(part)
        if node is None:
            return None
        if i < len(parts) - 1:
            if node.type != NodeType.DIR or node.subtree is None:
                return None
            current = node.subtree
    if node is None:
        return None
    return Entry(b"/".join(parts), node)
