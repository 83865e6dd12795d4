"""Prune at scale: how much forget + prune reclaim against what they should, how long prune takes
and how much memory it needs, and that the repository is whole afterwards.

    python -m bench.prune [--size 1G] [--max-unused 5%] [--workdir DIR] [--seed N] [--no-peers]
                          [--json]

1. Data: a directory of 1 MiB files of seeded random (incompressible) bytes, 8/15 of
   ``--size``, in 8 groups of neighbouring files. Day 1 backs it up; on each of days 2-8 the
   files of one group (day d: group d-2) are rewritten with new bytes and the directory backed
   up again. The repository (default settings: 16 MiB packs, 64 KiB chunks; the library API,
   untimed) then holds about ``--size``: day 1's data plus 7/8 of it again.
2. ``drvault forget --keep-last 4`` (days 5-8 stay), then ``drvault prune`` with the CLI's
   defaults (keyed: whole unneeded packs deleted, partly needed packs repacked until at most
   5 % of the needed bytes is waste, index files rewritten, a forwarding record written),
   each a subprocess of its own.
3. What only the forgotten snapshots needed is known from the construction: day 1's version
   of groups 0-3 (rewritten on days 2-5). The bytes the repository shrank by in the prune, over
   that, is the "reclaimed / expected" ratio; it can pass 100 % by the forgotten days' own
   trees and the encryption overhead of the deleted blobs, and falls short by what partly used
   packs left within the 5 % tolerance still hold.
4. Every kept snapshot is restored (``drvault restore``) and each file compared with the bytes
   written for that day (SHA-256); then ``drvault check --read-data`` reads every blob.

5. Side by side (unless ``--no-peers``): restic and borg back up the same eight days (each day
   right after drvault), then ``restic forget --keep-last 4 --prune --max-unused`` (the same
   tolerance) and ``borg prune
   --keep-last 4`` + ``borg compact``, measured the same way (wall time, peak RSS by GNU time,
   repository bytes before and after).

Sizes are on-disk bytes of the repository's objects (MiB = 2^20 bytes). Wall time is around the
prune process, start-up and key derivation included. Peak RSS is the prune process's own
(``os.wait4`` on that child), not a running maximum over every child as
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` would give once an earlier child was larger.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus import rng_for
from bench.tools import Borg, Restic, Run, Tool, ensure_peers
from bench.tools import run as run_tool
from drvault.backup import BackupRequest, backup
from drvault.repository.keys import KdfParams
from drvault.repository.repository import Repository
from drvault.repository.suite import Suite
from drvault.transport import LocalBackend

SEED = 20240607
FILE_SIZE = 1 << 20
DAYS = 8
GROUPS = 8
KEEP = 4
MIB = 1 << 20
PASSWORD = "bench-prune"
DAY_NS = 86_400 * 1_000_000_000
T0_NS = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z


class BenchError(RuntimeError):
    """A drvault command failed."""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss: int  # bytes
    stdout: str


def drvault(*args: str | os.PathLike[str], work: Path) -> Measured:
    """Run ``python -m drvault ARGS``; its wall time and its own peak RSS (``wait4``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRVAULT_")}
    env["DRVAULT_PASSWORD"] = PASSWORD
    out, err = work / "cmd.out", work / "cmd.err"
    cmd = [sys.executable, "-m", "drvault", *(os.fspath(a) for a in args)]
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    text = out.read_text(errors="replace")
    if proc.returncode != 0:
        message = err.read_text(errors="replace").strip()
        raise BenchError(
            f"drvault {' '.join(map(str, args[:2]))}: exit {proc.returncode}: {message}"
        )
    return Measured(seconds, usage.ru_maxrss * 1024, text)


def repo_bytes(repo: Path) -> int:
    return sum(i.size for i in LocalBackend(str(repo)).list("") if not i.name.startswith("locks/"))


# ------------------------------------------------------------------------------ the data


def content(seed: int, file: int, version: int) -> bytes:
    return rng_for(seed, file, version).bytes(FILE_SIZE)


@dataclass
class Built:
    files: int
    data_bytes: int
    snapshots: list[str] = field(default_factory=list)  # ids, oldest first
    digests: list[dict[str, str]] = field(default_factory=list)  # per day: file -> sha256
    forgotten_only: int = 0  # bytes only the snapshots forget drops hold (computed)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build(
    work: Path, repo_dir: Path, size: int, seed: int, peers: list[Tool] | None = None
) -> Built:
    """Eight daily backups; each day after the first rewrites one group of files."""
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    files = max(GROUPS, size * 8 // 15 // FILE_SIZE)
    built = Built(files, files * FILE_SIZE)
    group = [i * GROUPS // files for i in range(files)]
    version = [1] * files  # the day whose bytes each file holds
    digests: dict[str, str] = {}

    def write(i: int, day: int) -> None:
        name = f"f{i:05d}.bin"
        data_ = content(seed, i, day)
        (data / name).write_bytes(data_)
        digests[name] = hashlib.sha256(data_).hexdigest()
        version[i] = day

    repo = Repository.init(
        LocalBackend(str(repo_dir)),
        PASSWORD.encode(),
        suite=Suite.choose("intl"),
        kdf=KdfParams(n=1024),
    )
    versions_seen: list[list[int]] = []
    for day in range(1, DAYS + 1):
        for i in range(files):
            if day == 1 or group[i] == day - 2:
                write(i, day)
        made = backup(
            repo,
            BackupRequest(
                paths=(os.fsencode(data),), hostname="bench", time_ns=T0_NS + day * DAY_NS
            ),
        )
        built.snapshots.append(made.snapshot.id.hex())
        built.digests.append(dict(digests))
        for peer in peers or []:
            peer.backup(data)
        versions_seen.append(list(version))
    kept = {(i, v[i]) for v in versions_seen[DAYS - KEEP :] for i in range(files)}
    dropped = {(i, v[i]) for v in versions_seen[: DAYS - KEEP] for i in range(files)}
    built.forgotten_only = len(dropped - kept) * FILE_SIZE
    shutil.rmtree(data)  # the restores are compared against the digests
    return built


# ------------------------------------------------------------------------------- the run


@dataclass
class Result:
    size: int
    max_unused: str
    files: int
    data_bytes: int
    repo_before: int
    repo_after_forget: int
    repo_after_prune: int
    expected: int
    reclaimed: int
    prune_seconds: float
    forget_seconds: float
    prune_peak_rss: int
    prune: dict[str, Any]
    restored: int  # kept snapshots restored byte-exact
    restore_errors: list[str]
    check_ok: bool
    check_errors: list[str]
    peers: dict[str, dict[str, float]] = field(default_factory=dict)  # tool -> measures


def verify_restore(repo: Path, snapshot: str, digests: dict[str, str], work: Path) -> str | None:
    """Restore one snapshot; None when every file matches, else what differs."""
    target = work / "restore"
    shutil.rmtree(target, ignore_errors=True)
    try:
        drvault("restore", repo, snapshot, "--target", target, work=work)
        root = target / str(work / "data").lstrip("/")
        got = {}
        for path in sorted(root.iterdir()) if root.is_dir() else []:
            got[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    except BenchError as exc:
        return f"{snapshot[:8]}: {exc}"
    finally:
        shutil.rmtree(target, ignore_errors=True)
    if got != digests:
        wrong = sorted(n for n in set(got) | set(digests) if got.get(n) != digests.get(n))
        return f"{snapshot[:8]}: {len(wrong)} file(s) differ, first {wrong[0]}"
    return None


def _peer_prune(peer: Tool, max_unused: str) -> list[Run]:
    """restic gets the same tolerance of unneeded bytes; borg compacts every segment it can."""
    if isinstance(peer, Restic):
        cmd = ("forget", "--keep-last", str(KEEP), "--prune", "--max-unused", max_unused)
        return [run_tool(peer._cmd(*cmd), peer.env)]
    assert isinstance(peer, Borg)
    return [
        run_tool(["borg", "prune", "--keep-last", str(KEEP), str(peer.repo)], peer.env),
        run_tool(["borg", "compact", str(peer.repo)], peer.env),
    ]


def run(
    work: Path, size: int, seed: int, with_peers: bool = True, max_unused: str = "5%"
) -> Result:
    repo = work / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    peers: list[Tool] = []
    if with_peers:
        ensure_peers()
        for cls in (Restic, Borg):
            where = work / cls.name
            shutil.rmtree(where, ignore_errors=True)
            shutil.rmtree(work / f"{cls.name}-cache", ignore_errors=True)
            peer = cls(where, cache=work / f"{cls.name}-cache")
            peer.init()
            peers.append(peer)
    t = time.perf_counter()
    built = build(work, repo, size, seed, peers)
    before = repo_bytes(repo)
    _progress(
        f"built: {DAYS} snapshots of {built.data_bytes / MIB:.0f} MiB ({built.files} files), "
        f"repository {before / MIB:.1f} MiB ({time.perf_counter() - t:.1f} s)"
    )
    forget_run = drvault("--json", "forget", repo, "--keep-last", str(KEEP), work=work)
    forgot = json.loads(forget_run.stdout)
    if forgot["repositories"][0]["forgotten"] != DAYS - KEEP:
        raise BenchError(f"forget --keep-last {KEEP} did not forget {DAYS - KEEP}: {forgot}")
    after_forget = repo_bytes(repo)
    pruned = drvault("--json", "prune", repo, "--max-unused", max_unused, work=work)
    after_prune = repo_bytes(repo)
    doc = json.loads(pruned.stdout)["repositories"][0]
    _progress(f"prune: {pruned.seconds:.1f} s, peak RSS {pruned.peak_rss / MIB:.0f} MiB")

    restore_errors = []
    restored = 0
    for snapshot, digests in list(zip(built.snapshots, built.digests, strict=True))[DAYS - KEEP :]:
        problem = verify_restore(repo, snapshot, digests, work)
        if problem is None:
            restored += 1
        else:
            restore_errors.append(problem)
    try:
        drvault("check", repo, "--read-data", work=work)
        check_errors: list[str] = []
    except BenchError as exc:
        check_errors = [str(exc)]
    shutil.rmtree(repo, ignore_errors=True)
    measured: dict[str, dict[str, float]] = {}
    for peer in peers:
        where = Path(str(peer.repo))
        size_before = dir_bytes(where)
        runs = _peer_prune(peer, max_unused)
        measured[peer.name] = {
            "repo_before": size_before,
            "repo_after": dir_bytes(where),
            "seconds": sum(r.wall for r in runs),
            "peak_rss": max(r.peak_rss for r in runs),
        }
        _progress(
            f"{peer.name}: prune {measured[peer.name]['seconds']:.1f} s, "
            f"peak RSS {measured[peer.name]['peak_rss'] / MIB:.0f} MiB"
        )
        shutil.rmtree(where, ignore_errors=True)
    return Result(
        size=size,
        max_unused=max_unused,
        files=built.files,
        data_bytes=built.data_bytes,
        repo_before=before,
        repo_after_forget=after_forget,
        repo_after_prune=after_prune,
        expected=built.forgotten_only,
        reclaimed=after_forget - after_prune,
        prune_seconds=pruned.seconds,
        forget_seconds=forget_run.seconds,
        prune_peak_rss=pruned.peak_rss,
        prune={
            k: doc[k]
            for k in (
                "delete_packs",
                "repack_packs",
                "repack_needed_bytes",
                "bytes_written",
                "partly_needed_packs",
                "partly_unneeded_bytes",
                "held_packs",
            )
        },
        restored=restored,
        restore_errors=restore_errors,
        check_ok=not check_errors,
        check_errors=check_errors,
        peers=measured,
    )


def table(r: Result) -> str:
    def mib(n: int) -> str:
        return f"{n / MIB:10.1f} MiB"

    share = 100 * r.reclaimed / r.expected if r.expected else float("nan")
    p = r.prune
    rows = [
        ("repository before forget", mib(r.repo_before)),
        ("after forget", mib(r.repo_after_forget)),
        ("after prune", mib(r.repo_after_prune)),
        ("only forgotten snapshots needed", mib(r.expected) + "  (computed)"),
        ("reclaimed / expected", mib(r.reclaimed) + f"  ({share:.1f} %)"),
        ("prune wall time", f"{r.prune_seconds:10.2f} s"),
        ("prune peak RSS", mib(r.prune_peak_rss)),
        (
            "prune plan",
            f"{p['delete_packs']} pack(s) deleted, of them {p['repack_packs']} repacked "
            f"({p['bytes_written'] / MIB:.1f} MiB written); {p['partly_needed_packs']} partly "
            f"needed left ({p['partly_unneeded_bytes'] / MIB:.1f} MiB unneeded inside), "
            f"{p['held_packs']} held",
        ),
        (
            f"restore of {KEEP} kept snapshots",
            "OK, byte-exact" if not r.restore_errors else "FAILED: " + "; ".join(r.restore_errors),
        ),
        ("check --read-data", "OK" if r.check_ok else "FAILED: " + "; ".join(r.check_errors)),
    ]
    head = (
        f"prune: {DAYS} daily snapshots of {r.data_bytes / MIB:.0f} MiB ({r.files} files of "
        f"1 MiB, 1/{GROUPS} rewritten a day), forget --keep-last {KEEP}, "
        f"prune --max-unused {r.max_unused}"
    )
    width = max(len(k) for k, _ in rows)
    lines = [head, *(f"  {k:<{width}}  {v}" for k, v in rows)]
    if r.peers:
        ours = {
            "repo_before": float(r.repo_before),
            "repo_after": float(r.repo_after_prune),
            "seconds": r.forget_seconds + r.prune_seconds,
            "peak_rss": float(r.prune_peak_rss),
        }
        tools = {"drvault": ours, **r.peers}
        lines += ["", "  side by side (forget + prune of the same 8 days, keep last 4):"]
        names = list(tools)
        lines.append(
            "  "
            + f"{'':<28}"
            + "".join(f"{n:>12}" for n in names)
            + "".join(f"{'drvault/' + n:>16}" for n in names[1:])
        )
        for key, label, scale in (
            ("repo_before", "repository before (MiB)", MIB),
            ("repo_after", "repository after (MiB)", MIB),
            ("reclaimed", "reclaimed (MiB)", MIB),
            ("seconds", "forget+prune wall (s)", 1),
            ("peak_rss", "peak RSS (MiB)", MIB),
        ):
            vals = {
                n: (t["repo_before"] - t["repo_after"]) if key == "reclaimed" else t[key]
                for n, t in tools.items()
            }
            row = "".join(f"{vals[n] / scale:>12.1f}" for n in names)
            ratios = "".join(
                f"{(vals['drvault'] / vals[n] if vals[n] else float('nan')):>15.2f}x"
                for n in names[1:]
            )
            lines.append(f"  {label:<28}{row}{ratios}")
    return "\n".join(lines)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.prune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--size", default="1G", help="repository size before forget (1G)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument(
        "--max-unused", default="5%", help="prune's tolerance of unneeded bytes in packs (5%%)"
    )
    ap.add_argument("--json", action="store_true", help="also print the result as JSON")
    ap.add_argument("--no-peers", action="store_true", help="drvault only (no restic, borg)")
    args = ap.parse_args(argv)
    from drvault.sizes import parse_size

    size = parse_size(args.size)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="drvault-bench-prune-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = run(work, size, args.seed, not args.no_peers, args.max_unused)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(result))
    if args.json:
        print(json.dumps(asdict(result), indent=1))
    return 0 if result.check_ok and not result.restore_errors else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
