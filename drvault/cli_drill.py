"""``drvault drill`` and ``drvault report``: restore drills and the reports auditors read.

``drill`` restores a snapshot from one center (``--config`` with ``--set`` and ``--from``) or
from a repository URL into a scratch directory, verifies it, times it against the RTO, and
stores the outcome at that center (``drvault.drill``); it exits 0 when the drill passed, 13
when data did not come back intact, 4 when it was too slow, or the code of the error that
stopped it. ``report`` gathers, for each set, the ``status`` checks, every center's
replication lag and the drills recorded since ``--since``, and writes them as one HTML page
(``drvault.report_html``); ``--json`` prints the document the page is drawn from.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import click

from drvault.cli import _ctx, _Thaw, backend_for, cli, emit, repo_url, set_options
from drvault.cli_centers import _sets, observe_set
from drvault.durations import parse_duration
from drvault.errors import BackendError, IntegrityError, UsageError
from drvault.password import get_password
from drvault.policy.compliance import SetStatus
from drvault.policy.model import BackupSet, Config
from drvault.policy.state import SetState
from drvault.progress import ProgressLine, human_bytes
from drvault.repository.lock import RepoLock
from drvault.repository.repository import Repository
from drvault.restore import RestoreStats

# ---------------------------------------------------------------------------------- drill


def _duration_option(name: str, text: str) -> float:
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}") from None


@cli.command("drill")
@click.argument("repo", required=False)
@set_options
@click.option(
    "--snapshot",
    "snapshot_ref",
    default="latest",
    show_default=True,
    metavar="ID|latest|random",
    help="The snapshot to restore: an ID or unique prefix, the latest, or one at random.",
)
@click.option(
    "--rto", default=None, metavar="DURATION", help="Time allowed for thaw+restore+verify [set's]."
)
@click.option(
    "--target",
    "-t",
    default=None,
    type=click.Path(),
    metavar="DIR",
    help="Make the scratch directory in DIR [the system's temporary directory].",
)
@click.option("--live", is_flag=True, help="Also compare with the live source files (reported).")
@click.option(
    "--report",
    "report_dir",
    default=None,
    type=click.Path(),
    metavar="DIR",
    help="Write the drill record as JSON and HTML into DIR.",
)
@click.option("--keep", is_flag=True, help="Keep the restored tree (default: removed).")
@click.option("--thaw-tier", default=None, help="Expedited, Standard or Bulk [center's, Standard].")
@click.option("--thaw-poll", default="60s", show_default=True, help="Poll interval while thawing.")
def drill_command(
    repo: str | None,
    snapshot_ref: str,
    rto: str | None,
    target: str | None,
    live: bool,
    report_dir: str | None,
    keep: bool,
    thaw_tier: str | None,
    thaw_poll: str,
) -> None:
    """Restore a snapshot into scratch space, verify every file, time it against the RTO,
    and record the outcome at the center (REPO, or --set SET --from CENTER with --config)."""
    from drvault.centers import open_center
    from drvault.drill import DrillRequest, center_role, choose_snapshot, drill

    ctx = _ctx()
    if ctx.set_id and not ctx.config_path:
        raise UsageError("--set needs --config FILE (or DRVAULT_CONFIG)")
    url = repo_url(repo, "drill")
    rto_seconds = _duration_option("--rto", rto) if rto else None
    poll = _duration_option("--thaw-poll", thaw_poll)
    thaw_days = 7
    if ctx.configured_repo():
        config = ctx.config()
        backup_set = ctx.backup_set(ctx.set_id or "")
        center = ctx.center(ctx.center_id or backup_set.production)
        holders = [c.id for c in config.holders(backup_set)]
        if center.id not in holders:
            raise UsageError(
                f"center {center.id!r} holds no copy of set {backup_set.id!r} "
                f"(holders: {', '.join(holders)})"
            )
        request = DrillRequest(
            set_id=backup_set.id,
            center=center.id,
            center_role=center_role(center.role),
            rto=backup_set.rto if rto_seconds is None else rto_seconds,
        )
        backend = open_center(center, backup_set.id, ctx.transport, ctx.metrics)
        thaw_tier = thaw_tier or center.storage.thaw_tier
        thaw_days = center.storage.thaw_days
    else:
        request = DrillRequest(center=url, rto=rto_seconds)
        backend = backend_for(url)
    request = replace(request, target=target, keep=keep, live=live)
    click.get_current_context().call_on_close(backend.close)
    repository = Repository.open(backend, get_password(ctx.set_password_file()), load_index=False)
    lock = RepoLock(backend, exclusive=False, command="drill", wait=ctx.lock_wait)
    lock.acquire()  # a prune waits until the drill has read what it needs
    click.get_current_context().call_on_close(partial(_release, lock))
    repository.load_index()
    damaged: list[IntegrityError] = []
    snapshot = choose_snapshot(repository, snapshot_ref, damaged)
    for exc in damaged:
        click.echo(f"warning: skipped damaged snapshot: {exc}", err=True)
    line = ProgressLine(None if not ctx.json else False)

    def progress(stats: RestoreStats) -> None:
        line.update(
            lambda: f"drill: {stats.packs_read} packs, {human_bytes(stats.bytes_written)} written"
        )

    thaw = _Thaw(
        backend, tier=thaw_tier or "Standard", days=thaw_days, wait=True, poll=poll, line=line
    )
    outcome = drill(repository, snapshot, request, before_fetch=thaw, progress=progress)
    line.done()
    record = outcome.record
    for w in outcome.warnings:
        click.echo(f"warning: {w}", err=True)
    written = write_report(Path(report_dir), record) if report_dir else None
    if record["passed"] and request.set_id and outcome.stored:
        _note_success(ctx.config(), record)
    emit(_drill_text(record, outcome.stored, written), record)
    code = outcome.exit_code
    if not record["passed"]:
        click.echo(f"drvault: error: drill FAILED: {'; '.join(record['reasons'])}", err=True)
    if outcome.store_error is not None:
        click.echo(
            f"{'drvault: error' if record['passed'] else 'warning'}: drill record not stored: "
            f"{outcome.store_error}",
            err=True,
        )
        code = code or outcome.store_error.exit_code
    if code:
        raise SystemExit(code)


def _release(lock: RepoLock) -> None:
    """Release the drill's lock; if the center cannot be reached any more, the drill's own
    outcome (already printed) is what matters: the lock left there goes stale on its own."""
    try:
        lock.release()
    except BackendError as exc:
        click.echo(f"warning: drill lock not released (it goes stale): {exc}", err=True)


def _note_success(config: Config, record: dict[str, Any]) -> None:
    """Keep the passed drill for the metrics file, where one is kept."""
    if not (config.metrics_file or Path(config.state_dir).exists()):
        return
    from drvault.metrics_export import export, save_drill_success

    save_drill_success(Path(config.state_dir), record["set"], record["center"], record["finished"])
    export(config, time.time())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "repo"


def write_report(directory: Path, record: dict[str, Any]) -> tuple[Path, Path]:
    """``drill-<set>-<center>-<UTC yyyymmddTHHMMSS>.json`` and ``.html`` in ``directory``."""
    from drvault.report_html import render_drill

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(record["finished"]))
    base = f"drill-{_slug(record['set'])}-{_slug(record['center'])}-{stamp}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        json_path, html_path = directory / f"{base}.json", directory / f"{base}.html"
        json_path.write_text(json.dumps(record, sort_keys=True, indent=2) + "\n")
        html_path.write_text(render_drill(record), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--report {directory}: {exc.strerror or exc}") from None
    return json_path, html_path


def _drill_text(
    record: dict[str, Any], stored: str | None, written: tuple[Path, Path] | None
) -> str:
    from drvault.drill import span

    where = record["center"] + (f" ({record['center_role']})" if record["center_role"] else "")
    title = f"drill {record['set']} from {where}" if record["set"] else f"drill of {where}"
    snap_time = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record["snapshot_time"]))
    ttfb = "-" if record["ttfb_seconds"] is None else span(record["ttfb_seconds"])
    rto = record["rto_seconds"]
    lines = [
        f"{title}: {'PASS' if record['passed'] else 'FAIL'}",
        f"  snapshot    {record['snapshot'][:8]} ({snap_time} UTC)",
        f"  restored    {record['files']} files, {human_bytes(record['bytes'])}; "
        f"{record['verified_files']} verified, {record['mismatched_files']} mismatched",
        f"  time        thaw {span(record['thaw_seconds'])}, first byte {ttfb}, "
        f"restore {span(record['restore_seconds'])}, verify {span(record['verify_seconds'])}, "
        f"total {span(record['total_seconds'])}",
        f"  throughput  {human_bytes(record['throughput_bps'])}/s",
        "  RTO         "
        + (
            "none given"
            if rto is None
            else f"{span(rto)}: " + ("met" if record["total_seconds"] <= rto else "MISSED")
        ),
    ]
    live = record["live"]
    if live is not None:
        lines.append(
            f"  live        {live['compared']} compared, {live['differ']} differ, "
            f"{live['missing']} missing (changes since the backup are expected)"
        )
        lines.extend(f"                {e}" for e in live["examples"][:5])
    lines.extend(f"  mismatch    {m}" for m in record["mismatches"])
    lines.extend(f"  reason      {r}" for r in record["reasons"])
    if stored:
        lines.append(f"  record      {stored}")
    if written:
        lines.append(f"  report      {written[0]}, {written[1].name}")
    kept = " (removed)" if record["scratch"] else " (kept)"
    lines.append(f"  scratch     {record['target']}{kept}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- report


@cli.command("report")
@click.option("--set", "set_ids", multiple=True, metavar="SET", help="Only this set (repeatable).")
@click.option(
    "--since", default="90d", show_default=True, metavar="DURATION", help="History to include."
)
@click.option(
    "--html",
    "html_path",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the report as one self-contained HTML page.",
)
def report(set_ids: tuple[str, ...], since: str, html_path: str) -> None:
    """Compliance checks, replication lag per center and drills of each set, as HTML."""
    from drvault.policy.compliance import evaluate
    from drvault.report_html import render_history

    ctx = _ctx()
    config = ctx.config()
    now = time.time()
    start = now - _duration_option("--since", since)
    docs = []
    for backup_set in _sets(config, set_ids, False, "report"):
        state = observe_set(config, backup_set)
        docs.append(
            set_history(config, backup_set, state, evaluate(config, backup_set, state, now), start)
        )
    doc = {"version": 1, "generated": now, "since": start, "sets": docs}
    try:
        Path(html_path).write_text(render_history(doc), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--html {html_path}: {exc.strerror or exc}") from None
    drills = sum(len(s["drills"]) for s in docs)
    emit(
        f"report: {len(docs)} set(s), {drills} drill(s) since "
        f"{time.strftime('%Y-%m-%d', time.gmtime(start))} written to {html_path}",
        doc,
    )


def set_history(
    config: Config, backup_set: BackupSet, state: SetState, status: SetStatus, since: float
) -> dict[str, Any]:
    """One set's part of the report document, from what ``status`` sees (see the module's
    schema): checks at the time of the report, lag and drills since ``since``, oldest first."""
    rpo = {backup_set.production: backup_set.rpo, **{c.center: c.rpo for c in backup_set.copies}}
    centers = []
    for center in config.holders(backup_set):
        copy = state.copy(center.id)
        landed = [] if copy is None else copy.landed
        centers.append(
            {
                "id": center.id,
                "role": center.role,
                "city": center.site.city,
                "rpo_seconds": rpo.get(center.id),
                "lag": [[t, at] for t, at in landed if t >= since and at is not None],
            }
        )
    return {
        "id": backup_set.id,
        "classification": backup_set.classification,
        "rto_seconds": backup_set.rto,
        "rpo_seconds": backup_set.rpo,
        "verdict": status.verdict,
        "checks": [
            {"id": c.id, "verdict": c.verdict, "reason": c.reason, "center": c.center}
            for c in status.checks
        ],
        "centers": centers,
        "drills": [dict(d.record) for d in state.drills if d.finished >= since],
    }
