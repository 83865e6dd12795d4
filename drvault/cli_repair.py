"""``drvault scrub`` and ``drvault repair``: verify every object, heal a copy from another."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from typing import Any

import click

from drvault import errors
from drvault.cli import _ctx, backend_for, cli, repo_url
from drvault.cli_retention import _collect, _configured, _exit, _lock, _pairs
from drvault.errors import DrvaultError, IntegrityError, UsageError
from drvault.policy.model import BackupSet, Center, Config
from drvault.progress import human_bytes
from drvault.transport import Backend

# ---------------------------------------------------------------------------------- scrub


def _scrub_one(backend: Backend, where: str, keyless: bool) -> dict[str, Any]:
    from drvault.password import get_password
    from drvault.repository.repository import Repository, read_config
    from drvault.scrub import scrub, to_json

    repo = None
    if keyless:
        if not backend.exists():
            read_config(backend)  # the one-line "repository does not exist"
    else:
        repo = Repository.open(backend, get_password(_ctx().set_password_file()), load_index=False)
    result = scrub(backend, repo)
    doc = {"repository": where, **to_json(result)}
    if not _ctx().json:
        mode = "keyed" if result.keyed else "keyless"
        s = result.stats
        line = f"{where}: {mode} scrub: {s.objects} object(s), {human_bytes(s.bytes)} verified"
        if result.keyed:
            line += f", {s.blobs} blob(s) decrypted"
        if s.archived:
            line += f"; {s.archived} archived pack(s) not read (thaw to scrub them)"
        click.echo(line)
        for problem in result.problems:
            click.echo(f"  {problem}")
        click.echo("  OK" if result.ok else f"  {len(result.problems)} bad object(s)")
    if not result.ok:
        raise _Bad(doc, len(result.problems))
    return doc


class _Bad(Exception):
    def __init__(self, doc: dict[str, Any], count: int) -> None:
        self.doc, self.count = doc, count


def _run(
    where: str, work: Any, docs: list[dict[str, Any]], failures: list[DrvaultError], keep: bool
) -> None:
    """``_collect``, with bad objects counted as an integrity failure."""

    def guarded() -> dict[str, Any]:
        try:
            result: dict[str, Any] = work()
        except _Bad as bad:
            failures.append(IntegrityError(where, f"{bad.count} bad object(s)"))
            return bad.doc
        return result

    _collect(where, guarded, docs, failures, keep_going=keep)


def _scrub_at(backup_set: BackupSet, center: Center, keyless: bool) -> dict[str, Any]:
    with _configured(backup_set, center) as backend:
        return _scrub_one(backend, f"{backup_set.id}@{center.id}", keyless)


@cli.command()
@click.argument("repo", required=False)
@click.option("--set", "set_ids", multiple=True, metavar="SET", help="With --config: this set.")
@click.option("--center", "center_ids", multiple=True, metavar="CENTER", help="Only this center.")
@click.option("--keyless", is_flag=True, help="No password: verify objects against their names.")
def scrub(
    repo: str | None, set_ids: tuple[str, ...], center_ids: tuple[str, ...], keyless: bool
) -> None:
    """Read every object and verify it: SHA-256 against its name, every pack a snapshot or
    index file names present; with the key, every blob decrypted and checked.

    Names each bad object and exits 13 if there is one."""
    ctx = _ctx()
    docs: list[dict[str, Any]] = []
    failures: list[DrvaultError] = []
    if ctx.config_path and not repo:
        for backup_set, center, _retention in _pairs(ctx.config(), set_ids, center_ids):
            work = partial(_scrub_at, backup_set, center, keyless)
            _run(f"{backup_set.id}@{center.id}", work, docs, failures, True)
    else:
        if set_ids or center_ids:
            raise UsageError("--set and --center need --config")
        url = repo_url(repo, "scrub")
        _run(url, lambda: _scrub_one(backend_for(url), url, keyless), docs, failures, False)
    if ctx.json:
        click.echo(json.dumps({"repositories": docs}, sort_keys=True, default=str))
    _exit(failures)


# --------------------------------------------------------------------------------- repair


def _repair_one(
    target: Backend, where: str, sources: dict[str, Backend], dry_run: bool
) -> dict[str, Any]:
    from drvault.repair import repair, summary
    from drvault.repository.repository import read_config
    from drvault.scrub import to_json

    if not target.exists():
        read_config(target)  # the one-line "repository does not exist"
    for name, source in sources.items():
        if not source.exists():
            raise errors.RepositoryNotFoundError(f"{name}: repository does not exist")
    lock = None if dry_run else _lock(target, False, "repair")
    try:
        result = repair(target, sources, dry_run=dry_run)
    finally:
        if lock is not None:
            lock.release()
    doc: dict[str, Any] = {
        "repository": where,
        "dry_run": dry_run,
        "from": list(sources),
        "before": to_json(result.before),
        "after": None if result.after is None else to_json(result.after),
        "repaired": result.repaired,
        "unrepaired": result.unrepaired,
        "snapshots_restored": result.snapshots_restored,
        "errors": result.errors,
    }
    if not _ctx().json:
        lines = [f"{where}: {len(result.before.problems)} bad object(s) found"]
        if dry_run:
            lines += [f"  {p}" for p in result.before.problems]
        lines += [f"  {line}" for line in summary(result)]
        if result.snapshots_restored:
            lines.append(f"  {result.snapshots_restored} snapshot(s) restored by replication")
        if result.after is not None:
            lines.append(
                "  rechecked: OK"
                if result.after.ok
                else f"  rechecked: {len(result.after.problems)} bad object(s) remain"
            )
            lines += [f"    {p}" for p in result.after.problems]
        click.echo("\n".join(lines))
        for e in result.errors:
            click.echo(f"error: {e}", err=True)
    bad = (result.after is not None and not result.after.ok) or bool(result.unrepaired)
    if dry_run:
        bad = bool(result.before.problems)
    if bad or result.errors:
        count = len(result.after.problems) if result.after is not None else 0
        raise _Bad(doc, max(count, len(result.unrepaired), len(result.errors)))
    return doc


def _sources_for(
    config: Config, backup_set: BackupSet, center: Center, chosen: tuple[str, ...]
) -> list[Center]:
    if chosen:
        return [config.center(c) for c in chosen]
    return [c for c in config.holders(backup_set) if c.id != center.id]


def _repair_at(
    config: Config, backup_set: BackupSet, center: Center, chosen: tuple[str, ...], dry: bool
) -> dict[str, Any]:
    from drvault.centers import set_url

    others = _sources_for(config, backup_set, center, chosen)
    if not others:
        raise UsageError(f"{backup_set.id}: no other center holds it to repair {center.id} from")
    with ExitStack() as stack:
        sources: dict[str, Backend] = {}
        for other in others:
            backend = backend_for(set_url(other, backup_set.id))
            stack.callback(backend.close)
            sources[other.id] = backend
        with _configured(backup_set, center) as target:
            return _repair_one(target, f"{backup_set.id}@{center.id}", sources, dry)


def _targets(
    config: Config, set_ids: tuple[str, ...], center_ids: tuple[str, ...]
) -> Iterator[tuple[BackupSet, Center]]:
    for backup_set, center, _retention in _pairs(config, set_ids, center_ids):
        yield backup_set, center


@cli.command()
@click.argument("repo", required=False)
@click.option("--set", "set_ids", multiple=True, metavar="SET", help="With --config: this set.")
@click.option("--center", "center_ids", multiple=True, metavar="CENTER", help="The copy to heal.")
@click.option(
    "--from",
    "from_",
    multiple=True,
    metavar="CENTER|REPO",
    help="Where good copies come from (with --config: a center; default every other one).",
)
@click.option("--dry-run", "-n", is_flag=True, help="Scrub and list what is bad; change nothing.")
def repair(
    repo: str | None,
    set_ids: tuple[str, ...],
    center_ids: tuple[str, ...],
    from_: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Replace missing or corrupt objects of one copy with verified copies from another.

    Nothing is decrypted (no password needed); a good object is never overwritten and a copy
    that does not match its name is never written. Rechecks what it wrote."""
    ctx = _ctx()
    docs: list[dict[str, Any]] = []
    failures: list[DrvaultError] = []
    if ctx.config_path and not repo:
        if not center_ids:
            raise UsageError("repair needs --center: the copy to heal")
        config = ctx.config()
        for other in from_:
            config.center(other)  # an unknown center is a usage error before anything runs
        for backup_set, center in _targets(config, set_ids, center_ids):
            work = partial(_repair_at, config, backup_set, center, from_, dry_run)
            _run(f"{backup_set.id}@{center.id}", work, docs, failures, True)
    else:
        if set_ids or center_ids:
            raise UsageError("--set and --center need --config")
        if not from_:
            raise UsageError("repair REPO needs --from OTHER_REPO")
        url = repo_url(repo, "repair")

        def one() -> dict[str, Any]:
            sources = {other: backend_for(other) for other in from_}
            try:
                return _repair_one(backend_for(url), url, sources, dry_run)
            finally:
                for backend in sources.values():
                    backend.close()

        _run(url, one, docs, failures, False)
    if ctx.json:
        click.echo(json.dumps({"repositories": docs}, sort_keys=True, default=str))
    _exit(failures)
