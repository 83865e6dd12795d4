"""Prune: remove what no snapshot needs.

Two ways to know what is needed, one plan shape and one order of deletions:

- **keyless** (a DR center, or no password): from the inventory alone. A pack no snapshot lists
  is garbage. It is deleted only together with every index file naming it, and an index file
  only when nothing it names is needed: without the key an index file cannot be rewritten, and
  an index must never name a pack that is gone while a snapshot could still need its blobs.
- **keyed**: the trees of every snapshot are walked for the blobs they need. Packs holding none
  are deleted, and every index file naming a removed pack is replaced by one naming only the
  packs that stay (so, unlike keyless, no unneeded pack is held back by its index file).
  Partly needed packs are counted, not rewritten: a snapshot's keyless pack list names the
  packs it was written with, and moving its blobs into new packs would make that list wrong
  for replication and keyless prune (repacking needs a pack-forwarding record first).

The order keeps every intermediate state safe to die in: (1) write the replacement index
files; (2) delete the old index files, and stop if any delete fails; (3) delete the packs.
``guard`` (the exclusive lock's check) runs before each delete phase. An object that an
Object Lock protects is never deleted: the plan keeps it, and keeps every pack an undeletable
index file names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drvault.errors import DrvaultError, IntegrityError, NotFoundError
from drvault.inventory import Inventory, take_inventory
from drvault.objectlock import cold_storage, extend, protected
from drvault.repository import layout
from drvault.repository.fanout import fan_out
from drvault.repository.index import PackRef
from drvault.repository.pack import PackEntry
from drvault.repository.repository import INDEX_EVERY_PACKS, Repository
from drvault.snapshot import NodeType, decode_tree
from drvault.snapshots import load_all
from drvault.transport.base import Backend

Guard = Callable[[], None]


@dataclass
class PrunePlan:
    keyed: bool
    snapshots: int = 0
    packs: int = 0
    pack_bytes: int = 0
    unneeded_bytes: int = 0  # bytes of unneeded blobs or packs, before any limit
    delete_packs: dict[str, int] = field(default_factory=dict)  # path -> size
    partly: int = 0  # partly needed packs left as they are (keyed)
    partly_unneeded: int = 0  # unneeded bytes inside them
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
    index_deleted: int = 0
    index_written: int = 0
    locks_extended: int = 0
    errors: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ planning


def _settle_index(
    plan: PrunePlan, inv: Inventory, removed: set[bytes], now: float, backend: Backend
) -> None:
    """Choose the index files to delete (those naming a removed pack) and keep back, with
    every pack they name, the ones an Object Lock protects. Fills the plan's lock fields."""
    naming = [p for p, packs in inv.index_files.items() if removed.intersection(packs)]
    candidates = [inv.packs[n].name for n in removed if n in inv.packs]
    locked = protected(backend, [*naming, *candidates], now)
    for path, state in locked.items():
        plan.locked[path] = None if state.legal_hold else state.retain_until
    for path in naming:
        if path in locked:
            for name in inv.index_files[path]:
                if name in removed and name in inv.packs:
                    removed.discard(name)
                    plan.held.append(inv.packs[name].name)
        else:
            plan.delete_index.append(path)
    for name in list(removed):
        info = inv.packs.get(name)
        if info is not None and info.name in locked:
            removed.discard(name)


def plan_keyless(backend: Backend, inv: Inventory, now: float) -> PrunePlan:
    plan = PrunePlan(keyed=False, snapshots=len(inv.snapshots), packs=len(inv.packs))
    plan.pack_bytes = inv.pack_bytes()
    needed = inv.needed()
    unneeded = {n for n in inv.packs if n not in needed}
    plan.unneeded_bytes = sum(inv.packs[n].size for n in unneeded)
    removed = set(unneeded)
    # An index file naming a needed pack cannot go (it cannot be rewritten without the key):
    # the unneeded packs it names stay with it.
    for packs in inv.index_files.values():
        if needed.intersection(packs):
            for name in removed.intersection(packs):
                removed.discard(name)
                plan.held.append(inv.packs[name].name)
    _settle_index(plan, inv, removed, now, backend)
    plan.delete_packs = {inv.packs[n].name: inv.packs[n].size for n in sorted(removed)}
    plan.needed_objects = _needed_objects(inv, needed, set(plan.delete_index))
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
    used: int = 0  # bytes of needed blobs claimed here
    unused: int = 0


def plan_keyed(repo: Repository, inv: Inventory, now: float) -> PrunePlan:
    used, count = _used_blobs(repo)
    plan = PrunePlan(keyed=True, snapshots=count, packs=len(inv.packs))
    plan.pack_bytes = inv.pack_bytes()
    usage: dict[bytes, _Usage] = {}
    claimed: set[bytes] = set()
    for entry in repo.index.entries():
        u = usage.get(entry.pack.name)
        if u is None:
            u = usage[entry.pack.name] = _Usage(entry.pack)
        if entry.blob_id in used and entry.blob_id not in claimed:
            claimed.add(entry.blob_id)
            u.used += entry.length
        else:
            u.unused += entry.length
    missing = [n for n, u in usage.items() if n not in inv.packs and u.used]
    if missing:
        ref = usage[missing[0]].ref
        raise IntegrityError(
            layout.pack_path(ref.kind, ref.name), "needed but missing; prune refuses"
        )
    # A pack some snapshot's keyless list names stays even if its blobs are claimed elsewhere
    # (a blob stored twice): replication and keyless prune go by those lists.
    listed = inv.needed()
    removed = {n for n in inv.packs if (n not in usage or not usage[n].used) and n not in listed}
    removed |= {n for n in usage if n not in inv.packs}  # gone already: only the index names it
    plan.unneeded_bytes = sum(inv.packs[n].size for n in removed if n in inv.packs)
    partly = [n for n, u in usage.items() if u.used and u.unused and n in inv.packs]
    plan.partly = len(partly)
    plan.partly_unneeded = sum(usage[n].unused for n in partly)
    plan.unneeded_bytes += plan.partly_unneeded
    _settle_index(plan, inv, removed, now, backend=repo.backend)
    for name in sorted(removed):
        if name in inv.packs:
            plan.delete_packs[inv.packs[name].name] = inv.packs[name].size
    plan.rewrite_index = list(plan.delete_index)
    plan.needed_objects = _needed_objects(inv, listed, set(plan.delete_index))
    return plan


def _needed_objects(inv: Inventory, needed: set[bytes], leaving: set[str]) -> list[str]:
    """The objects a kept snapshot depends on: itself, its packs, the index files that stay."""
    out = list(inv.snapshots)
    out += [inv.packs[n].name for n in sorted(needed) if n in inv.packs]
    out += [
        p for p, packs in inv.index_files.items() if p not in leaving and needed.intersection(packs)
    ]
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


def _rewrite_index(repo: Repository, inv: Inventory, plan: PrunePlan) -> int:
    """New index files naming the packs that stay from the index files that go."""
    going = {layout.parse_hex_name(p) for p in plan.delete_packs}
    staying: set[bytes] = set()
    for path in plan.rewrite_index:
        staying.update(
            n for n in inv.index_files.get(path, ()) if n not in going and n in inv.packs
        )
    entries: dict[bytes, tuple[PackRef, list[PackEntry]]] = {}
    for e in repo.index.entries():
        if e.pack.name in staying:
            slot = entries.setdefault(e.pack.name, (e.pack, []))
            slot[1].append(
                PackEntry(e.blob_id, e.type, e.compression, e.offset, e.length, e.raw_length)
            )
    groups = list(entries.values())
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
    now: float | None = None,
) -> PruneResult:
    """Prune the repository on ``backend``; keyed when ``repo`` (opened with the key) is given.
    Call it holding the repository's exclusive lock; ``guard`` re-checks that lock."""
    now = time.time() if now is None else now
    parallel = max(2, backend.capabilities.connections)
    inv = take_inventory(backend, parallel)
    if repo is None:
        plan = plan_keyless(backend, inv, now)
    else:
        repo.load_index()  # what backups added before the exclusive lock was taken
        plan = plan_keyed(repo, inv, now)
    result = PruneResult(plan)
    if dry_run:
        return result
    if repo is not None:
        result.index_written = _rewrite_index(repo, inv, plan)
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
    if lock_days > 0:
        result.locks_extended = extend(backend, plan.needed_objects, lock_days, now).extended
    return result
