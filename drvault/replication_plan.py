"""What a keyless replication sends to each DR target, worked out from listings alone.

Replication copies objects byte for byte and never holds a key, so everything it decides comes
from what is readable without one: object names (content hashes), the config, and the pack lists
in the clear header of snapshots and index files (docs/format.md sections 1 and 7). A target gets
the snapshots it lacks, the packs they need, and the index files naming those packs, each with
its pack list, from which the engine tells when a snapshot may be committed. A snapshot's needs
are its list followed through the forwarding records (``forward/``) past every pack the source
no longer holds; the records a target will need go with them. What the source
cannot provide intact (a damaged snapshot, a needed pack that is gone, an index file whose pack
list is unreadable) is decided here as a skip with its reason, so the rest still goes.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field

from drvault.errors import (
    DrvaultError,
    IntegrityError,
    NotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
)
from drvault.repository import config as config_codec
from drvault.repository import envelope, forward, layout
from drvault.repository.crypto import sha256
from drvault.repository.fanout import fan_out
from drvault.transport.base import Backend

PackLists = Mapping[str, tuple[bytes, ...] | IntegrityError]


@dataclass(frozen=True)
class TargetPlan:
    """One target's share. Pack lists are the tuples read from the envelopes, shared by every
    target (a first replication of a large repository plans millions of pack references)."""

    name: str
    error: DrvaultError | None = None  # refused while planning: nothing is sent
    create: bool = False  # the target's root (directory, bucket) does not exist yet
    config: bool = False  # the target holds no config: it gets the source's
    keys: tuple[str, ...] = ()
    packs: Mapping[bytes, str] = field(default_factory=dict)  # pack name -> object path
    index: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)  # -> packs it names
    # A forwarding record -> its old packs; a snapshot that went through one lists them.
    forwards: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)
    # -> the packs it needs, and the forwarded names its list reached them through
    snapshots: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # "snapshots/<id>: reason"
    snapshots_present: int = 0  # at the target before the run


@dataclass(frozen=True)
class ReplicationPlan:
    config: bytes  # the source's config, verified
    targets: Mapping[str, TargetPlan]

    def jobs(self, kind: str) -> list[tuple[str, list[str]]]:
        """Each object of ``kind`` (config, keys, packs, index, forwards, snapshots) with the
        targets getting it, in name order: one read at the source serves them all."""
        wanted: dict[str, list[str]] = {}
        for name, target in self.targets.items():
            if target.error is not None:
                continue
            paths: Iterable[str] = {
                "config": (layout.CONFIG,) if target.config else (),
                "keys": target.keys,
                "packs": target.packs.values(),
                "index": target.index,
                "forwards": target.forwards,
                "snapshots": target.snapshots,
            }[kind]
            for path in paths:
                wanted.setdefault(path, []).append(name)
        return sorted(wanted.items())


@dataclass
class _Listing:
    """The repository objects one backend holds, by kind."""

    keys: set[str] = field(default_factory=set)
    packs: dict[bytes, str] = field(default_factory=dict)  # pack name -> object path
    index: set[str] = field(default_factory=set)
    snapshots: set[str] = field(default_factory=set)
    forwards: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, backend: Backend) -> _Listing:
        """Snapshots are listed first: a backup writes packs, then index files, then the
        snapshot, so whatever a listed snapshot needs is already there for the later listings,
        even while a backup runs at the source."""
        snapshots = set(_named(backend, layout.SNAPSHOTS))
        out = cls(
            snapshots=snapshots,
            index=set(_named(backend, layout.INDEX)),
            keys=set(_named(backend, layout.KEYS)),
            forwards=set(_named(backend, layout.FORWARD)),
        )
        for kind in layout.PACK_KINDS:
            for path in _named(backend, kind + "/"):
                name = layout.parse_hex_name(path)
                if name is not None and path == layout.pack_path(kind, name):
                    out.packs[name] = path
        return out


def _named(backend: Backend, prefix: str) -> list[str]:
    """Objects under ``prefix`` named by a hash (foreign files are not repository objects)."""
    return [i.name for i in backend.list(prefix) if layout.parse_hex_name(i.name) is not None]


def read_verified(backend: Backend, path: str) -> bytes:
    """A content-addressed object, checked against its name; IntegrityError if it is not whole."""
    try:
        raw = backend.get(path)
    except NotFoundError:
        raise IntegrityError(path, "missing") from None
    want = layout.parse_hex_name(path)
    if want is None or sha256(raw) != want:
        raise IntegrityError(path, "content does not match its name (SHA-256 mismatch)")
    return raw


def _pack_list(backend: Backend, path: str) -> tuple[bytes, ...]:
    magic = envelope.SNAPSHOT_MAGIC if path.startswith(layout.SNAPSHOTS) else envelope.INDEX_MAGIC
    try:
        return envelope.parse(read_verified(backend, path), magic).packs
    except envelope.MalformedEnvelope as exc:
        raise IntegrityError(path, str(exc)) from exc


def _read_pack_lists(
    backend: Backend, paths: Iterable[str], names: dict[bytes, bytes]
) -> PackLists:
    """Pack lists of verified envelopes (each pack name one shared object: big repositories
    repeat the same names in every snapshot); a damaged one maps to its IntegrityError."""
    out: dict[str, tuple[bytes, ...] | IntegrityError] = {}
    width = max(1, backend.capabilities.connections)
    for path, packs, exc in fan_out(lambda p: _pack_list(backend, p), sorted(paths), width):
        if isinstance(exc, IntegrityError):
            out[path] = exc
        elif exc is not None:
            raise exc
        else:
            out[path] = tuple(names.setdefault(p, p) for p in packs or ())
    return out


def source_config(source: Backend) -> bytes:
    """The source's config bytes, verified; RepositoryNotFoundError if there is no repository."""
    if not source.exists():
        raise RepositoryNotFoundError(f"{source.location}: repository does not exist")
    try:
        raw = source.get(layout.CONFIG)
        config_codec.decode(raw)
    except NotFoundError:
        raise RepositoryNotFoundError(f"{source.location}: not a drvault repository") from None
    except config_codec.MalformedConfig as exc:
        raise RepositoryNotFoundError(f"{source.location}: config unusable ({exc})") from None
    return raw


@dataclass
class _Survey:
    """What a target holds before the run."""

    create: bool  # no root yet
    config: bool  # no config yet
    held: _Listing


def _survey(target: Backend, config: bytes, source_keys: set[str]) -> _Survey:
    """Refuses a target holding another repository."""
    if not target.exists():
        return _Survey(True, True, _Listing())
    try:
        raw: bytes | None = target.get(layout.CONFIG)
    except NotFoundError:
        raw = None
    if raw is not None and raw != config:
        raise RepositoryExistsError(f"{target.location}: holds a different repository{_id(raw)}")
    held = _Listing.of(target)
    # A snapshot the target forgot (its retention) counts as held: never sent again.
    forgotten = {
        layout.SNAPSHOTS + name.hex()
        for name in map(layout.parse_hex_name, _named(target, layout.FORGOTTEN))
        if name is not None
    }
    held.snapshots |= forgotten
    if raw is None and held.keys - source_keys:
        raise RepositoryExistsError(
            f"{target.location}: holds a different repository (key slots, no config)"
        )
    return _Survey(False, raw is None, held)


def _id(raw: bytes) -> str:
    try:
        return f" ({config_codec.decode(raw)[0].repository_id.hex()[:16]}...)"
    except config_codec.MalformedConfig:
        return " (its config is unreadable)"


def plan(source: Backend, targets: Mapping[str, Backend]) -> ReplicationPlan:
    """What each target lacks. Raises when the source holds no repository or cannot be listed;
    a target that is unreachable or holds another repository gets a plan carrying its error."""
    config = source_config(source)
    src = _Listing.of(source)
    surveys: dict[str, _Survey | DrvaultError] = {}
    each = fan_out(lambda n: _survey(targets[n], config, src.keys), list(targets), len(targets))
    for name, found, exc in each:
        if found is not None:
            surveys[name] = found
        elif isinstance(exc, DrvaultError):
            surveys[name] = exc
        elif exc is not None:
            raise exc
    held = [s.held for s in surveys.values() if isinstance(s, _Survey)]
    names = {p: p for p in src.packs}
    snapshots = _read_pack_lists(
        source, set().union(*(src.snapshots - h.snapshots for h in held)), names
    )
    hungry = [h for h in held if src.snapshots - h.snapshots]
    index = _read_pack_lists(source, set().union(*(src.index - h.index for h in hungry)), names)
    forwards = _read_forwards(source, src.forwards) if src.forwards else forward.Forwards()
    sources = _Sources(source, src, snapshots, index, names, forwards)
    out: dict[str, TargetPlan] = {}
    for name, survey in surveys.items():
        if isinstance(survey, DrvaultError):
            out[name] = TargetPlan(name, error=survey)
        else:
            out[name] = _plan_target(name, survey, sources)
    return ReplicationPlan(config, out)


@dataclass(frozen=True)
class _Sources:
    """The source side of planning, shared by every target."""

    backend: Backend
    listing: _Listing
    snapshots: PackLists
    index: PackLists
    names: dict[bytes, bytes]
    forwards: forward.Forwards


def _read_forwards(backend: Backend, paths: Iterable[str]) -> forward.Forwards:
    """The source's intact forwarding records (a damaged one is left out: the snapshots that
    would need it are held back as missing a pack)."""
    out = forward.Forwards()
    width = max(1, backend.capabilities.connections)
    read = fan_out(lambda p: forward.decode(read_verified(backend, p), p), sorted(paths), width)
    for path, moved, exc in read:
        if isinstance(exc, IntegrityError):
            continue
        if exc is not None:
            raise exc
        assert moved is not None
        out.add(path, moved)
    return out


def _resolve(
    packs: tuple[bytes, ...],
    source: Container[bytes],
    target: Container[bytes],
    forwards: forward.Forwards,
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """A snapshot's needs: (packs, forwarded names it went through that are nowhere now). A
    forwarded pack is followed to its targets even while it still exists (a prune that died
    before deleting it left it in no index file), and kept too when it exists. A pack nowhere
    and not forwarded is returned as needed: the caller reports it missing."""
    real: set[bytes] = set()
    walked: set[bytes] = set()
    stack = list(packs)
    while stack:
        p = stack.pop()
        if p in real or p in walked:
            continue
        targets = forwards.moved.get(p)
        if targets is None or p in source or p in target:
            real.add(p)
        else:
            walked.add(p)
        stack.extend(targets or ())
    return tuple(sorted(real)), tuple(sorted(walked))


def _plan_target(name: str, survey: _Survey, sources: _Sources) -> TargetPlan:
    src, held = sources.listing, survey.held
    skipped: dict[str, str] = {}
    kept: dict[str, tuple[bytes, ...]] = {}
    walked: dict[str, tuple[bytes, ...]] = {}  # forwarded names each snapshot went through
    for path in sorted(src.snapshots - held.snapshots):
        doc = sources.snapshots[path]
        if isinstance(doc, IntegrityError):
            skipped[path] = f"damaged at source ({doc.reason})"
        elif sources.forwards.moved:
            kept[path], walked[path] = _resolve(doc, src.packs, held.packs, sources.forwards)
        else:
            kept[path] = doc
    needed: set[bytes] = set().union(*kept.values())
    lacking = {i: sources.index[i] for i in sorted(src.index - held.index)} if kept else {}
    damaged = [str(e) for e in lacking.values() if isinstance(e, IntegrityError)]
    index = {
        i: ps
        for i, ps in lacking.items()
        if not isinstance(ps, IntegrityError) and not needed.isdisjoint(ps)
    }
    missing = {p for p in needed if p not in src.packs and p not in held.packs}
    withheld = {i: next((p for p in ps if p in missing), None) for i, ps in index.items()}
    naming: dict[bytes, list[str]] = {}
    for path, ps in index.items():
        for p in ps:
            naming.setdefault(p, []).append(path)
    covered = _covered(sources, held, needed, index, withheld) if damaged else None
    for path, ps in list(kept.items()):
        reason = _blocker(ps, missing, naming, withheld, covered)
        if reason is not None:
            skipped[path] = reason + (f" ({damaged[0]})" if covered is not None else "")
            del kept[path]
    needed = set().union(*kept.values())
    index = {i: ps for i, ps in index.items() if withheld[i] is None and not needed.isdisjoint(ps)}
    packs = {
        p: src.packs[p]
        for p in needed.union(*index.values())
        if p in src.packs and p not in held.packs
    }
    # The forwarding records the target lacks that it will read: those its new snapshots went
    # through, and those naming a pack it holds (a later keyless prune there drops it).
    through: set[bytes] = set().union(*(walked.get(p, ()) for p in kept))
    forwards = {
        path: olds
        for path, olds in sources.forwards.files.items()
        if path not in held.forwards
        and (not through.isdisjoint(olds) or any(o in held.packs for o in olds))
    }
    return TargetPlan(
        name,
        create=survey.create,
        config=survey.config,
        keys=tuple(sorted(src.keys - held.keys)),
        packs=packs,
        index=index,
        forwards=forwards,
        snapshots={p: ps + walked.get(p, ()) for p, ps in kept.items()},
        skipped=tuple(f"{s}: {why}" for s, why in sorted(skipped.items())),
        snapshots_present=len(held.snapshots),
    )


def _blocker(
    packs: tuple[bytes, ...],
    missing: set[bytes],
    naming: dict[bytes, list[str]],
    withheld: Mapping[str, bytes | None],
    covered: set[bytes] | None,
) -> str | None:
    """Why a snapshot could not be complete at the target, or None."""
    for p in packs:
        if p in missing:
            return f"pack {p.hex()} missing at source"
    for p in packs:
        for path in naming.get(p, ()):
            gone = withheld[path]
            if gone is not None:
                return f"{path} withheld: it names pack {gone.hex()}, missing at source"
    if covered is not None:
        for p in packs:
            if p not in covered:
                return f"pack {p.hex()} is in no intact index file"
    return None


def _covered(
    sources: _Sources,
    held: _Listing,
    needed: set[bytes],
    index: Mapping[str, tuple[bytes, ...]],
    withheld: Mapping[str, bytes | None],
) -> set[bytes]:
    """Packs an intact index file covers, at the target or on its way there.

    Asked only when an index file the target lacks is damaged at the source: its pack list is
    unknown, so each needed pack must be shown covered by another one. The target's own index
    files are read at the source (same names, same bytes), only when needed."""
    covered: set[bytes] = set().union(*(ps for i, ps in index.items() if withheld[i] is None))
    if not needed <= covered:
        there = _read_pack_lists(sources.backend, held.index & sources.listing.index, sources.names)
        for packs in there.values():
            if not isinstance(packs, IntegrityError):
                covered.update(packs)
    return covered
