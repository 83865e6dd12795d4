"""Commands of retention and storage tiers: ``forget``, ``prune``, ``tier`` and ``unlock``.

``forget`` and ``prune`` work on one repository (a REPO argument with restic-style flags) or,
with ``--config``, on every (backup set, center) pair the configuration holds, each with its
own retention. They render what the services in ``drvault.forget``, ``drvault.prune`` and
``drvault.tier`` decide; every decision carries its reason.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import click

from drvault import errors
from drvault.cli import _ctx, backend_for, cli, emit, repo_url
from drvault.cli_centers import _exit_code
from drvault.durations import format_duration, parse_duration
from drvault.errors import DrvaultError, UsageError
from drvault.policy.model import BackupSet, Center, Config, Retention
from drvault.policy.retention import describe
from drvault.progress import human_bytes
from drvault.repository.lock import RepoLock, remove_stale
from drvault.sizes import parse_size
from drvault.transport import Backend


def _pairs(
    config: Config, set_ids: tuple[str, ...], center_ids: tuple[str, ...]
) -> Iterator[tuple[BackupSet, Center, Retention | None]]:
    """Each (set, center, retention) chosen: the production copy keeps the set's retention,
    a DR copy its own (else the set's)."""
    for center_id in center_ids:
        config.center(center_id)
    sets = [config.backup_set(s) for s in set_ids] if set_ids else list(config.sets)
    for backup_set in sets:
        for center in config.holders(backup_set):
            if center_ids and center.id not in center_ids:
                continue
            retention = backup_set.retention
            for copy in backup_set.copies:
                if copy.center == center.id and copy.retention is not None:
                    retention = copy.retention
            yield backup_set, center, retention


@contextmanager
def _configured(backup_set: BackupSet, center: Center) -> Iterator[Backend]:
    """The set's repository at the center, as ``--set S --from C`` would open it."""
    from drvault.centers import set_url

    ctx = _ctx()
    saved = ctx.set_id, ctx.center_id
    ctx.set_id, ctx.center_id = backup_set.id, center.id
    backend = backend_for(set_url(center, backup_set.id))
    try:
        yield backend
    finally:
        ctx.set_id, ctx.center_id = saved
        backend.close()


def _append_only(center: Center) -> bool:
    return center.immutability is not None and center.immutability.mode == "append-only"


def _lock(backend: Backend, exclusive: bool, command: str) -> RepoLock:
    lock = RepoLock(backend, exclusive=exclusive, command=command, wait=_ctx().lock_wait)
    lock.acquire()
    return lock


def _exit(failures: list[DrvaultError]) -> None:
    """Exit with the worst failure's code, ranked as replicate ranks them."""
    if failures:
        sys.exit(_exit_code(failures))


# --------------------------------------------------------------------------------- forget


def _keep_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for name, text in reversed(
        [
            ("last", "the N newest snapshots"),
            ("hourly", "the newest of each of the last N hours with snapshots"),
            ("daily", "the newest of each of the last N days"),
            ("weekly", "the newest of each of the last N ISO weeks"),
            ("monthly", "the newest of each of the last N months"),
            ("yearly", "the newest of each of the last N years"),
        ]
    ):
        fn = click.option(
            f"--keep-{name}",
            type=click.IntRange(0),
            default=None,
            metavar="N",
            help=f"Keep {text}.",
        )(fn)
    fn = click.option(
        "--keep-tag", multiple=True, metavar="TAG", help="Keep snapshots with this tag."
    )(fn)
    return click.option(
        "--keep-within",
        default=None,
        metavar="DURATION",
        help="Keep every snapshot younger than this (e.g. 30d).",
    )(fn)


def _render_forget(where: str, policy: Retention, result: Any) -> dict[str, Any]:
    from drvault.forget import ForgetResult

    assert isinstance(result, ForgetResult)
    verb = "would forget" if result.dry_run else "forgot"
    rows = []
    lines = [f"{where}: policy {describe(policy)}"]
    for j in result.judged:
        s = j.snapshot
        if j.locked:
            until = "legal hold" if j.locked_until is None else _when(j.locked_until)
            action, why = "keep", f"Object Lock ({until}); the policy would forget it"
        else:
            action = "keep" if j.decision.keep else "forget"
            why = ", ".join(j.decision.reasons)
        lines.append(f"  {action:<6} {s.time[:19]}  {s.id.hex()[:8]}  {j.group}  {why}")
        rows.append(
            {
                "id": s.id.hex(),
                "time": s.time,
                "group": j.group,
                "keep": action == "keep",
                "reasons": list(j.decision.reasons),
                "locked_until": j.locked_until if j.locked else None,
            }
        )
    for d in result.damaged:
        lines.append(f"  damaged, left alone: {d}")
    lines.append(
        f"  {verb} {len(result.removed)} of {len(result.judged)} snapshot(s)"
        + (" (run prune to reclaim their data)" if result.removed and not result.dry_run else "")
    )
    if not _ctx().json:
        click.echo("\n".join(lines))
        for e in result.errors:
            click.echo(f"error: {e}", err=True)
    return {
        "repository": where,
        "policy": describe(policy),
        "dry_run": result.dry_run,
        "snapshots": rows,
        "forgotten": len(result.removed),
        "damaged": result.damaged,
        "errors": result.errors,
    }


def _say(text: str) -> None:
    if not _ctx().json:
        click.echo(text)


def _when(epoch: float) -> str:
    return time.strftime("until %Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _forget_one(
    backend: Backend, policy: Retention, dry_run: bool, group_by: tuple[str, ...], where: str
) -> dict[str, Any]:
    from drvault.forget import forget as run_forget
    from drvault.password import get_password
    from drvault.repository.repository import Repository

    repo = Repository.open(backend, get_password(_ctx().set_password_file()), load_index=False)
    lock = None if dry_run else _lock(backend, False, "forget")
    try:
        result = run_forget(repo, policy, now=time.time(), group_by=group_by, dry_run=dry_run)
    finally:
        if lock is not None:
            lock.release()
    doc = _render_forget(where, policy, result)
    if result.errors:
        raise _Partial(doc, errors.EXIT_BACKEND)
    return doc


class _Partial(Exception):
    def __init__(self, doc: dict[str, Any], code: int) -> None:
        self.doc, self.code = doc, code


def _collect(
    where: str,
    work: Callable[[], dict[str, Any]],
    docs: list[dict[str, Any]],
    failures: list[DrvaultError],
    *,
    keep_going: bool,
) -> None:
    """Run one repository's work and keep its document. A partial result counts as a failure;
    an error ends the command unless ``keep_going`` (the other pairs of a configuration still
    run: the error is logged as one line and kept in the document)."""
    try:
        docs.append(work())
    except _Partial as partial:
        docs.append(partial.doc)
        failures.append(errors.BackendError(f"{where}: incomplete"))
    except DrvaultError as exc:
        if not keep_going:
            raise
        click.echo(f"{where}: error: {exc}", err=True)
        docs.append({"repository": where, "error": str(exc)})
        failures.append(exc)


def _forget_at(
    backup_set: BackupSet, center: Center, policy: Retention, dry_run: bool
) -> dict[str, Any]:
    with _configured(backup_set, center) as backend:
        where = f"{backup_set.id}@{center.id}"
        return _forget_one(backend, policy, dry_run, ("set",), where)


@cli.command()
@click.argument("repo", required=False)
@_keep_options
@click.option("--set", "set_ids", multiple=True, metavar="SET", help="With --config: this set.")
@click.option("--center", "center_ids", multiple=True, metavar="CENTER", help="Only this center.")
@click.option("--group-by", default="host,paths", show_default=True, help="host,paths,tags,set")
@click.option("--dry-run", "-n", is_flag=True, help="Show the decisions; change nothing.")
def forget(
    repo: str | None,
    keep_last: int | None,
    keep_hourly: int | None,
    keep_daily: int | None,
    keep_weekly: int | None,
    keep_monthly: int | None,
    keep_yearly: int | None,
    keep_tag: tuple[str, ...],
    keep_within: str | None,
    set_ids: tuple[str, ...],
    center_ids: tuple[str, ...],
    group_by: str,
    dry_run: bool,
) -> None:
    """Apply a retention policy: keep what it names (with the reason), forget the rest.

    On REPO with --keep-* flags, or with --config on every set at every center holding it,
    each with its configured retention. Data is reclaimed by prune."""
    ctx = _ctx()
    groups = tuple(g.strip() for g in group_by.split(",") if g.strip())
    flags = Retention(
        last=keep_last,
        hourly=keep_hourly,
        daily=keep_daily,
        weekly=keep_weekly,
        monthly=keep_monthly,
        yearly=keep_yearly,
        within=None if keep_within is None else parse_duration(keep_within),
        tags=keep_tag,
    )
    docs: list[dict[str, Any]] = []
    failures: list[DrvaultError] = []
    if ctx.config_path and not repo:
        if flags != Retention():
            raise UsageError("with --config the retention comes from the configuration")
        config = ctx.config()
        for backup_set, center, policy in _pairs(config, set_ids, center_ids):
            where = f"{backup_set.id}@{center.id}"
            if policy is None or _append_only(center):
                why = "append-only" if policy is not None else "no retention configured"
                _say(f"{where}: {why}: every snapshot kept")
                docs.append({"repository": where, "skipped": why})
                continue
            work = partial(_forget_at, backup_set, center, policy, dry_run)
            _collect(where, work, docs, failures, keep_going=True)
    else:
        if set_ids or center_ids:
            raise UsageError("--set and --center need --config")
        url = repo_url(repo, "forget")
        _collect(
            url,
            lambda: _forget_one(backend_for(url), flags, dry_run, groups, url),
            docs,
            failures,
            keep_going=False,
        )
    if ctx.json:
        click.echo(json.dumps({"repositories": docs}, sort_keys=True, default=str))
    _exit(failures)


# ---------------------------------------------------------------------------------- prune


def _prune_one(
    backend: Backend,
    where: str,
    *,
    keyed: bool,
    dry_run: bool,
    lock_days: int,
    limits: RepackLimits,
) -> dict[str, Any]:
    from drvault.password import get_password
    from drvault.prune import prune as run_prune
    from drvault.repository.repository import Repository, read_config

    repo = None
    if keyed:
        repo = Repository.open(backend, get_password(_ctx().set_password_file()), load_index=False)
    else:
        read_config(backend)  # a repository at all?
    lock = _lock(backend, True, "prune")
    try:
        result = run_prune(
            backend,
            repo,
            guard=lock.check,
            dry_run=dry_run,
            lock_days=lock_days,
            max_unused=limits.max_unused,
            max_repack=limits.max_repack,
        )
    finally:
        lock.release()
    plan = result.plan
    verb = "would delete" if dry_run else "deleted"
    mode = "keyed" if plan.keyed else "keyless"
    lines = [
        f"{where}: {mode} prune: {plan.snapshots} snapshot(s), {plan.packs} pack(s) "
        f"of {human_bytes(plan.pack_bytes)}, {human_bytes(plan.unneeded_bytes)} unneeded",
        f"  {verb} {len(plan.delete_packs)} pack(s) ({human_bytes(plan.delete_bytes)})"
        f" and {len(plan.delete_index)} index file(s)",
    ]
    if plan.repack:
        verb_repack = "would repack" if dry_run else "repacked"
        lines.append(
            f"  {verb_repack} {len(plan.repack)} partly needed pack(s) "
            f"({human_bytes(sum(plan.repack.values()))}, "
            f"{human_bytes(plan.repack_needed)} of it needed)"
        )
        if not dry_run:
            lines.append(
                f"    wrote {result.packs_written} new pack(s) "
                f"({human_bytes(result.bytes_written)}) and a forwarding record"
            )
    if plan.partly:
        lines.append(
            f"  {plan.partly} partly needed pack(s) left as they are "
            f"({human_bytes(plan.partly_unneeded)} unneeded inside them"
            + (f"; {plan.partly_cold} archived, not read" if plan.partly_cold else "")
            + ")"
        )
    if plan.superseded:
        lines.append(f"  {plan.superseded} pack(s) superseded by a repack at the source")
    if plan.held:
        lines.append(
            f"  {len(plan.held)} unneeded pack(s) kept: an index file that stays names them"
            + (" (keyless: index files cannot be rewritten without the key)" if not keyed else "")
        )
    if plan.locked:
        first = min((u for u in plan.locked.values() if u is not None), default=None)
        lines.append(
            f"  {len(plan.locked)} object(s) kept: protected by Object Lock"
            + (f" ({_when(first)} at the earliest)" if first else "")
        )
    if not dry_run:
        lines.append(f"  reclaimed {human_bytes(result.bytes_reclaimed)}")
    if result.locks_extended:
        lines.append(f"  extended the Object Lock of {result.locks_extended} needed object(s)")
    if not _ctx().json:
        click.echo("\n".join(lines))
        for e in result.errors:
            click.echo(f"error: {e}", err=True)
    doc = {
        "repository": where,
        "mode": mode,
        "dry_run": dry_run,
        "snapshots": plan.snapshots,
        "packs": plan.packs,
        "pack_bytes": plan.pack_bytes,
        "unneeded_bytes": plan.unneeded_bytes,
        "delete_packs": len(plan.delete_packs),
        "delete_bytes": plan.delete_bytes,
        "delete_index": len(plan.delete_index),
        "repack_packs": len(plan.repack),
        "repack_bytes": sum(plan.repack.values()),
        "repack_needed_bytes": plan.repack_needed,
        "partly_needed_packs": plan.partly,
        "partly_unneeded_bytes": plan.partly_unneeded,
        "partly_archived_packs": plan.partly_cold,
        "superseded_packs": plan.superseded,
        "forwards_deleted": result.forwards_deleted,
        "packs_written": result.packs_written,
        "bytes_written": result.bytes_written,
        "held_packs": len(plan.held),
        "locked_objects": sorted(plan.locked),
        "packs_deleted": result.packs_deleted,
        "bytes_deleted": result.bytes_deleted,
        "bytes_reclaimed": result.bytes_reclaimed,
        "locks_extended": result.locks_extended,
        "errors": result.errors,
    }
    if result.errors:
        raise _Partial(doc, errors.EXIT_BACKEND)
    return doc


def _prune_at(
    backup_set: BackupSet,
    center: Center,
    keyed: bool,
    dry_run: bool,
    lock_days: int,
    limits: RepackLimits,
) -> dict[str, Any]:
    with _configured(backup_set, center) as backend:
        where = f"{backup_set.id}@{center.id}"
        return _prune_one(
            backend, where, keyed=keyed, dry_run=dry_run, lock_days=lock_days, limits=limits
        )


@dataclass(frozen=True)
class RepackLimits:
    max_unused: float  # share of the needed bytes
    max_repack: int | None  # bytes of packs read, None: no limit

    @classmethod
    def parse(cls, max_unused: str, max_repack: str) -> RepackLimits:
        text = max_unused.strip()
        if text == "unlimited":
            unused = float("inf")
        else:
            try:
                unused = float(text.removesuffix("%")) / 100
            except ValueError:
                unused = -1.0
            if not text.endswith("%") or not 0 <= unused < float("inf"):
                raise UsageError(f"--max-unused wants a percentage (5%) or unlimited, not {text!r}")
        limit = None if max_repack.strip() == "unlimited" else parse_size(max_repack)
        return cls(unused, limit)


@cli.command()
@click.argument("repo", required=False)
@click.option("--set", "set_ids", multiple=True, metavar="SET", help="With --config: this set.")
@click.option("--center", "center_ids", multiple=True, metavar="CENTER", help="Only this center.")
@click.option("--dry-run", "-n", is_flag=True, help="Show the plan; change nothing.")
@click.option("--keyless", is_flag=True, help="Without the key: drop only whole packs.")
@click.option("--keyed", is_flag=True, help="With --config: use the key at DR centers too.")
@click.option(
    "--max-unused",
    default="5%",
    show_default=True,
    metavar="PCT",
    help="Keyed: repack partly needed packs until the unneeded bytes left in packs are at "
    "most this share of the needed bytes ('unlimited': never repack).",
)
@click.option(
    "--max-repack",
    default="unlimited",
    show_default=True,
    metavar="SIZE",
    help="Keyed: read at most this much of partly needed packs per run (e.g. 10G).",
)
def prune(
    repo: str | None,
    set_ids: tuple[str, ...],
    center_ids: tuple[str, ...],
    dry_run: bool,
    keyless: bool,
    keyed: bool,
    max_unused: str,
    max_repack: str,
) -> None:
    """Remove data no snapshot needs, and repack partly needed packs. Takes the exclusive lock.

    With --config: every set at every center holding it; the production copy is pruned with
    the key, DR copies without it (whole packs only) unless --keyed. A keyed prune leaves a
    forwarding record for each pack it repacks, so DR copies follow without the key."""
    ctx = _ctx()
    limits = RepackLimits.parse(max_unused, max_repack)
    if keyless and keyed:
        raise UsageError("give --keyless or --keyed, not both")
    docs: list[dict[str, Any]] = []
    failures: list[DrvaultError] = []
    if ctx.config_path and not repo:
        config = ctx.config()
        for backup_set, center, _policy in _pairs(config, set_ids, center_ids):
            where = f"{backup_set.id}@{center.id}"
            if _append_only(center):
                _say(f"{where}: append-only: nothing is deleted there")
                docs.append({"repository": where, "skipped": "append-only"})
                continue
            use_key = not keyless and (keyed or center.id == backup_set.production)
            days = center.immutability.days if center.immutability is not None else 0
            work = partial(_prune_at, backup_set, center, use_key, dry_run, days, limits)
            _collect(where, work, docs, failures, keep_going=True)
    else:
        if set_ids or center_ids or keyed:
            raise UsageError("--set, --center and --keyed need --config")
        url = repo_url(repo, "prune")

        def one() -> dict[str, Any]:
            return _prune_one(
                backend_for(url),
                url,
                keyed=not keyless,
                dry_run=dry_run,
                lock_days=0,
                limits=limits,
            )

        _collect(url, one, docs, failures, keep_going=False)
    if ctx.json:
        click.echo(json.dumps({"repositories": docs}, sort_keys=True, default=str))
    _exit(failures)


# ----------------------------------------------------------------------------------- tier


@cli.command()
@click.option("--set", "set_ids", multiple=True, metavar="SET", help="Only this set.")
@click.option("--center", "center_ids", multiple=True, metavar="CENTER", help="Only this center.")
@click.option("--dry-run", "-n", is_flag=True, help="Show the moves; change nothing.")
@click.option(
    "--lifecycle", is_flag=True, help="Print the equivalent bucket lifecycle rules instead."
)
def tier(
    set_ids: tuple[str, ...], center_ids: tuple[str, ...], dry_run: bool, lifecycle: bool
) -> None:
    """Move data packs to colder storage classes by age, as each center's ladder says.

    Metadata (trees, index, snapshots) never moves. --lifecycle prints, per center, the
    S3 lifecycle configuration that does the same inside the bucket."""
    from drvault.centers import set_url
    from drvault.policy.tiering import lifecycle_rules
    from drvault.tier import tier as run_tier
    from drvault.transport.url import parse_s3

    ctx = _ctx()
    config = ctx.config()
    pairs = [(s, c) for s, c, _r in _pairs(config, set_ids, center_ids) if c.storage.ladder]
    if not pairs:
        raise UsageError("no chosen center has a storage ladder (centers.<id>.storage.ladder)")
    if lifecycle:
        by_center: dict[str, list[str]] = {}
        for backup_set, center in pairs:
            prefix = parse_s3(set_url(center, backup_set.id)).prefix
            by_center.setdefault(center.id, []).append(prefix.rstrip("/") + "/")
        out = {
            cid: lifecycle_rules(config.center(cid).storage, prefixes)
            for cid, prefixes in by_center.items()
        }
        click.echo(json.dumps(out, indent=None if ctx.json else 2, sort_keys=True))
        return
    docs: list[dict[str, Any]] = []
    failures: list[DrvaultError] = []
    for backup_set, center in pairs:
        where = f"{backup_set.id}@{center.id}"
        try:
            with _configured(backup_set, center) as backend:
                result = run_tier(backend, center.storage, now=time.time(), dry_run=dry_run)
        except DrvaultError as exc:
            click.echo(f"{where}: error: {exc}", err=True)
            docs.append({"repository": where, "error": str(exc)})
            failures.append(exc)
            continue
        plan = result.plan
        verb = "would move" if dry_run else "moved"
        moved: dict[str, int] = {}
        for m in plan.moves:
            moved[m.to_class] = moved.get(m.to_class, 0) + m.size
        spread = ", ".join(f"{k} {human_bytes(v)}" for k, v in sorted(plan.bytes_by_class.items()))
        _say(
            f"{where}: {verb} {len(plan.moves)} data pack(s)"
            + (
                " (" + ", ".join(f"{human_bytes(v)} to {k}" for k, v in sorted(moved.items())) + ")"
                if moved
                else ""
            )
            + f"; {plan.stay} stay; data now {spread or 'empty'}"
        )
        for e in result.errors:
            click.echo(f"error: {e}", err=True)
        docs.append(
            {
                "repository": where,
                "dry_run": dry_run,
                "moves": [
                    {"pack": m.name, "from": m.from_class, "to": m.to_class, "reason": m.reason}
                    for m in plan.moves
                ],
                "moved": result.moved,
                "bytes_by_class": plan.bytes_by_class,
                "errors": result.errors,
            }
        )
        if result.errors:
            failures.append(errors.BackendError("tier incomplete"))
    if ctx.json:
        click.echo(json.dumps({"repositories": docs}, sort_keys=True, default=str))
    _exit(failures)


# --------------------------------------------------------------------------------- unlock


@cli.command()
@click.argument("repo", required=False)
@click.option(
    "--stale-after", default="30m", show_default=True, help="Remove locks older than this."
)
def unlock(repo: str | None, stale_after: str) -> None:
    """Remove stale locks (not refreshed for --stale-after, or of a dead process here) and
    unreadable lock objects."""
    url = repo_url(repo, "unlock")
    backend = backend_for(url)
    removed = remove_stale(backend, time.time(), parse_duration(stale_after))
    emit(
        f"removed {len(removed)} stale lock(s)"
        + (
            f" (none younger than {format_duration(parse_duration(stale_after))})"
            if not removed
            else ""
        ),
        {"removed": removed},
    )
