"""Prune: remove what no snapshot needs, and repack what is partly needed.

Two ways to know what is needed, one plan shape and one order of deletions:

- **keyless** (a DR center, or no password): from the inventory alone. A snapshot needs the
  packs its plaintext list names, followed through the forwarding records past every pack
  whose targets are all here (superseded). A pack nothing needs is deleted only together with
  every index file naming it, and an index file only when each needed pack it names is also
  named by another index file that stays: without the key an index file cannot be rewritten,
  and no index may name a pack that is gone.
- **keyed**: the trees of every snapshot are walked for the blobs they need. Packs holding none
  are deleted; partly needed packs are repacked (their needed blobs copied, still sealed, into
  new packs) until the unneeded bytes left inside packs are within ``max_unused`` of the used
  bytes, at most ``max_repack`` bytes of packs read. Every index file naming a removed pack is
  replaced by one naming the packs that stay. For each removed pack a snapshot still lists
  (through the closure), a forwarding record names the packs now holding its needed blobs, so
  replication, keyless prune and check read the snapshot's needs without the key.

The order keeps every intermediate state safe to die in: (1) new packs and their index files;
(2) the forwarding record; (3) the replacement index files; (4) delete the old index files, and
stop if any delete fails; (5) delete the packs; (6) delete forwarding records nothing reaches.
``guard`` (the exclusive lock's check) runs before each delete phase. An object that an Object
Lock protects is never deleted: the plan keeps it, and keeps every pack an undeletable index
file names.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from drvault.errors import DrvaultError, IntegrityError, NotFoundError
from drvault.inventory import Inventory, take_inventory
from drvault.objectlock import cold_storage, extend, protected
from drvault.policy.model import ARCHIVE_CLASSES
from drvault.repository import forward, layout
from drvault.repository.fanout import fan_out
from drvault.repository.index import PackRef
from drvault.repository.pack import PackEntry
from drvault.repository.repository import INDEX_EVERY_PACKS, Repository
from drvault.snapshot import NodeType, decode_tree
from drvault.snapshots import load_all
from drvault.transport.base import Backend

DEFAULT_MAX_UNUSED = 0.05  # unneeded bytes tolerated inside packs, as a share of needed bytes

Guard = Callable[[], None]


@dataclass
class PrunePlan:
    keyed: bool
    snapshots: int = 0
    packs: int = 0
    pack_bytes: int = 0
    unneeded_bytes: int = 0  # bytes of unneeded blobs or packs, before any limit
    delete_packs: dict[str, int] = field(default_factory=dict)  # path -> size (repacked too)
    repack: dict[str, int] = field(default_factory=dict)  # of delete_packs: repacked first
    repack_needed: int = 0  # needed bytes the repack copies
    partly: int = 0  # partly needed packs left as they are
    partly_unneeded: int = 0  # unneeded bytes inside them
    partly_cold: int = 0  # of those: in an archive class (not repacked: a read needs a thaw)
    superseded: int = 0  # forwarded packs no longer needed (keyless)
    forward: list[bytes] = field(default_factory=list)  # removed packs a snapshot still lists
    delete_forwards: list[str] = field(default_factory=list)  # records nothing reaches any more
    delete_index: list[str] = field(default_factory=list)
    rewrite_index: list[str] = field(default_factory=list)  # of delete_index: replaced (keyed)
    locked: dict[str, float | None] = field(default_factory=dict)  # kept: Object Lock until
    held: list[str] = field(
        default_factory=list
    )  # unneeded, kept: an index file that stays names it
    needed_objects: list[str] = field(default_factory=list)  # to keep locked (Object Lock)

    @property
    def delete_bytes(self) -> int:
        return sum(self.delete_packs.values())


@dataclass
class PruneResult:
    plan: PrunePlan
    packs_deleted: int = 0
    bytes_deleted: int = 0
    packs_written: int = 0  # by the repack
    bytes_written: int = 0
    blobs_repacked: int = 0
    forward_written: str | None = None
    forwards_deleted: int = 0
    index_deleted: int = 0
    index_written: int = 0
    locks_extended: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def bytes_reclaimed(self) -> int:
        return self.bytes_deleted - self.bytes_written


# ------------------------------------------------------------------------------ planning


def _lock_state(plan: PrunePlan, backend: Backend, paths: list[str], now: float) -> set[str]:
    """The paths an Object Lock protects now, noted in the plan."""
    locked = protected(backend, paths, now)
    for path, state in locked.items():
        plan.locked[path] = None if state.legal_hold else state.retain_until
    return set(locked)


def _hold(plan: PrunePlan, inv: Inventory, removed: set[bytes], names: tuple[bytes, ...]) -> None:
    for name in names:
        if name in removed and name in inv.packs:
            removed.discard(name)
            plan.held.append(inv.packs[name].name)


def plan_keyless(backend: Backend, inv: Inventory, now: float) -> PrunePlan:
    plan = PrunePlan(keyed=False, snapshots=len(inv.snapshots), packs=len(inv.packs))
    plan.pack_bytes = inv.pack_bytes()
    needed = inv.needed()
    indexed = inv.indexed()
    plan.superseded = sum(
        1 for n in inv.reachable() if n in inv.packs and inv.superseded(n, indexed)
    )
    removed = {n for n in inv.packs if n not in needed}
    plan.unneeded_bytes = sum(inv.packs[n].size for n in removed)
    naming = sorted(p for p, packs in inv.index_files.items() if removed.intersection(packs))
    garbage = inv.forwards.garbage(inv.reachable())
    locked = _lock_state(
        plan, backend, [*naming, *(inv.packs[n].name for n in removed), *garbage], now
    )
    # An index file goes only when every needed pack it names stays named by another one.
    namers = Counter(p for packs in inv.index_files.values() for p in set(packs))
    for path in naming:
        packs = set(inv.index_files[path])
        if path not in locked and all(namers[p] >= 2 for p in packs if p in needed):
            plan.delete_index.append(path)
            namers.subtract(packs)
        else:
            _hold(plan, inv, removed, inv.index_files[path])
    removed = {n for n in removed if inv.packs[n].name not in locked}
    plan.delete_packs = {inv.packs[n].name: inv.packs[n].size for n in sorted(removed)}
    plan.delete_forwards = [p for p in garbage if p not in locked]
    plan.needed_objects = _needed_objects(inv, needed, set(plan.delete_index), garbage)
    return plan


def _used_blobs(repo: Repository) -> tuple[set[bytes], int]:
    """Every blob (trees and file contents) some snapshot needs; (blobs, snapshot count).
    A damaged snapshot or tree, or a needed blob in no index, refuses the prune."""
    errors: list[IntegrityError] = []
    snapshots = load_all(repo, errors)
    if errors:
        first = errors[0]
        raise IntegrityError(
            first.name, f"{first.reason}; prune refuses (what it needs is unknown)"
        )
    used: set[bytes] = set()
    stack = [s.tree for s in snapshots]
    while stack:
        tree_id = stack.pop()
        if tree_id in used:
            continue
        used.add(tree_id)
        if tree_id not in repo.index:
            raise IntegrityError(f"tree {tree_id.hex()[:16]}", "in no index; prune refuses")
        for node in decode_tree(repo.get_blob(tree_id), f"tree {tree_id.hex()[:16]}"):
            if node.type == NodeType.DIR and node.subtree is not None:
                stack.append(node.subtree)
            for blob_id in node.content:
                used.add(blob_id)
    missing = [b for b in used if b not in repo.index]
    if missing:
        raise IntegrityError(
            f"blob {missing[0].hex()[:16]}",
            f"needed but in no index ({len(missing)} such); prune refuses",
        )
    return used, len(snapshots)


@dataclass
class _Usage:
    ref: PackRef
    used: int = 0  # bytes of needed blobs found here first
    unused: int = 0


@dataclass
class KeyedPlan:
    """A keyed plan and what carrying it out needs."""

    plan: PrunePlan
    used: set[bytes]
    repack: list[PackRef] = field(default_factory=list)


def _choose_repack(
    plan: PrunePlan,
    inv: Inventory,
    usage: dict[bytes, _Usage],
    max_unused: float,
    max_repack: int | None,
) -> list[bytes]:
    """Partly needed packs to repack, the most wasteful first, until the unneeded bytes left
    inside packs are at most ``max_unused`` of the needed bytes. Archived packs are left (a
    read would wait for a thaw) and counted."""
    partly = [n for n, u in usage.items() if u.used and u.unused and n in inv.packs]
    partly.sort(key=lambda n: (-usage[n].unused / (usage[n].used + usage[n].unused), n))
    allowed = max_unused * sum(u.used for u in usage.values())
    left = sum(usage[n].unused for n in partly)
    chosen: list[bytes] = []
    budget = 0
    for name in partly:
        if left <= allowed:
            break
        info = inv.packs[name]
        if (info.storage_class or "STANDARD") in ARCHIVE_CLASSES:
            plan.partly_cold += 1
            continue
        if max_repack is not None and budget + info.size > max_repack:
            continue
        chosen.append(name)
        budget += info.size
        left -= usage[name].unused
    return chosen


def plan_keyed(
    repo: Repository,
    inv: Inventory,
    now: float,
    *,
    max_unused: float = DEFAULT_MAX_UNUSED,
    max_repack: int | None = None,
) -> KeyedPlan:
    used, count = _used_blobs(repo)
    plan = PrunePlan(keyed=True, snapshots=count, packs=len(inv.packs))
    plan.pack_bytes = inv.pack_bytes()
    usage: dict[bytes, _Usage] = {}
    for entry in repo.index.entries():
        u = usage.get(entry.pack.name)
        if u is None:
            u = usage[entry.pack.name] = _Usage(entry.pack)
        if entry.blob_id in used:
            u.used += entry.length
        else:
            u.unused += entry.length
    # A blob stored twice (concurrent writers, or a prune that died after its repack) is
    # needed once: in the pack the index finds first. Its other copies are waste.
    refs = {ref.name: ref for ref in repo.index.packs}
    for blob_id, name in repo.index.further_copies():
        first = repo.index.get(blob_id)
        if first is not None:
            usage.setdefault(name, _Usage(refs[name])).unused += first.length
    missing = [n for n, u in usage.items() if n not in inv.packs and u.used]
    if missing:
        ref = usage[missing[0]].ref
        raise IntegrityError(
            layout.pack_path(ref.kind, ref.name), "needed but missing; prune refuses"
        )
    removed = {n for n in inv.packs if n not in usage or not usage[n].used}
    plan.unneeded_bytes = sum(inv.packs[n].size for n in removed)
    plan.unneeded_bytes += sum(u.unused for n, u in usage.items() if u.used and n in inv.packs)
    repack = set(_choose_repack(plan, inv, usage, max_unused, max_repack))
    removed |= repack
    # A removed pack a snapshot still lists gets a forwarding record, computed from the index
    # files naming it; one no intact index file names cannot be forwarded, so it stays.
    reachable = inv.reachable()
    indexed = inv.indexed()
    for name in sorted(removed & reachable):
        if name not in indexed:
            removed.discard(name)
            plan.held.append(inv.packs[name].name)
    removed |= {n for n in usage if n not in inv.packs}  # gone already: only the index names it
    naming = [p for p, packs in inv.index_files.items() if removed.intersection(packs)]
    garbage = inv.forwards.garbage(reachable)
    locked = _lock_state(
        plan,
        repo.backend,
        [*naming, *(inv.packs[n].name for n in removed if n in inv.packs), *garbage],
        now,
    )
    for path in naming:
        if path in locked:
            _hold(plan, inv, removed, inv.index_files[path])
        else:
            plan.delete_index.append(path)
    removed = {n for n in removed if n not in inv.packs or inv.packs[n].name not in locked}
    out = KeyedPlan(plan, used)
    for name in sorted(removed):
        if name in inv.packs:
            plan.delete_packs[inv.packs[name].name] = inv.packs[name].size
        if name in repack:
            plan.repack[inv.packs[name].name] = inv.packs[name].size
            plan.repack_needed += usage[name].used
            out.repack.append(usage[name].ref)
    left = [
        n for n, u in usage.items() if u.used and u.unused and n in inv.packs and n not in removed
    ]
    plan.partly = len(left)
    plan.partly_unneeded = sum(usage[n].unused for n in left)
    plan.forward = sorted(removed & reachable)
    plan.rewrite_index = list(plan.delete_index)
    plan.delete_forwards = [p for p in garbage if p not in locked]
    kept = {n for n in inv.packs if n not in removed}
    plan.needed_objects = _needed_objects(inv, kept & reachable, set(plan.delete_index), garbage)
    return out


def _needed_objects(
    inv: Inventory, needed: set[bytes], leaving: set[str], garbage: list[str]
) -> list[str]:
    """The objects a kept snapshot depends on: itself, its packs, the index files and
    forwarding records that stay."""
    out = list(inv.snapshots)
    out += [inv.packs[n].name for n in sorted(needed) if n in inv.packs]
    out += [
        p for p, packs in inv.index_files.items() if p not in leaving and needed.intersection(packs)
    ]
    out += [p for p in inv.forwards.files if p not in garbage]
    return out


# ----------------------------------------------------------------------------- executing


def _remove(backend: Backend, paths: list[str], result: PruneResult, parallel: int) -> int:
    """Delete ``paths`` (every version, on a versioned bucket); failures go to the result."""
    cold = cold_storage(backend)
    delete = cold.purge if cold is not None else backend.delete
    done = 0
    for path, _none, exc in fan_out(delete, paths, parallel):
        if exc is None or isinstance(exc, NotFoundError):
            done += 1
        elif isinstance(exc, DrvaultError):
            result.errors.append(f"{path}: not deleted: {exc}")
        else:
            raise exc
    return done


def _repack(repo: Repository, refs: list[PackRef], used: set[bytes]) -> dict[bytes, bytes]:
    """Copy the needed blobs found first in ``refs`` into new packs, still sealed, and index
    them; {blob ID: its new pack}. Any read or verification failure raises before anything
    is deleted."""
    moved: dict[bytes, bytes] = {}
    lock = threading.Lock()

    def stored(ref: PackRef, entries: list[PackEntry]) -> None:
        with lock:
            for e in entries:
                moved[e.blob_id] = ref.name

    repo.on_pack_stored = stored
    try:
        fetched = fan_out(repo.read_pack, refs, repo.parallel_pack_reads)
        for ref, data, exc in fetched:
            if exc is not None:
                raise exc
            assert data is not None
            _kind, entries = repo.pack_entries(layout.pack_path(ref.kind, ref.name), data)
            view = memoryview(data)
            for e in entries:
                if e.blob_id in used and repo.index.pack_of(e.blob_id) == ref.name:
                    repo.copy_sealed(e, view[e.offset : e.offset + e.length], ref)
        repo.flush()
    finally:
        repo.on_pack_stored = None
    return moved


def _read_old_index(
    repo: Repository, paths: list[str]
) -> dict[str, list[tuple[PackRef, list[PackEntry]]]]:
    out: dict[str, list[tuple[PackRef, list[PackEntry]]]] = {}
    for path, packs, exc in fan_out(repo.read_index_entries, paths, repo.parallel_reads):
        if exc is not None:
            raise exc
        assert packs is not None
        out[path] = packs
    return out


def _forwarding(
    repo: Repository,
    work: KeyedPlan,
    old: dict[str, list[tuple[PackRef, list[PackEntry]]]],
    moved: dict[bytes, bytes],
) -> dict[bytes, tuple[bytes, ...]]:
    """For each removed pack a snapshot lists: the packs now holding every needed blob it held
    (its repacked copy, or the copy the index finds first)."""
    contents: dict[bytes, list[PackEntry]] = {}
    for packs in old.values():
        for ref, entries in packs:
            contents.setdefault(ref.name, entries)
    out: dict[bytes, tuple[bytes, ...]] = {}
    for name in work.plan.forward:
        if name not in contents:
            raise IntegrityError(
                f"pack {name.hex()[:16]}", "no index file describes it; prune refuses"
            )
        homes: set[bytes] = set()
        for e in contents[name]:
            if e.blob_id in work.used:
                home = moved.get(e.blob_id) or repo.index.pack_of(e.blob_id)
                if home is None or home == name:
                    raise IntegrityError(
                        f"blob {e.blob_id.hex()[:16]}", "no copy stays; prune refuses"
                    )
                homes.add(home)
        out[name] = tuple(sorted(homes))
    return out


def _rewrite_index(
    repo: Repository,
    old: dict[str, list[tuple[PackRef, list[PackEntry]]]],
    plan: PrunePlan,
    inv: Inventory,
) -> int:
    """New index files describing, whole, the packs that stay from the index files that go."""
    going = {layout.parse_hex_name(p) for p in plan.delete_packs}
    staying: dict[bytes, tuple[PackRef, list[PackEntry]]] = {}
    for path in plan.rewrite_index:
        for ref, entries in old[path]:
            if ref.name not in going and ref.name in inv.packs:
                staying.setdefault(ref.name, (ref, entries))
    groups = [staying[n] for n in sorted(staying)]
    written = 0
    for start in range(0, len(groups), INDEX_EVERY_PACKS):
        if repo.write_index(groups[start : start + INDEX_EVERY_PACKS]) is not None:
            written += 1
    return written


def prune(
    backend: Backend,
    repo: Repository | None,
    *,
    guard: Guard = lambda: None,
    dry_run: bool = False,
    lock_days: int = 0,
    max_unused: float = DEFAULT_MAX_UNUSED,
    max_repack: int | None = None,
    now: float | None = None,
) -> PruneResult:
    """Prune the repository on ``backend``; keyed when ``repo`` (opened with the key) is given.
    Call it holding the repository's exclusive lock; ``guard`` re-checks that lock."""
    now = time.time() if now is None else now
    parallel = max(2, backend.capabilities.connections)
    inv = take_inventory(backend, parallel)
    work: KeyedPlan | None = None
    if repo is None:
        plan = plan_keyless(backend, inv, now)
    else:
        repo.load_index()  # what backups added before the exclusive lock was taken
        work = plan_keyed(repo, inv, now, max_unused=max_unused, max_repack=max_repack)
        plan = work.plan
    result = PruneResult(plan)
    if dry_run:
        return result
    if repo is not None and work is not None:
        old = _read_old_index(repo, plan.rewrite_index)
        if work.repack:
            before = repo.stats.packs_written, repo.stats.pack_bytes_written
            moved = _repack(repo, work.repack, work.used)
            result.blobs_repacked = len(moved)
            result.packs_written = repo.stats.packs_written - before[0]
            result.bytes_written = repo.stats.pack_bytes_written - before[1]
        else:
            moved = {}
        result.forward_written = forward.write(backend, _forwarding(repo, work, old, moved))
        result.index_written = _rewrite_index(repo, old, plan, inv)
    guard()
    result.index_deleted = _remove(backend, plan.delete_index, result, parallel)
    if result.errors:
        result.errors.append("stopped before deleting packs: an index file may still name them")
        return result
    guard()
    result.packs_deleted = _remove(backend, list(plan.delete_packs), result, parallel)
    failed = {e.split(":", 1)[0] for e in result.errors}
    result.bytes_deleted = sum(
        size for path, size in plan.delete_packs.items() if path not in failed
    )
    if not result.errors:
        result.forwards_deleted = _remove(backend, plan.delete_forwards, result, parallel)
    if lock_days > 0:
        needed = plan.needed_objects
        if result.forward_written is not None:
            needed = [*needed, result.forward_written]
        result.locks_extended = extend(backend, needed, lock_days, now).extended
    return result
