"""The ``drvault`` command line: parse, call one service function, render text or JSON.

Every command takes ``--json`` (global) for one JSON document on standard output. Errors print
one line on standard error (and, with ``--json``, a JSON document on standard output) and exit
with the code from ``drvault.errors``; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeVar

import click

from drvault import errors
from drvault.errors import DrvaultError, IntegrityError, UsageError
from drvault.password import get_new_password, get_password
from drvault.progress import ProgressLine, human_bytes
from drvault.repository.keys import KdfParams, KeySlot
from drvault.repository.lock import RepoLock
from drvault.repository.unlock import Unlock
from drvault.sizes import parse_rate, parse_size
from drvault.snapshot import NodeType, display_name
from drvault.snapshot.document import Snapshot
from drvault.transport import Backend, open_backend
from drvault.transport.metrics import Metrics
from drvault.transport.options import TransportOptions, apply_option, from_environment
from drvault.transport.stack import stack
from drvault.version import __version__

if TYPE_CHECKING:
    from drvault.policy.model import BackupSet, Center
    from drvault.policy.model import Config as PolicyConfig
    from drvault.repository.repository import Repository


@dataclass
class Context:
    json: bool
    debug: bool
    repo: str | None
    password_file: str | None
    transport: TransportOptions
    metrics: Metrics
    config_path: str | None = None
    lock_wait: float = 600.0  # seconds to wait for a conflicting repository lock
    set_id: str | None = None  # --set: with --config, the backup set whose repository is meant
    center_id: str | None = None  # --from: the center holding it (default: production)
    _config: PolicyConfig | None = None

    def config(self) -> PolicyConfig:
        """The policy configuration (``--config``/DRVAULT_CONFIG), loaded once."""
        if self._config is None:
            if not self.config_path:
                raise UsageError("this command needs --config FILE (or DRVAULT_CONFIG)")
            from drvault.policy.load import load_config

            self._config = load_config(self.config_path)
        return self._config

    def backup_set(self, set_id: str) -> BackupSet:
        return self.config().backup_set(set_id)

    def center(self, center_id: str) -> Center:
        return self.config().center(center_id)

    def set_password_file(self) -> str | None:
        """The password file of ``--set`` when the configuration names one, else the global."""
        if self.config_path and self.set_id:
            return self.backup_set(self.set_id).password_file or self.password_file
        return self.password_file

    def configured_repo(self) -> str | None:
        """With --config and --set: the set's repository URL at --from (default production)."""
        if not (self.config_path and self.set_id):
            if self.center_id:
                raise UsageError("--from needs --config FILE and --set SET")
            return None
        from drvault.centers import set_url

        backup_set = self.backup_set(self.set_id)
        return set_url(self.center(self.center_id or backup_set.production), backup_set.id)

    def open_url(self, url: str) -> Backend:
        """The wrapped backend of ``url``; the center's own options apply to a configured one."""
        options = self.transport
        if self.config_path and self.set_id and url == self.configured_repo():
            from drvault.centers import center_options

            backup_set = self.backup_set(self.set_id)
            options = center_options(options, self.center(self.center_id or backup_set.production))
        return stack(open_backend(url, options), options, self.metrics)


def _ctx() -> Context:
    return click.get_current_context().find_object(Context)  # type: ignore[return-value]


def emit(human: str | None, doc: Any) -> None:
    if _ctx().json:
        click.echo(json.dumps(doc, sort_keys=True, default=str))
    elif human:
        click.echo(human)


def split_repo(args: tuple[str, ...], rest_min: int, usage: str) -> tuple[str, list[str]]:
    """The repository (``--repo``/DRVAULT_REPOSITORY, else the first argument) and the rest."""
    ctx = _ctx()
    items = list(args)
    configured = ctx.configured_repo()
    if configured:
        return configured, items
    if ctx.repo:
        if items and items[0] == ctx.repo and len(items) > rest_min:
            items.pop(0)  # given both ways: the same repository, not a path
        return ctx.repo, items
    if len(items) < rest_min + 1:
        raise UsageError(f"usage: drvault {usage}")
    return items[0], items[1:]


def repo_url(repo: str | None, command: str) -> str:
    """The REPO argument of a command that takes nothing else, or ``--repo``."""
    configured = _ctx().configured_repo()
    if configured and repo:
        raise UsageError(f"drvault {command}: give REPO or --set, not both")
    url = configured or repo or _ctx().repo
    if not url:
        raise UsageError(f"usage: drvault {command} REPO")
    return url


def backend_for(url: str) -> Backend:
    """The backend for ``url`` wrapped in retry, metrics, concurrency cap and rate limits."""
    return _ctx().open_url(url)


def open_repo(url: str, *, load_index: bool = True, imports: tuple[str, ...] = ()) -> Repository:
    """Open the repository at ``url``, importing the repository code and ``imports`` (the
    command's own modules) while the key is derived.

    This module imports none of them at its top, so that scrypt (released GIL, one core)
    starts before them: on a cold page cache they take 0.15-0.2 s, which now overlaps the
    derivation's 0.34-0.42 s instead of preceding it (see drvault.repository.unlock).
    """
    password = get_password(_ctx().set_password_file())
    backend = backend_for(url)
    unlock = Unlock(backend, password)
    from drvault.repository.repository import Repository

    for name in imports:
        importlib.import_module(name)
    return Repository.open(backend, password, load_index=load_index, unlock=unlock)


F = TypeVar("F", bound=Callable[..., Any])


def _remember_set(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
        obj = ctx.find_object(Context)
        assert obj is not None
        if param.name == "backup_set":
            obj.set_id = value
        else:
            obj.center_id = value
    return value


def set_options(fn: F) -> F:
    """``--set S`` and ``--from CENTER``: with --config, the repository is that set's at that
    center (default: the production center) instead of a REPO argument."""
    fn = click.option(
        "--from",
        "from_center",
        default=None,
        metavar="CENTER",
        callback=_remember_set,
        expose_value=False,
        help="With --config and --set: the center whose copy is meant (default: production).",
    )(fn)
    return click.option(
        "--set",
        "backup_set",
        default=None,
        metavar="SET",
        callback=_remember_set,
        expose_value=False,
        is_eager=True,
        help="With --config: the backup set whose repository is meant.",
    )(fn)


# Commands whose module is imported only when one of them runs (or help lists them): the
# centers, drills, retention and repair commands are not needed by a backup or a restore, and
# importing them took about 60 ms of every command's start-up on a cold page cache.
LAZY_COMMANDS = {
    "replicate": "drvault.cli_centers",
    "status": "drvault.cli_centers",
    "policy": "drvault.cli_centers",
    "drill": "drvault.cli_drill",
    "report": "drvault.cli_drill",
    "scrub": "drvault.cli_repair",
    "repair": "drvault.cli_repair",
    "forget": "drvault.cli_retention",
    "prune": "drvault.cli_retention",
    "tier": "drvault.cli_retention",
    "unlock": "drvault.cli_retention",
}


class _Commands(click.Group):
    """A group whose commands in :data:`LAZY_COMMANDS` register on first use: the module
    named for a command is imported (its decorators add the command to this group) before
    the command is looked up."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = LAZY_COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(module)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(LAZY_COMMANDS))


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.option(
    "-r",
    "--repo",
    envvar="DRVAULT_REPOSITORY",
    default=None,
    help="Repository (env DRVAULT_REPOSITORY); then commands take no REPO argument.",
)
@click.option(
    "--password-file",
    envvar="DRVAULT_PASSWORD_FILE",
    default=None,
    help="File whose first line is the password (env DRVAULT_PASSWORD_FILE).",
)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Transport option, e.g. s3.path-style=false, sftp.key=FILE, connections=8 (repeatable).",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="DRVAULT_CONFIG",
    default=None,
    help="Policy configuration: centers and backup sets (env DRVAULT_CONFIG).",
)
@click.option(
    "--lock-wait",
    envvar="DRVAULT_LOCK_WAIT",
    default="10m",
    metavar="DURATION",
    help="Wait this long for a conflicting repository lock (e.g. prune) [10m].",
)
@click.option("--limit-upload", default=None, metavar="RATE", help="Upload limit, e.g. 20M (B/s).")
@click.option(
    "--limit-download", default=None, metavar="RATE", help="Download limit, e.g. 50M (B/s)."
)
@click.version_option(__version__, prog_name="drvault")
@click.pass_context
def cli(
    ctx: click.Context,
    as_json: bool,
    debug: bool,
    repo: str | None,
    password_file: str | None,
    options: tuple[str, ...],
    config_path: str | None,
    lock_wait: str,
    limit_upload: str | None,
    limit_download: str | None,
) -> None:
    """drvault: deduplicated, encrypted backups and disaster-recovery copies."""
    transport = from_environment()
    for assignment in options:
        transport = apply_option(transport, assignment)
    if limit_upload:
        transport = replace(transport, limit_upload=parse_rate(limit_upload))
    if limit_download:
        transport = replace(transport, limit_download=parse_rate(limit_download))
    metrics = Metrics()
    from drvault.durations import parse_duration

    try:
        wait = parse_duration(lock_wait)
    except UsageError as exc:
        raise UsageError(f"--lock-wait: {exc}") from None
    ctx.obj = Context(
        as_json, debug, repo or None, password_file, transport, metrics, config_path or None, wait
    )
    ctx.call_on_close(lambda: _report_transport(metrics))


def _report_transport(metrics: Metrics) -> None:
    """Say on standard error when transient storage errors were retried (on success only: a
    failure is one error line, which says how often it tried)."""
    if metrics.retries and not _ctx().json and sys.exc_info()[0] is None:
        click.echo(f"note: storage: {metrics.summary()}", err=True)


# ----------------------------------------------------------------------------------- init


@cli.command()
@click.argument("repo", required=False)
@set_options
@click.option("--suite", default="intl", show_default=True, help="Crypto suite: intl or gm.")
@click.option("--cipher", default=None, help="intl: aes-256-gcm (default) or chacha20-poly1305.")
@click.option("--id-hash", default=None, help="intl: blake3 (default) or hmac-sha256.")
@click.option(
    "--chunk-avg", default="64K", show_default=True, help="Average chunk size (power of 2)."
)
@click.option(
    "--canonical-chunker", is_flag=True, help="Unkeyed gear table (reference cut points)."
)
@click.option("--compression-level", default=3, show_default=True, type=click.IntRange(1, 19))
@click.option("--pack-size", default="16M", show_default=True, help="Target pack size.")
@click.option("--kdf", default="", help="scrypt cost, e.g. n=32768,r=8,p=3 (the default).")
def init(
    repo: str | None,
    suite: str,
    cipher: str | None,
    id_hash: str | None,
    chunk_avg: str,
    canonical_chunker: bool,
    compression_level: int,
    pack_size: str,
    kdf: str,
) -> None:
    """Create an encrypted repository at REPO (with --config: the --set's at production)."""
    url = repo_url(repo, "init")
    ctx = _ctx()
    if ctx.configured_repo():
        given = [
            name
            for name in (
                "suite",
                "cipher",
                "id_hash",
                "chunk_avg",
                "compression_level",
                "pack_size",
            )
            if click.get_current_context().get_parameter_source(name)
            == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            flags = ", ".join("--" + n.replace("_", "-") for n in given)
            raise UsageError(f"{flags}: with --set the repository settings come from the config")
        settings = ctx.backup_set(ctx.set_id or "").repository
        suite, cipher, id_hash = settings.suite, settings.cipher, settings.id_hash
        chunk_avg, compression_level = str(settings.chunk_avg), settings.compression_level
        pack_size = str(settings.pack_size)
    from drvault.repository.config import ChunkerSettings
    from drvault.repository.repository import Repository
    from drvault.repository.suite import Suite

    try:
        chunker = ChunkerSettings.for_average(parse_size(chunk_avg), canonical=canonical_chunker)
    except ValueError as exc:
        raise UsageError(f"--chunk-avg {chunk_avg}: {exc}") from None
    chosen = Suite.choose(suite, cipher, id_hash)
    password = get_password(ctx.set_password_file(), confirm=True, prompt="New repository password")
    r = Repository.init(
        backend_for(url),
        password,
        suite=chosen,
        chunker=chunker,
        kdf=KdfParams.parse(kdf),
        compression_level=compression_level,
        pack_size=parse_size(pack_size),
    )
    emit(
        f"created repository {r.config.repository_id.hex()[:16]} at {url} "
        f"(suite {chosen.name}: {chosen.cipher}, {chosen.id_hash}; key {r.slot_id[:8]})",
        {
            "repository": url,
            "id": r.config.repository_id.hex(),
            "config": r.config.body(),
            "key": r.slot_id,
        },
    )


# --------------------------------------------------------------------------------- backup


@cli.command()
@click.argument("args", nargs=-1, metavar="[REPO] PATH...")
@click.option("--exclude", "-e", multiple=True, help="Glob to leave out (repeatable).")
@click.option("--tag", multiple=True, help="Tag the snapshot (repeatable).")
@click.option(
    "--set",
    "backup_set",
    default=None,
    callback=_remember_set,
    help="Backup set: with --config its paths, excludes and repository; else a label.",
)
@click.option("--parent", default=None, help="Parent snapshot (default: latest of the same paths).")
@click.option("--force", is_flag=True, help="Read every file even if unchanged since the parent.")
@click.option("--host", default=None, help="Host name to record (default: this host).")
@click.option(
    "--time",
    "at_time",
    default=None,
    metavar="TIME",
    help="Record this time (ISO 8601, e.g. 2026-11-01T02:00:00Z) instead of now.",
)
def backup(
    args: tuple[str, ...],
    exclude: tuple[str, ...],
    tag: tuple[str, ...],
    backup_set: str | None,
    parent: str | None,
    force: bool,
    host: str | None,
    at_time: str | None,
) -> None:
    """Back up PATH... into REPO as a new snapshot (with --config: --set SET, no arguments)."""
    from drvault.filesystem.warm import inodes_warmed

    ctx = _ctx()
    if ctx.config_path and backup_set:
        if args:
            raise UsageError("with --config and --set the paths come from the set: no arguments")
        chosen = ctx.backup_set(backup_set)
        url, paths = repo_url(None, "backup"), list(chosen.paths)
        exclude = chosen.excludes + exclude
        tag = chosen.tags + tag
    else:
        url, paths = split_repo(args, 1, "backup REPO PATH...")
    sources = tuple(os.fsencode(p) for p in paths)
    with inodes_warmed(sources):  # while the key is derived and the index loaded
        repo = open_repo(url, load_index=False, imports=("drvault.backup", "drvault.snapshots"))
        lock = RepoLock(repo.backend, exclusive=False, command="backup", wait=ctx.lock_wait)
        lock.acquire()  # before the index is read: a prune that ran meanwhile is seen
        click.get_current_context().call_on_close(lock.release)
        repo.load_index()
    from drvault.backup import BackupRequest, BackupStats
    from drvault.backup import backup as run_backup
    from drvault.snapshots import resolve

    parent_id = resolve(repo, parent).id if parent else None
    line = ProgressLine(None if not ctx.json else False)

    def progress(stats: BackupStats, path: bytes) -> None:
        line.update(
            lambda: (
                f"{stats.files_new + stats.files_changed + stats.files_unmodified} files, "
                f"{human_bytes(stats.bytes_read)} read: {display_name(path)[-80:]}"
            )
        )

    request = BackupRequest(
        paths=sources,
        excludes=exclude,
        tags=tag,
        backup_set=backup_set,
        parent=parent_id,
        force_read=force,
        hostname=host or socket.gethostname(),
        time_ns=parse_time_ns(at_time) if at_time else None,
    )
    result = run_backup(repo, request, progress)
    line.done()
    snap, s = result.snapshot, result.stats
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    emit(
        f"snapshot {snap.id.hex()[:8]} saved: {s.files_new} new, {s.files_changed} changed, "
        f"{s.files_unmodified} unmodified files, {s.dirs} dirs; "
        f"{human_bytes(s.bytes_read)} read, {human_bytes(snap.summary['bytes_added'])} added"
        + (f"; {len(result.warnings)} warning(s)" if result.warnings else ""),
        {"snapshot": _snapshot_doc(snap), "stats": asdict(s), "warnings": list(result.warnings)},
    )
    if result.partial:
        sys.exit(errors.EXIT_PARTIAL)


def parse_time_ns(text: str) -> int:
    """An ISO 8601 time (naive means UTC) as nanoseconds since the epoch."""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--time {text}: expected ISO 8601, e.g. 2026-11-01T02:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _resolve(repo: Repository, ref: str) -> Snapshot:
    from drvault.snapshots import resolve

    damaged: list[IntegrityError] = []
    snap = resolve(repo, ref, damaged)
    for exc in damaged:
        click.echo(f"warning: skipped damaged snapshot: {exc}", err=True)
    return snap


def _verdict(mismatches: tuple[str, ...]) -> str:
    return "OK" if not mismatches else f"{len(mismatches)} MISMATCH(ES)"


def _snapshot_doc(s: Snapshot) -> dict[str, Any]:
    return {
        "id": s.id.hex(),
        "time": s.time,
        "hostname": s.hostname,
        "username": s.username,
        "paths": [display_name(p) for p in s.paths],
        "tags": list(s.tags),
        "tree": s.tree.hex(),
        "parent": s.parent.hex() if s.parent else None,
        "backup_set": s.backup_set,
        "summary": s.summary,
        "packs": len(s.packs),
    }


# ------------------------------------------------------------------------------ snapshots


@cli.command()
@click.argument("repo", required=False)
@set_options
def snapshots(repo: str | None) -> None:
    """List the snapshots in REPO, oldest first."""
    from drvault.snapshots import load_all

    url = repo_url(repo, "snapshots")
    r = open_repo(url, load_index=False)
    damaged: list[IntegrityError] = []
    snaps = load_all(r, damaged)
    rows = [
        f"{s.id.hex()[:8]}  {s.time[:19].replace('T', ' ')}  {s.hostname:<12} "
        f"{','.join(s.tags):<10} {human_bytes(s.summary.get('bytes_total', 0)):>10}  "
        + " ".join(display_name(p) for p in s.paths)
        for s in snaps
    ]
    header = f"{'ID':<8}  {'time (UTC)':<19}  {'host':<12} {'tags':<10} {'size':>10}  paths"
    emit("\n".join([header, *rows, f"{len(snaps)} snapshot(s)"]), [_snapshot_doc(s) for s in snaps])
    for exc in damaged:
        click.echo(f"drvault: error: damaged snapshot: {exc}", err=True)
    if damaged:
        sys.exit(errors.EXIT_INTEGRITY)


# ------------------------------------------------------------------------------------- ls


@cli.command("ls")
@click.argument("args", nargs=-1, required=True, metavar="[REPO] SNAPSHOT [PATH]")
@set_options
@click.option("-l", "--long", "long_format", is_flag=True, help="Mode, owner, size, time.")
def ls_command(args: tuple[str, ...], long_format: bool) -> None:
    """List the files of SNAPSHOT (ID, unique prefix or 'latest'), optionally below PATH."""
    from drvault.snapshots import find, walk

    url, rest = split_repo(args, 1, "ls REPO SNAPSHOT [PATH]")
    if len(rest) > 2:
        raise UsageError("usage: drvault ls REPO SNAPSHOT [PATH]")
    repo = open_repo(url)
    snap = _resolve(repo, rest[0])
    entries: Any
    if len(rest) == 2:
        top = find(repo, snap.tree, os.fsencode(rest[1]))
        if top is None:
            raise UsageError(f"{rest[1]}: not in snapshot {snap.id.hex()[:8]}")
        below = (
            walk(repo, top.node.subtree, top.path)
            if top.node.type == NodeType.DIR and top.node.subtree
            else iter(())
        )
        entries = [top, *below]
    else:
        entries = walk(repo, snap.tree)
    as_json = _ctx().json
    for e in entries:
        n = e.node
        path = "/" + display_name(e.path)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "path": path,
                        "type": str(n.type),
                        "mode": n.mode,
                        "uid": n.uid,
                        "gid": n.gid,
                        "size": n.size,
                        "mtime_ns": n.mtime_ns,
                    }
                )
            )
        elif long_format:
            click.echo(f"{n.type:<8} {n.mode:04o} {n.uid:>5}:{n.gid:<5} {n.size:>12}  {path}")
        else:
            click.echo(path)


# -------------------------------------------------------------------------------- restore


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[REPO] SNAPSHOT")
@set_options
@click.option("--target", "-t", required=True, type=click.Path(), help="Directory to restore into.")
@click.option("--include", "-i", multiple=True, help="Restore only this path (repeatable).")
@click.option(
    "--verify", is_flag=True, help="Re-read restored files and compare with the snapshot."
)
@click.option(
    "--no-owner", is_flag=True, help="Do not restore file ownership (default when not root)."
)
@click.option(
    "--thaw-wait/--no-thaw-wait",
    default=True,
    help="Archived packs: wait for their thaw (default), or request it and exit 16.",
)
@click.option("--thaw-tier", default=None, help="Expedited, Standard or Bulk [center's, Standard].")
@click.option("--thaw-days", default=None, type=click.IntRange(1, 30), help="Thawed copy lifetime.")
@click.option("--thaw-poll", default="60s", show_default=True, help="Poll interval while thawing.")
def restore(
    args: tuple[str, ...],
    target: str,
    include: tuple[str, ...],
    verify: bool,
    no_owner: bool,
    thaw_wait: bool,
    thaw_tier: str | None,
    thaw_days: int | None,
    thaw_poll: str,
) -> None:
    """Restore SNAPSHOT from REPO into --target (thawing archived packs it needs first)."""
    url, rest = split_repo(args, 1, "restore REPO SNAPSHOT --target DIR")
    if len(rest) != 1:
        raise UsageError("usage: drvault restore REPO SNAPSHOT --target DIR")
    repo = open_repo(url, imports=("drvault.restore",))
    from drvault.restore import RestoreStats
    from drvault.restore import restore as run_restore

    snap = _resolve(repo, rest[0])
    line = ProgressLine(None if not _ctx().json else False)

    def progress(stats: RestoreStats) -> None:
        line.update(lambda: f"{stats.packs_read} packs, {human_bytes(stats.bytes_written)} written")

    ctx = _ctx()
    storage = None
    if ctx.configured_repo():
        backup_set = ctx.backup_set(ctx.set_id or "")
        storage = ctx.center(ctx.center_id or backup_set.production).storage
    from drvault.durations import parse_duration

    thaw = _Thaw(
        repo.backend,
        tier=thaw_tier or (storage.thaw_tier if storage else "Standard"),
        days=thaw_days or (storage.thaw_days if storage else 7),
        wait=thaw_wait,
        poll=parse_duration(thaw_poll),
        line=line,
    )
    result = run_restore(
        repo,
        snap,
        os.fsencode(target),
        includes=tuple(os.fsencode(i) for i in include),
        verify=verify,
        restore_owner=False if no_owner else None,
        progress=progress,
        before_fetch=thaw,
    )
    line.done()
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    for m in result.mismatches:
        click.echo(f"verify: {m}", err=True)
    s = result.stats
    emit(
        f"restored snapshot {snap.id.hex()[:8]} to {target}: {s.files} files, {s.dirs} dirs, "
        f"{human_bytes(s.bytes_written)} from {s.packs_read} packs"
        + (f"; verified: {_verdict(result.mismatches)}" if verify else ""),
        {
            "snapshot": snap.id.hex(),
            "target": target,
            "stats": asdict(s),
            "warnings": list(result.warnings),
            "mismatches": list(result.mismatches),
        },
    )
    if result.mismatches:
        sys.exit(errors.EXIT_INTEGRITY)


class _Thaw:
    """Before a restore reads packs: thaw the archived ones it needs (S3 only), with progress.
    One listing says which are archived; only those are asked about and thawed."""

    def __init__(
        self, backend: Backend, *, tier: str, days: int, wait: bool, poll: float, line: ProgressLine
    ) -> None:
        self.backend, self.tier, self.days, self.wait, self.poll = backend, tier, days, wait, poll
        self.line = line

    def __call__(self, paths: list[str]) -> None:
        from drvault.objectlock import cold_storage

        cold = cold_storage(self.backend)
        if cold is None:  # no storage classes: nothing to import or ask (the policy model alone
            return  # took 19 ms to import, in every restore's critical path)
        from drvault.policy.model import ARCHIVE_CLASSES
        from drvault.thaw import ThawStatus, ensure_readable

        wanted = set(paths)
        archived = [
            i.name
            for i in self.backend.list("data/")
            if i.name in wanted and (i.storage_class or "") in ARCHIVE_CLASSES
        ]
        if not archived:
            return

        def progress(status: ThawStatus) -> None:
            self.line.update(
                f"thawing: {status.ready} of {status.archived} archived packs ready "
                f"({human_bytes(status.bytes_archived)}, tier {self.tier}, "
                f"waited {int(status.waited)}s)"
            )

        status = ensure_readable(
            cold,
            archived,
            days=self.days,
            tier=self.tier,
            wait=self.wait,
            poll=self.poll,
            progress=progress,
        )
        self.line.done()
        if status.archived and not _ctx().json:
            click.echo(
                f"thawed {status.archived} archived pack(s) ({human_bytes(status.bytes_archived)}"
                f", {status.requested} requested by this run, waited {int(status.waited)}s)",
                err=True,
            )


# ---------------------------------------------------------------------------------- check


@cli.command()
@click.argument("repo", required=False)
@set_options
@click.option("--read-data", is_flag=True, help="Decrypt and verify every blob.")
@click.option(
    "--read-data-subset", default=None, metavar="N/M", help="Verify blobs of pack subset N of M."
)
def check(repo: str | None, read_data: bool, read_data_subset: str | None) -> None:
    """Verify REPO and name every damaged or missing object."""
    from drvault.check import CheckStats, parse_subset
    from drvault.check import check as run_check

    url = repo_url(repo, "check")
    subset = parse_subset(read_data_subset) if read_data_subset else None
    r = open_repo(url, load_index=False)
    line = ProgressLine(None if not _ctx().json else False)

    def progress(stats: CheckStats) -> None:
        line.update(f"{stats.packs_read}/{stats.packs} packs, {human_bytes(stats.bytes_read)} read")

    result = run_check(r, read_data=read_data, subset=subset, progress=progress)
    line.done()
    if not _ctx().json:
        for e in result.errors:
            click.echo(f"error: {e}", err=True)
        for n in result.notes:
            click.echo(f"note: {n}", err=True)
    s = result.stats
    emit(
        f"{'no errors' if result.ok else f'{len(result.errors)} error(s)'}: "
        f"{s.snapshots} snapshots, "
        f"{s.trees} trees, {s.packs_read} packs read ({human_bytes(s.bytes_read)}), "
        f"{s.blobs_verified} blobs verified",
        {"ok": result.ok, "errors": result.errors, "notes": result.notes, "stats": asdict(s)},
    )
    if not result.ok:
        sys.exit(errors.EXIT_INTEGRITY)


# ------------------------------------------------------------------------------------ key


@cli.group()
def key() -> None:
    """Manage the key slots (passwords) of a repository."""


@key.command("add")
@click.argument("repo", required=False)
@click.option("--new-password-file", default=None, help="File holding the new password.")
@click.option("--kdf", default="", help="scrypt cost for the new slot, e.g. n=32768,r=8,p=3.")
def key_add(repo: str | None, new_password_file: str | None, kdf: str) -> None:
    """Add a key slot opened by a new password."""
    url = repo_url(repo, "key add")
    r = open_repo(url, load_index=False)
    slot = r.add_key(get_new_password(new_password_file), KdfParams.parse(kdf))
    emit(f"added key {slot[:8]}", {"key": slot})


@key.command("list")
@click.argument("repo", required=False)
def key_list(repo: str | None) -> None:
    """List key slots; * marks the one this password opened."""
    url = repo_url(repo, "key list")
    r = open_repo(url, load_index=False)
    docs = []
    lines = [f"  {'ID':<8}  {'created (UTC)':<20}  {'host':<16} user"]
    for slot in r.key_slots():
        if isinstance(slot, KeySlot):
            d = slot.doc
            docs.append(
                {
                    "id": slot.id,
                    "current": slot.id == r.slot_id,
                    "created": d.get("created"),
                    "hostname": d.get("hostname"),
                    "username": d.get("username"),
                }
            )
            mark = "*" if slot.id == r.slot_id else " "
            lines.append(
                f"{mark} {slot.id[:8]}  {d.get('created', ''):<20}  "
                f"{d.get('hostname', ''):<16} {d.get('username', '')}"
            )
        else:
            docs.append({"id": slot.rsplit("/", 1)[-1], "damaged": True})
            lines.append(f"! {slot.rsplit('/', 1)[-1][:8]}  DAMAGED")
    emit("\n".join(lines), docs)


@key.command("remove")
@click.argument("args", nargs=-1, required=True, metavar="[REPO] ID")
def key_remove(args: tuple[str, ...]) -> None:
    """Remove the key slot ID (a unique prefix is enough)."""
    url, rest = split_repo(args, 1, "key remove REPO ID")
    if len(rest) != 1:
        raise UsageError("usage: drvault key remove REPO ID")
    r = open_repo(url, load_index=False)
    removed = r.remove_key(rest[0])
    emit(f"removed key {removed[:8]}", {"removed": removed})


# ------------------------------------------------------------------------------ transport


@cli.group()
def transport() -> None:
    """Prove a storage target before a repository goes on it."""


@transport.command("check")
@click.argument("url")
@click.option("--size", default="32M", show_default=True, help="Bytes moved for the throughput.")
def transport_check(url: str, size: str) -> None:
    """Run the backend contract against URL: put, ranged get, list, atomic create, delete."""
    from drvault.transport.probe import probe

    backend = backend_for(url)
    try:
        report = probe(backend, size=parse_size(size))
    finally:
        backend.close()
    lines = [
        f"{'ok  ' if st.ok else 'FAIL'} {st.name:<13} {st.detail} ({st.seconds:.2f} s)"
        for st in report.steps
    ]
    verdict = "contract kept" if report.ok else "contract BROKEN"
    lines.append(f"{verdict}: {report.location}")
    emit(
        "\n".join(lines),
        {
            "location": report.location,
            "ok": report.ok,
            "steps": [asdict(st) for st in report.steps],
            "upload_mb_s": report.upload_mb_s,
            "download_mb_s": report.download_mb_s,
            "transport": _ctx().metrics.snapshot(),
        },
    )
    if not report.ok:
        sys.exit(errors.EXIT_BACKEND)


# ------------------------------------------------------------------------------- selftest


@cli.command()
def selftest() -> None:
    """Run known-answer tests of the chunker and every cipher and hash."""
    from drvault.selftest import run

    outcomes = run()
    emit(
        "\n".join(f"{'ok  ' if o.ok else 'FAIL'} {o.name} {o.detail}".rstrip() for o in outcomes),
        [asdict(o) for o in outcomes],
    )
    if not all(o.ok for o in outcomes):
        sys.exit(errors.EXIT_INTERNAL)


# ----------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    as_json = "--json" in args
    code = errors.EXIT_OK

    def fail(message: str, exit_code: int) -> int:
        click.echo(f"drvault: error: {message}", err=True)
        if as_json:
            click.echo(json.dumps({"error": message, "exit_code": exit_code}))
        return exit_code

    try:
        cli.main(args=args, prog_name="drvault", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        code = fail(exc.format_message(), errors.EXIT_USAGE)
    except click.exceptions.Abort:
        code = fail("aborted", errors.EXIT_INTERRUPTED)
    except DrvaultError as exc:
        if debug:
            traceback.print_exc()
        code = fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        code = fail("interrupted", errors.EXIT_INTERRUPTED)
    except BrokenPipeError:
        code = errors.EXIT_OK
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else errors.EXIT_INTERNAL
    except Exception as exc:  # a bug: one line, the traceback with --debug
        if debug:
            traceback.print_exc()
        code = fail(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
            errors.EXIT_INTERNAL,
        )
    sys.exit(code)
