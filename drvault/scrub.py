"""Scrub: read every object of a repository and prove it whole, or name each one that is not.

Keyless (any center, no password): every content-addressed object (key slots, packs, index
files, snapshots, forwarding records, drill records) is read in full and its SHA-256 compared
with its name; the config is decoded (it carries its own checksum); snapshots, index files and
forwarding records are parsed, and every pack they name must be present (a snapshot's list is
followed through the forwarding records past packs a prune removed). With the key, every blob
of every pack read is also decrypted and checked against its ID, and every index file and
snapshot body opened.

What it finds is a list of problems, each with the object's path:

- ``corrupt``: present, but its bytes do not match its name, or it does not parse/decrypt;
- ``missing``: named by a snapshot or an index file, absent;
- ``unindexed``: a pack a snapshot needs that no intact index file names (its index file is
  missing or corrupt): restore could not find its blobs;
- ``unreadable``: the backend refused to read it (an outage is raised, not listed).

Archived data packs (GLACIER, DEEP_ARCHIVE) cannot be read without a thaw: they are counted
and listed by name as not verified, never thawed by a scrub.

SHA-256 runs at about 1.8 GB/s a core here, well above what a disk or network delivers, so
there is no weaker pre-pass (an xxHash of a pack says nothing its SHA-256 would not).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from drvault.errors import (
    ArchivedError,
    DrvaultError,
    IntegrityError,
    NotFoundError,
    TransientError,
)
from drvault.policy.model import ARCHIVE_CLASSES
from drvault.repository import config as config_codec
from drvault.repository import envelope, forward, layout
from drvault.repository.crypto import sha256
from drvault.repository.fanout import fan_out
from drvault.repository.index import PackRef
from drvault.repository.pack import MalformedPack, parse_prelude
from drvault.repository.repository import Repository
from drvault.transport.base import Backend, ObjectInfo

Kind = Literal["corrupt", "missing", "unindexed", "unreadable"]

# Content-addressed prefixes, in the order they are read (small metadata first).
HASHED = (
    layout.KEYS,
    layout.SNAPSHOTS,
    layout.INDEX,
    layout.FORWARD,
    layout.DRILLS,
    "tree/",
    "data/",
)
MAX_PACKS_IN_FLIGHT = 4  # whole packs held at once: bounds memory


@dataclass(frozen=True)
class Problem:
    path: str  # the object's path; "pack <hex>" for a missing pack (its kind is unknown)
    kind: Kind
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.reason}"


@dataclass
class ScrubStats:
    objects: int = 0  # read and verified
    bytes: int = 0
    blobs: int = 0  # decrypted and verified (keyed)
    archived: int = 0  # not read: in an archive class


@dataclass
class ScrubResult:
    keyed: bool
    stats: ScrubStats = field(default_factory=ScrubStats)
    problems: list[Problem] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def paths(self, *kinds: Kind) -> list[str]:
        return [p.path for p in self.problems if not kinds or p.kind in kinds]


Progress = Callable[[ScrubStats], None]


@dataclass
class _Structure:
    """Pack lists read from the verified envelopes."""

    snapshots: dict[str, tuple[bytes, ...]] = field(default_factory=dict)
    index: dict[str, tuple[bytes, ...]] = field(default_factory=dict)
    forwards: forward.Forwards = field(default_factory=forward.Forwards)


def _parse(path: str, raw: bytes, structure: _Structure, repo: Repository | None) -> None:
    """Parse a verified metadata object into ``structure``; IntegrityError if it does not.
    With the key, open what is sealed."""
    try:
        if path.startswith(layout.SNAPSHOTS):
            env = envelope.parse(raw, envelope.SNAPSHOT_MAGIC)
            if repo is not None:
                envelope.open_body(env, repo.suite, repo.master.enc)
            structure.snapshots[path] = env.packs
        elif path.startswith(layout.INDEX):
            env = envelope.parse(raw, envelope.INDEX_MAGIC)
            if repo is not None:
                envelope.open_body(env, repo.suite, repo.master.enc)
            structure.index[path] = env.packs
        elif path.startswith(layout.FORWARD):
            structure.forwards.add(path, forward.decode(raw, path))
        elif path.startswith(layout.DRILLS):
            env = envelope.parse(raw, envelope.DRILL_MAGIC)
            if repo is not None:
                envelope.open_body(env, repo.suite, repo.master.enc)
    except envelope.MalformedEnvelope as exc:
        raise IntegrityError(path, str(exc)) from exc


def _verify_pack(repo: Repository, path: str, raw: bytes) -> int:
    """Decrypt every blob of a (hash-verified) pack and check it against its ID."""
    kind, entries = repo.pack_entries(path, raw)
    name = layout.parse_hex_name(path)
    assert name is not None
    try:
        _code, salt = parse_prelude(raw)
    except MalformedPack as exc:
        raise IntegrityError(path, str(exc)) from exc
    ref = PackRef(name, kind, salt)
    view = memoryview(raw)
    for e in entries:
        repo.open_blob(e, view[e.offset : e.offset + e.length], pack=ref)
    return len(entries)


def _listing(backend: Backend) -> dict[str, ObjectInfo]:
    out: dict[str, ObjectInfo] = {}
    for prefix in HASHED:
        for info in backend.list(prefix):
            if layout.parse_hex_name(info.name) is not None:
                out[info.name] = info
    return out


def scrub(
    backend: Backend,
    repo: Repository | None = None,
    *,
    only: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> ScrubResult:
    """Scrub the repository on ``backend``; keyed when ``repo`` (opened on it) is given.

    ``only``: verify the bytes of just these objects (metadata is always read: the structure
    check needs every pack list). Raises on an outage (TransientError) or when there is no
    repository at all; everything else is a problem in the result."""
    result = ScrubResult(keyed=repo is not None)
    problems = result.problems
    try:
        config_codec.decode(backend.get(layout.CONFIG))
    except NotFoundError:
        problems.append(Problem(layout.CONFIG, "missing", "no config"))
    except config_codec.MalformedConfig as exc:
        problems.append(Problem(layout.CONFIG, "corrupt", str(exc)))
    listed = _listing(backend)
    chosen = None if only is None else set(only)
    structure = _Structure()
    packs_to_read: list[str] = []
    small: list[str] = []
    for path, info in listed.items():
        is_pack = path.startswith(("data/", "tree/"))
        if is_pack and (chosen is None or path in chosen):
            if path.startswith("data/") and (info.storage_class or "") in ARCHIVE_CLASSES:
                result.archived.append(path)
                result.stats.archived += 1
            else:
                packs_to_read.append(path)
        elif not is_pack:
            small.append(path)

    def read(path: str) -> tuple[int, int, bytes | None]:
        """(bytes, blobs verified, the bytes of a metadata object), in a worker thread."""
        raw = backend.get(path)
        want = layout.parse_hex_name(path)
        if want is None or sha256(raw) != want:
            raise IntegrityError(path, "content does not match its name (SHA-256 mismatch)")
        if path.startswith(("data/", "tree/")):
            return len(raw), _verify_pack(repo, path, raw) if repo is not None else 0, None
        return len(raw), 0, raw

    width = max(1, backend.capabilities.connections)
    for paths, parallel in ((small, width), (packs_to_read, min(width, MAX_PACKS_IN_FLIGHT))):
        for path, done, failure in fan_out(read, paths, parallel):
            if failure is None and done is not None and done[2] is not None:
                try:
                    _parse(path, done[2], structure, repo)
                except IntegrityError as exc:
                    failure = exc
            if failure is None:
                assert done is not None
                result.stats.objects += 1
                result.stats.bytes += done[0]
                result.stats.blobs += done[1]
            elif isinstance(failure, IntegrityError):
                problems.append(Problem(path, "corrupt", failure.reason))
            elif isinstance(failure, NotFoundError):
                pass  # deleted since the listing (a prune): not a problem of this copy
            elif isinstance(failure, (TransientError, ArchivedError)):
                raise failure
            elif isinstance(failure, DrvaultError):
                problems.append(Problem(path, "unreadable", str(failure)))
            else:
                raise failure
            if progress is not None:
                progress(result.stats)
    problems.extend(_structure_problems(structure, listed, {p.path for p in problems}))
    problems.sort(key=lambda p: (p.path, p.kind))
    return result


def _structure_problems(
    structure: _Structure, listed: dict[str, ObjectInfo], bad: set[str]
) -> list[Problem]:
    """Packs named but absent, and needed packs no intact index file names."""
    present = {layout.parse_hex_name(p): p for p in listed if p.startswith(("data/", "tree/"))}
    out: list[Problem] = []
    seen: set[bytes] = set()
    indexed: set[bytes] = set()
    for path, packs in sorted(structure.index.items()):
        indexed.update(packs)
        for p in packs:
            if p not in present and p not in seen:
                seen.add(p)
                out.append(Problem(_pack_name(p), "missing", f"named by {path}"))
    forwards = structure.forwards
    for path, packs in sorted(structure.snapshots.items()):
        stack = list(packs)
        walked: set[bytes] = set()
        while stack:
            p = stack.pop()
            if p in walked:
                continue
            walked.add(p)
            targets = forwards.moved.get(p)
            if targets is not None:
                stack.extend(targets)
                if p not in present:
                    continue  # removed by a prune: its needed blobs are in the targets
            if p not in present:
                if p not in seen:
                    seen.add(p)
                    out.append(Problem(_pack_name(p), "missing", f"needed by {path}"))
            elif p not in indexed and present[p] not in bad:
                out.append(
                    Problem(present[p], "unindexed", f"needed by {path}, in no intact index file")
                )
                indexed.add(p)  # once
    return out


MISSING_PACK = "pack "


def _pack_name(name: bytes) -> str:
    """A missing pack, known only by name (a pack list does not say its kind)."""
    return MISSING_PACK + name.hex()


def describe(result: ScrubResult) -> str:
    s = result.stats
    mode = "keyed" if result.keyed else "keyless"
    text = f"{mode} scrub: {s.objects} object(s) verified"
    if result.keyed:
        text += f", {s.blobs} blob(s) decrypted"
    if s.archived:
        text += f", {s.archived} archived pack(s) not read"
    return text


def to_json(result: ScrubResult) -> dict[str, object]:
    return {
        "mode": "keyed" if result.keyed else "keyless",
        "objects": result.stats.objects,
        "bytes": result.stats.bytes,
        "blobs": result.stats.blobs,
        "archived": result.archived,
        "problems": [{"path": p.path, "kind": p.kind, "reason": p.reason} for p in result.problems],
        "ok": result.ok,
    }


def dumps(result: ScrubResult) -> str:
    return json.dumps(to_json(result), sort_keys=True)
