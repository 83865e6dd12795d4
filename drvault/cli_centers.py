"""Commands of the three centers: ``replicate``, ``status`` and ``policy check``.

They read the policy configuration (``--config``), call one service each (``replicate_sets()``,
``observe()`` + ``evaluate()``, ``topology_checks()``) and render text or ``--json``. Cron runs
them: every run logs one line per (set, center) on standard error, and the exit code is the
worst outcome (0 ok, 4 out of compliance, 12 another run holds a lock, 13 damaged source, 15 a
center unreachable).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drvault import errors
from drvault.cli import _ctx, cli, emit
from drvault.durations import format_duration
from drvault.errors import DrvaultError, UsageError
from drvault.password import get_password
from drvault.policy.checks import Check
from drvault.policy.model import BackupSet, Config
from drvault.progress import human_bytes

if TYPE_CHECKING:
    from drvault.policy.state import SetState
    from drvault.replication_run import PairOutcome


def _sets(config: Config, set_ids: tuple[str, ...], every: bool, command: str) -> list[BackupSet]:
    ctx = _ctx()
    if set_ids and every:
        raise UsageError(f"drvault {command}: give --set or --all, not both")
    if set_ids:
        return [ctx.backup_set(s) for s in set_ids]
    return list(config.sets)


def _exit_code(failures: list[DrvaultError]) -> int:
    if not failures:
        return errors.EXIT_OK
    codes = {f.exit_code for f in failures}
    for code in (errors.EXIT_INTEGRITY, errors.EXIT_BACKEND, errors.EXIT_LOCKED):
        if code in codes:
            return code
    return max(codes)


# ------------------------------------------------------------------------------ replicate


@cli.command()
@click.option("--set", "set_ids", multiple=True, metavar="SET", help="Only this set (repeatable).")
@click.option("--to", "to_centers", multiple=True, metavar="CENTER", help="Only this center.")
@click.option("--all", "every", is_flag=True, help="Every backup set to every center holding it.")
@click.option("--parallel", type=click.IntRange(1, 64), default=None, help="Packs in flight.")
def replicate(
    set_ids: tuple[str, ...], to_centers: tuple[str, ...], every: bool, parallel: int | None
) -> None:
    """Copy new snapshots of each set from production to its DR centers, keylessly."""
    from drvault.centers import open_center
    from drvault.replication_run import replicate_sets

    ctx = _ctx()
    config = ctx.config()
    if not set_ids and not every:
        raise UsageError("drvault replicate: name --set SET (repeatable) or --all")
    for center_id in to_centers:
        ctx.center(center_id)
    sets = _sets(config, set_ids, every, "replicate")
    if set_ids and to_centers:
        for backup_set in sets:
            if not any(c.center in to_centers for c in backup_set.copies):
                raise UsageError(f"set {backup_set.id} is not copied to {', '.join(to_centers)}")

    def log(pair: PairOutcome) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        r = pair.result
        if r is None:
            message = f"FAILED: {pair.error}"
        elif pair.error is not None:
            message = f"FAILED after {human_bytes(r.bytes_sent)}: {pair.error}"
        else:
            message = (
                f"ok: {r.snapshots_sent} snapshot(s), {r.packs_sent} pack(s), "
                f"{human_bytes(r.bytes_sent)} in {r.seconds:.1f} s; "
                f"{r.snapshots_present} snapshot(s) there"
            )
        click.echo(f"{stamp} replicate {pair.set_id} -> {pair.center}: {message}", err=True)
        for skipped in r.skipped if r is not None else ():
            click.echo(f"warning: {pair.set_id} -> {pair.center}: {skipped}", err=True)

    outcomes = replicate_sets(
        config,
        sets,
        lambda center, set_id: open_center(center, set_id, ctx.transport, ctx.metrics),
        to_centers=to_centers,
        parallel=parallel,
        on_pair=log,
        lock_wait=ctx.lock_wait,
    )
    _export_metrics(config)
    report: dict[str, Any] = {}
    for pair in outcomes:
        report.setdefault(pair.set_id, {})[pair.center] = _target_doc(pair)
    failures = [p.error for p in outcomes if p.error is not None]
    total = sum(p.bytes_sent for p in outcomes)
    emit(
        f"replicate: {len(outcomes)} (set, center) pair(s), {human_bytes(total)} transferred"
        + (f", {len(failures)} failed" if failures else ""),
        {"ok": not failures, "bytes_transferred": total, "sets": report},
    )
    code = _exit_code(failures)
    if code:
        raise SystemExit(code)


def _target_doc(pair: PairOutcome) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ok": pair.ok,
        "error": None if pair.error is None else str(pair.error),
        "bytes_transferred": pair.bytes_sent,
    }
    r = pair.result
    if r is not None:
        doc.update(
            snapshots_sent=r.snapshots_sent,
            snapshots_present=r.snapshots_present,
            packs_sent=r.packs_sent,
            index_sent=r.index_sent,
            seconds=round(r.seconds, 3),
            skipped=list(r.skipped),
        )
    return doc


def _export_metrics(config: Config) -> None:
    if config.metrics_file:
        from drvault.metrics_export import export

        export(config, time.time())


# --------------------------------------------------------------------------------- status


def observe_set(config: Config, backup_set: BackupSet) -> SetState:
    """What every center holding the set holds now (with the set's password), for status and
    report."""
    from drvault.centers import open_center
    from drvault.observe import observe

    ctx = _ctx()
    password = get_password(backup_set.password_file or ctx.password_file)
    return observe(
        config,
        backup_set,
        lambda c, s=backup_set.id: open_center(c, s, ctx.transport, ctx.metrics),  # type: ignore[misc]
        password,
    )


@cli.command()
@click.option("--set", "set_ids", multiple=True, metavar="SET", help="Only this set (repeatable).")
@click.option(
    "--at", "at_time", default=None, metavar="TIME", help="Judge as of TIME (ISO 8601) not now."
)
def status(set_ids: tuple[str, ...], at_time: str | None) -> None:
    """Is each backup set compliant? Computed from what every center holds right now."""
    from drvault.cli import parse_time_ns
    from drvault.policy.compliance import evaluate

    ctx = _ctx()
    config = ctx.config()
    now = parse_time_ns(at_time) / 1e9 if at_time else time.time()
    docs = []
    lines = []
    statuses = []
    for backup_set in _sets(config, set_ids, False, "status"):
        state = observe_set(config, backup_set)
        result = evaluate(config, backup_set, state, now)
        statuses.append((backup_set, state, result))
        lines.append(
            f"{backup_set.id}: {result.verdict.upper()}  "
            f"(GB/T 20988 data-backup element: level {result.level.level}"
            + (f", {result.required_level} required" if result.required_level else "")
            + f"; limited by: {result.level.limiting}"
            + (
                f"; judged over {format_duration(result.level.window_days * 86400)} of history"
                if result.level.window_days < config.thresholds.level_window_days
                else ""
            )
            + ")"
        )
        for copy in state.copies:
            age = "no snapshot" if copy.newest is None else format_duration(now - copy.newest)
            where = (
                f"unreachable: {copy.error}"
                if not copy.reachable
                else f"{len(copy.snapshot_times)} snapshot(s)"
            )
            lines.append(f"  {copy.center:<16} newest {age:<12} {where}")
        for check in result.checks:
            lines.append(f"  {_mark(check)}  {check.id:<15} {_about(check)}{check.reason}")
        docs.append(
            {
                "set": backup_set.id,
                "verdict": result.verdict,
                "compliant": result.compliant,
                "level": asdict(result.level),
                "required_level": result.required_level,
                "centers": [
                    {
                        "center": c.center,
                        "reachable": c.reachable,
                        "exists": c.exists,
                        "error": c.error,
                        "snapshots": len(c.snapshot_times),
                        "newest": c.newest,
                        "age_seconds": None if c.newest is None else round(now - c.newest, 3),
                        "suite": c.suite,
                    }
                    for c in state.copies
                ],
                "checks": [asdict(c) for c in result.checks],
            }
        )
    compliant = all(r.compliant for _, _, r in statuses)
    if config.metrics_file or Path(config.state_dir).exists():
        from drvault.metrics_export import save_status

        save_status(Path(config.state_dir), docs, now)
    _export_metrics(config)
    emit("\n".join(lines), {"compliant": compliant, "time": now, "sets": docs})
    if not compliant:
        raise SystemExit(errors.EXIT_NONCOMPLIANT)


def _mark(check: Check) -> str:
    return {"pass": "pass", "warn": "WARN", "fail": "FAIL", "n/a": "n/a "}[check.verdict]


def _about(check: Check) -> str:
    return f"{check.center}: " if check.center else ""


# --------------------------------------------------------------------------------- policy


@cli.group()
def policy() -> None:
    """Validate the policy configuration."""


@policy.command("check")
def policy_check() -> None:
    """Load the configuration and judge the declared topology of every backup set."""
    from drvault.policy.declared import declared_checks

    config = _ctx().config()
    lines = [f"{config.path}: {len(config.centers)} centers, {len(config.sets)} backup sets"]
    docs = []
    ok = True
    for backup_set in config.sets:
        checks = declared_checks(config, backup_set)
        bad = any(c.verdict == "fail" for c in checks)
        ok = ok and not bad
        lines.append(f"{backup_set.id}: {'FAIL' if bad else 'ok'}")
        lines.extend(f"  {_mark(c)}  {c.id:<15} {_about(c)}{c.reason}" for c in checks)
        docs.append({"set": backup_set.id, "ok": not bad, "checks": [asdict(c) for c in checks]})
    emit("\n".join(lines), {"ok": ok, "path": config.path, "sets": docs})
    if not ok:
        raise SystemExit(errors.EXIT_NONCOMPLIANT)
