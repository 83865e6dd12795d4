"""Repair: heal one copy of a repository from another center that holds a good copy.

Every object of a repository except the config is named by the SHA-256 of its bytes, at every
center alike, so a good copy of a damaged object can be fetched from any other center and
proven good before it is written: that is what makes healing from a replica safe. Nothing is
decrypted; repair needs no password.

1. Scrub the target keylessly (drvault.scrub): corrupt, missing and unindexed objects.
2. For each, from the first source holding a copy that verifies against its name: packs first,
   then index files, then forwarding records, snapshots and key slots (the commit order, so a
   repair killed at any moment leaves nothing worse than before). A missing or corrupt config is
   replaced by the source's only when the source's key slots are the target's (the same
   repository). A pack no intact index file names gets the source's index files that name it
   (and any pack those name that the target lacks: no index file may name a missing pack).
3. Replicate from each source what the target lacks for the snapshots it should hold (a
   snapshot deleted at the target, not forgotten there), through the replication engine.
4. Scrub again: the objects written are read back and verified, and the structure rechecked.

A target object is only ever replaced when the scrub found it bad (its bytes do not match its
name, or it does not parse): a good object is never overwritten, and a copy that does not
verify is never written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from drvault.errors import DrvaultError, IntegrityError, NotFoundError, TransientError
from drvault.replicate import replicate
from drvault.replication_plan import read_verified
from drvault.repository import config as config_codec
from drvault.repository import envelope, layout
from drvault.scrub import MISSING_PACK, Problem, ScrubResult, scrub
from drvault.transport.base import Backend

Progress = Callable[[str], None]


@dataclass
class RepairResult:
    before: ScrubResult
    after: ScrubResult | None = None
    repaired: dict[str, str] = field(default_factory=dict)  # path -> the source it came from
    unrepaired: dict[str, str] = field(default_factory=dict)  # path -> why
    snapshots_restored: int = 0  # sent by the replication step
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.after is not None and self.after.ok and not self.errors


_ORDER = (
    "data/",
    "tree/",
    layout.INDEX,
    layout.FORWARD,
    layout.DRILLS,
    layout.SNAPSHOTS,
    layout.KEYS,
)


def _rank(path: str) -> int:
    return next((i for i, p in enumerate(_ORDER) if path.startswith(p)), len(_ORDER))


class _Sources:
    """The other centers, each listed once, asked in order."""

    def __init__(self, sources: Mapping[str, Backend]) -> None:
        self.backends = dict(sources)
        self._packs: dict[str, dict[bytes, str]] = {}
        self._index: dict[str, dict[str, tuple[bytes, ...]]] = {}

    def pack_paths(self, source: str) -> dict[bytes, str]:
        found = self._packs.get(source)
        if found is None:
            found = {}
            for kind in layout.PACK_KINDS:
                for info in self.backends[source].list(kind + "/"):
                    name = layout.parse_hex_name(info.name)
                    if name is not None:
                        found[name] = info.name
            self._packs[source] = found
        return found

    def index_lists(self, source: str) -> dict[str, tuple[bytes, ...]]:
        """Every intact index file at the source with its pack list."""
        found = self._index.get(source)
        if found is None:
            found = {}
            backend = self.backends[source]
            for info in backend.list(layout.INDEX):
                if layout.parse_hex_name(info.name) is None:
                    continue
                try:
                    raw = read_verified(backend, info.name)
                    found[info.name] = envelope.parse(raw, envelope.INDEX_MAGIC).packs
                except (IntegrityError, envelope.MalformedEnvelope):
                    continue
            self._index[source] = found
        return found

    def fetch(self, path: str) -> tuple[str, bytes] | None:
        """A verified copy of ``path`` (a missing pack's path is resolved by name at each
        source); (source, bytes) or None when no source has a good one."""
        for source, backend in self.backends.items():
            where = path
            if path.startswith(MISSING_PACK):
                located = self.pack_paths(source).get(bytes.fromhex(path[len(MISSING_PACK) :]))
                if located is None:
                    continue
                where = located
            try:
                return source, read_verified(backend, where)
            except IntegrityError:
                continue
            except NotFoundError:
                continue
        return None

    def locate(self, path: str) -> str:
        """The real path of a missing pack (by name at any source), else ``path``."""
        if not path.startswith(MISSING_PACK):
            return path
        name = bytes.fromhex(path[len(MISSING_PACK) :])
        for source in self.backends:
            located = self.pack_paths(source).get(name)
            if located is not None:
                return located
        return path


def _config_problem(problem: Problem) -> bool:
    return problem.path == layout.CONFIG


def _same_repository(target: Backend, source: Backend) -> bool:
    """The target's key slots (what survives of it) are all the source's."""
    mine = {i.name for i in target.list(layout.KEYS)}
    theirs = {i.name for i in source.list(layout.KEYS)}
    return bool(mine) and mine <= theirs


def repair(
    target: Backend,
    sources: Mapping[str, Backend],
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RepairResult:
    """Heal ``target`` from ``sources`` (name -> backend, asked in order)."""
    before = scrub(target)
    result = RepairResult(before)
    if dry_run:
        return result
    pool = _Sources(sources)
    todo: dict[str, Problem] = {}
    for problem in before.problems:
        todo.setdefault(problem.path, problem)
    _add_index_files(pool, target, todo, before)
    for path in sorted(todo, key=lambda p: (_rank(pool.locate(p)), p)):
        problem = todo[path]
        if problem.kind == "unindexed":
            continue  # healed by the index files added for it
        if _config_problem(problem):
            _repair_config(target, pool, result)
            continue
        found = pool.fetch(path)
        if found is None:
            result.unrepaired[path] = f"{problem.kind}; no center holds a good copy"
            continue
        source, raw = found
        where = pool.locate(path)
        try:
            target.put(where, raw)
        except TransientError:
            raise  # the copy is unreachable: stop here, a rerun goes on from its scrub
        except DrvaultError as exc:
            result.unrepaired[path] = f"could not be written: {exc}"
            continue
        result.repaired[where] = source
        if progress is not None:
            progress(f"{where}: replaced from {source}")
    for name, backend in sources.items():
        try:
            sent = replicate(backend, {"target": target})["target"]
        except DrvaultError as exc:
            result.errors.append(f"replication from {name}: {exc}")
            continue
        if sent.error is not None:
            result.errors.append(f"replication from {name}: {sent.error}")
        result.snapshots_restored += sent.snapshots_sent
    result.after = scrub(target, only=list(result.repaired))
    return result


def _add_index_files(
    pool: _Sources, target: Backend, todo: dict[str, Problem], before: ScrubResult
) -> None:
    """For each unindexed pack: the source index files naming it, and the packs those name
    that the target lacks."""
    unindexed = [p for p in before.problems if p.kind == "unindexed"]
    if not unindexed:
        return
    present: set[bytes] = set()
    for kind in layout.PACK_KINDS:
        for info in target.list(kind + "/"):
            name = layout.parse_hex_name(info.name)
            if name is not None:
                present.add(name)
    for problem in unindexed:
        want = layout.parse_hex_name(problem.path)
        for source in pool.backends:
            naming = [i for i, ps in pool.index_lists(source).items() if want in ps]
            if not naming:
                continue
            for index_path in naming:
                todo.setdefault(index_path, Problem(index_path, "missing", f"names {problem.path}"))
                for p in pool.index_lists(source)[index_path]:
                    if p not in present:
                        missing = MISSING_PACK + p.hex()
                        todo.setdefault(missing, Problem(missing, "missing", index_path))
            break


def _repair_config(target: Backend, pool: _Sources, result: RepairResult) -> None:
    for name, backend in pool.backends.items():
        try:
            raw = backend.get(layout.CONFIG)
            config_codec.decode(raw)
        except (NotFoundError, config_codec.MalformedConfig):
            continue
        if not _same_repository(target, backend):
            result.unrepaired[layout.CONFIG] = f"{name} holds another repository"
            return
        target.put(layout.CONFIG, raw)
        result.repaired[layout.CONFIG] = name
        return
    result.unrepaired[layout.CONFIG] = "no center holds a good config"


def summary(result: RepairResult) -> Iterable[str]:
    for path, source in sorted(result.repaired.items()):
        yield f"repaired {path} from {source}"
    for path, why in sorted(result.unrepaired.items()):
        yield f"not repaired {path}: {why}"
