"""Proving a repository whole, and restore drills: drvault against restic and borg.

    python -m bench.verify [--size 1G] [--workdir DIR] [--seed N] [--json] [--no-peers]

1. Data: ``--size`` bytes of files (log-uniform sizes, 16 KiB to 16 MiB, in 16 directories),
   half of the bytes seeded random (incompressible), half word-like text (zstd-3 shrinks it
   about 3x), generated from ``--seed``; the SHA-256 of every file is kept. Each tool backs it
   up once into a fresh repository with its defaults (``bench.tools``: drvault ``init``
   defaults with the normal scrypt KDF, restic repository v2, borg repokey-blake2 with zstd 3).
   The backups are not measured.
2. Proving the repository whole, each command its own process:

   - ``drvault scrub --keyless``: every object read, SHA-256 against its name; no key;
   - ``drvault scrub``: the same, and every blob decrypted and checked against its ID;
   - ``drvault check --read-data``: structure, and every blob decrypted and checked;
   - ``restic check --read-data``: every pack hashed, every blob decrypted and checked;
   - ``borg check --verify-data``: segment CRCs, and every chunk decrypted and checked;
   - ``borg check --repository-only`` (extra): segment CRC32s only, the nearest borg has to
     a keyless scrub.

   Throughput is the tool's own repository bytes (every file of it) per second of wall time.
3. A restore drill of the latest snapshot:

   - ``drvault drill REPO --target DIR``: restore into scratch space, re-read every file and
     hash each chunk to its blob ID, remove the scratch directory, store a drill record;
   - ``restic restore latest --target DIR --verify``: restore, then re-read every file and
     hash each blob;
   - ``borg extract``: restore only; borg has no verify option. The harness then hashes
     every extracted file (SHA-256, one thread a core) against the digests kept in step 1,
     reported as its own row and added to ``borg extract`` in a third.

   Throughput is restored bytes (the data set's) per second of wall time. The restored trees
   of restic and borg are removed by the harness, untimed; drvault's drill removes its
   scratch directory itself, inside its wall time.

Every command runs twice in a row and the second (warm) run is reported: dropping the page
cache needs root, which is not assumed here, so every tool reads its repository from memory
(the first run's wall time is kept in the JSON as ``first_wall``). A ``sync`` runs between
commands, untimed, so no command pays for an earlier one's writeback.

Wall time is around the process: start-up and key derivation included. CPU (user + system)
and peak RSS are the process's own: ``os.wait4`` on drvault's child, GNU time (which waits
for exactly its child) for restic and borg (``bench.tools.run``). Ratios are drvault / peer:
below 1 is better for wall time, CPU and memory, above 1 for throughput. MiB = 2^20 bytes,
MB = 10^6 bytes. Machine facts (cores, CPU model, memory, kernel, the 1-minute load average
before and after the measurements: another job on the machine shows there) and the tools'
versions are printed with the tables.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.corpus import VOCAB, dir_size, rng_for
from bench.tools import Borg, Drvault, Restic, Run, Tool, ensure_peers, versions
from bench.tools import run as run_tool

SEED = 20241123
MIN_FILE, MAX_FILE = 16 << 10, 16 << 20
DIRS = 16
MIB = 1 << 20
REPEATS = 2  # each command runs this often; the last run is reported

# the rows the ratio tables compare drvault's against
RESTIC_CHECK, BORG_CHECK = "restic check --read-data", "borg check --verify-data"
RESTIC_RESTORE, BORG_EXTRACT = "restic restore --verify", "borg extract"
BORG_HASHED = "borg extract + harness SHA-256"


class BenchError(RuntimeError):
    """A command failed, or its result does not say what the benchmark needs."""


# ------------------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class Row:
    """One measured command (its last run)."""

    label: str
    tool: str
    wall: float  # seconds
    cpu: float  # seconds, user + system
    peak_rss: int  # bytes; 0 when not measured
    bytes: int  # what the throughput counts: repository bytes, or restored bytes
    first_wall: float  # the first (warm-up) run
    note: str = ""

    @property
    def mb_s(self) -> float:
        return self.bytes / self.wall / 1e6 if self.wall > 0 else float("nan")


def drvault(args: list[str], env: dict[str, str], work: Path) -> Run:
    """Run ``python -m drvault ARGS``: wall time, and its own CPU and peak RSS (``wait4``)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DRVAULT_")}
    full_env.update(env)
    out, err = work / "cmd.out", work / "cmd.err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "drvault", *args],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=full_env,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    if proc.returncode != 0:
        message = err.read_text(errors="replace").strip()
        raise BenchError(f"drvault {' '.join(args[:3])}: exit {proc.returncode}: {message}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, usage.ru_maxrss * 1024, out.read_text(errors="replace"))


def repeated(
    label: str,
    tool: str,
    nbytes: int,
    once: Callable[[], Run],
    *,
    check: Callable[[Run], None] | None = None,
    after: Callable[[], None] | None = None,
    note: str = "",
) -> Row:
    """Run ``once`` REPEATS times (``after`` and a sync between runs, untimed); the last run."""
    runs = []
    for _ in range(REPEATS):
        os.sync()
        r = once()
        if check is not None:
            check(r)
        runs.append(r)
        if after is not None:
            after()
    last = runs[-1]
    row = Row(label, tool, last.wall, last.cpu, last.peak_rss, nbytes, runs[0].wall, note)
    _progress(
        f"{label}: {row.wall:.2f} s ({row.mb_s:.0f} MB/s; first run {row.first_wall:.2f} s), "
        f"CPU {row.cpu:.2f} s, peak RSS {row.peak_rss / MIB:.0f} MiB"
    )
    return row


# ------------------------------------------------------------------------------ the data


@dataclass
class Data:
    files: int = 0
    bytes: int = 0
    random_bytes: int = 0
    text_bytes: int = 0
    digests: dict[str, str] = field(default_factory=dict)  # relative path -> sha256


def make_data(root: Path, size: int, seed: int) -> Data:
    """``size`` bytes of files under ``root`` (replaced): log-uniform sizes, half the bytes
    random, half text (each file takes the kind that is behind), the same for the same seed."""
    shutil.rmtree(root, ignore_errors=True)
    for d in range(DIRS):
        (root / f"d{d:02d}").mkdir(parents=True)
    sizes = rng_for(seed, 0)
    data = Data()
    i = 0
    while data.bytes < size:
        n = int(math.exp(sizes.uniform(math.log(MIN_FILE), math.log(MAX_FILE))))
        n = min(n, size - data.bytes)
        if data.random_bytes <= data.text_bytes:
            rel = f"d{i % DIRS:02d}/f{i:05d}.bin"
            content = rng_for(seed, 1, i).bytes(n)
            data.random_bytes += n
        else:
            rel = f"d{i % DIRS:02d}/f{i:05d}.txt"
            content = VOCAB.text(n, rng_for(seed, 2, i))
            data.text_bytes += n
        (root / rel).write_bytes(content)
        data.digests[rel] = hashlib.sha256(content).hexdigest()
        data.files += 1
        data.bytes += n
        i += 1
    return data


def hash_tree(root: Path, digests: dict[str, str]) -> list[str]:
    """SHA-256 every file under ``root`` (a thread a core) against ``digests``; what differs."""

    def digest(rel: str) -> str | None:
        h = hashlib.sha256()
        try:
            with open(root / rel, "rb") as f:
                while block := f.read(4 * MIB):
                    h.update(block)
        except OSError as exc:
            return f"{rel}: {exc.strerror}"
        return None if h.hexdigest() == digests[rel] else f"{rel}: content differs"

    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    problems = [f"{rel}: not expected" for rel in sorted(present - digests.keys())]
    problems += [f"{rel}: missing" for rel in sorted(digests.keys() - present)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        found = pool.map(digest, sorted(present & digests.keys()))
        problems += [p for p in found if p is not None]
    return problems


# ------------------------------------------------------------------------------- the run


@dataclass
class Result:
    size: int
    seed: int
    files: int
    data_bytes: int
    random_bytes: int
    text_bytes: int
    repository_bytes: dict[str, int]  # tool -> bytes of its repository after the backup
    backup_seconds: dict[str, float]  # tool -> wall of the (unmeasured) backup, for scale
    verify: list[Row]
    drill: list[Row]
    drill_record: dict[str, Any]  # drvault's own breakdown of its last drill
    machine: dict[str, Any]
    versions: dict[str, str]
    problems: list[str] = field(default_factory=list)


def _scrub_ok(expected: int) -> Callable[[Run], None]:
    def check(r: Run) -> None:
        doc = json.loads(r.stdout)["repositories"][0]
        if not doc["ok"] or doc["bytes"] < 0.99 * expected:  # all but config and locks
            raise BenchError(f"scrub: not OK, or read {doc['bytes']} of {expected} bytes: {doc}")

    return check


def _check_ok(r: Run) -> None:
    doc = json.loads(r.stdout)
    if not doc["ok"] or doc["stats"]["blobs_verified"] == 0:
        raise BenchError(f"check --read-data: {doc}")


def verify_rows(repos: dict[str, Tool], sizes: dict[str, int], work: Path) -> list[Row]:
    """Each way of proving each repository whole, measured."""
    ours, url = repos["drvault"], str(repos["drvault"].repo)
    whole = _scrub_ok(sizes["drvault"])
    rows = [
        repeated(label, "drvault", sizes["drvault"], partial(drvault, args, env, work), check=ok)
        for label, args, env, ok in (
            # keyless: no password anywhere in its environment
            ("drvault scrub --keyless", ["--json", "scrub", url, "--keyless"], {}, whole),
            ("drvault scrub (keyed)", ["--json", "scrub", url], ours.env, whole),
            (
                "drvault check --read-data",
                ["--json", "check", url, "--read-data"],
                ours.env,
                _check_ok,
            ),
        )
    ]
    if isinstance(restic := repos.get("restic"), Restic):
        once = partial(run_tool, restic._cmd("check", "--read-data"), restic.env)
        rows.append(repeated(RESTIC_CHECK, "restic", sizes["restic"], once))
    if isinstance(borg := repos.get("borg"), Borg):
        for label, flag, note in (
            (BORG_CHECK, "--verify-data", ""),
            ("borg check --repository-only", "--repository-only", "extra: CRC32s, no key"),
        ):
            once = partial(run_tool, ["borg", "check", flag, str(borg.repo)], borg.env)
            rows.append(repeated(label, "borg", sizes["borg"], once, note=note))
    return rows


def drill_rows(
    repos: dict[str, Tool], data: Data, work: Path
) -> tuple[list[Row], dict[str, Any], list[str]]:
    """The drills: drvault's, restic's restore --verify, borg's extract (+ the harness's hash)."""
    ours = repos["drvault"]
    records: list[dict[str, Any]] = []
    problems: list[str] = []

    def passed(r: Run) -> None:
        record = json.loads(r.stdout)
        if not record["passed"] or (record["verified_files"], record["bytes"]) != (
            data.files,
            data.bytes,
        ):
            raise BenchError(f"drill did not pass over {data.files} files: {record}")
        records.append(record)

    def restored(target: Path) -> Callable[[Run], None]:
        def check(_r: Run) -> None:
            if (got := dir_size(target)) != data.bytes:
                problems.append(f"{target.name}: restored {got} bytes of {data.bytes}")

        return check

    args = ["--json", "drill", str(ours.repo), "--target", str(work / "drill")]
    once = partial(drvault, args, ours.env, work)
    note = "verifies: every chunk re-read and hashed to its ID"
    rows = [repeated("drvault drill", "drvault", data.bytes, once, check=passed, note=note)]
    if isinstance(restic := repos.get("restic"), Restic):
        target = work / "restore-restic"
        cmd = restic._cmd("restore", "latest", "--target", str(target), "--verify")
        rows.append(
            repeated(
                RESTIC_RESTORE,
                "restic",
                data.bytes,
                partial(run_tool, cmd, restic.env),
                check=restored(target),
                after=partial(shutil.rmtree, target, ignore_errors=True),
                note="verifies: every blob re-read and hashed",
            )
        )
    if isinstance(borg := repos.get("borg"), Borg):
        target = work / "restore-borg"
        hashed: list[Run] = []

        def hash_it() -> None:
            os.sync()
            cpu, start = _own_cpu(), time.perf_counter()
            found = hash_tree(target / str(work / "data").lstrip("/"), data.digests)
            hashed.append(Run(time.perf_counter() - start, _own_cpu() - cpu, 0))
            problems.extend(f"borg extract: {p}" for p in found[:5])
            shutil.rmtree(target, ignore_errors=True)

        extract = repeated(
            BORG_EXTRACT,
            "borg",
            data.bytes,
            partial(borg.restore, target),
            check=restored(target),
            after=hash_it,
            note="borg has no verify option: restore only",
        )
        h, n = hashed[-1], data.bytes
        note = "in-process, a thread a core; RSS not measured"
        rows += [
            extract,
            Row(
                "harness SHA-256 of borg's tree",
                "harness",
                h.wall,
                h.cpu,
                0,
                n,
                hashed[0].wall,
                note,
            ),
            Row(
                BORG_HASHED,
                "borg",
                extract.wall + h.wall,
                extract.cpu + h.cpu,
                extract.peak_rss,
                n,
                extract.first_wall + hashed[0].wall,
                "the two rows above; RSS is extract's",
            ),
        ]
    return rows, records[-1], problems


def _versions() -> dict[str, str]:
    try:
        return versions()
    except (OSError, IndexError):  # restic or borg missing (--no-peers)
        from drvault.version import __version__

        return {"drvault": __version__, "python": sys.version.split()[0]}


def _own_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def run(work: Path, size: int, seed: int, with_peers: bool = True) -> Result:
    from bench.harness import machine

    if with_peers:
        ensure_peers()
    t = time.perf_counter()
    data = make_data(work / "data", size, seed)
    _progress(
        f"data: {data.files} files, {data.bytes / MIB:.0f} MiB "
        f"({data.random_bytes / MIB:.0f} MiB random, {data.text_bytes / MIB:.0f} MiB text; "
        f"{time.perf_counter() - t:.1f} s)"
    )
    classes: list[type[Tool]] = [Drvault, Restic, Borg] if with_peers else [Drvault]
    repos: dict[str, Tool] = {}
    sizes: dict[str, int] = {}
    backup_seconds: dict[str, float] = {}
    for cls in classes:
        where, cache = work / cls.name, work / f"{cls.name}-cache"
        for path in (where, cache):
            shutil.rmtree(path, ignore_errors=True)
        tool = cls(where, cache=cache)
        tool.init()
        backup_seconds[cls.name] = tool.backup(work / "data").wall
        repos[cls.name] = tool
        sizes[cls.name] = dir_size(where)
        _progress(
            f"{cls.name}: backed up in {backup_seconds[cls.name]:.1f} s, "
            f"repository {sizes[cls.name] / MIB:.1f} MiB"
        )
    load = os.getloadavg()[0]
    verify = verify_rows(repos, sizes, work)
    drill, record, problems = drill_rows(repos, data, work)
    return Result(
        size=size,
        seed=seed,
        files=data.files,
        data_bytes=data.bytes,
        random_bytes=data.random_bytes,
        text_bytes=data.text_bytes,
        repository_bytes=sizes,
        backup_seconds=backup_seconds,
        verify=verify,
        drill=drill,
        drill_record=record,
        machine={**machine(), "load_before": load, "load_after": os.getloadavg()[0]},
        versions=_versions(),
        problems=problems,
    )


# ------------------------------------------------------------------------------- the table


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs and not math.isnan(theirs) else float("nan")


METRICS = (  # (key, header, how the ratio reads)
    ("wall", "wall", "lower"),
    ("mb_s", "MB/s", "higher"),
    ("cpu", "CPU", "lower"),
    ("peak_rss", "RSS", "lower"),
)


def ratios(rows: list[Row], peers: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    """drvault row -> peer ("restic" or "borg") -> metric -> drvault / peer, against the peer
    row named in ``peers`` (peer -> row label), where that row was measured."""
    by_label = {r.label: r for r in rows}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        if r.tool != "drvault":
            continue
        out[r.label] = {}
        for peer, label in peers.items():
            if label in by_label:
                p = by_label[label]
                out[r.label][peer] = {
                    k: ratio(float(getattr(r, k)), float(getattr(p, k))) for k, _, _ in METRICS
                }
    return out


def _section(title: str, rows: list[Row], peers: dict[str, str]) -> list[str]:
    width = max(len(r.label) for r in rows) + 2
    lines = [
        title,
        f"  {'':<{width}}{'MiB':>9}{'wall s':>9}{'MB/s':>9}{'CPU s':>9}{'RSS MiB':>9}  1st wall",
    ]
    for r in rows:
        rss = f"{r.peak_rss / MIB:>9.0f}" if r.peak_rss else f"{'-':>9}"
        lines.append(
            f"  {r.label:<{width}}{r.bytes / MIB:>9.1f}{r.wall:>9.2f}{r.mb_s:>9.1f}"
            f"{r.cpu:>9.2f}{rss}  {r.first_wall:>8.2f}" + (f"  ({r.note})" if r.note else "")
        )
    table = ratios(rows, peers)
    against = max((len(peers[p]) for v in table.values() for p in v), default=0) + 2
    if not against > 2:
        return lines
    lines += [
        "",
        "  drvault / peer (wall, CPU, RSS: below 1 is better for drvault; MB/s: above 1 is)",
        f"  {'':<{width}}{'against':<{against}}" + "".join(f"{h:>8}" for _, h, _ in METRICS),
    ]
    for label, by_peer in table.items():
        for n, (peer, values) in enumerate(by_peer.items()):
            cells = "".join(f"{values[k]:>7.2f}x" for k, _, _ in METRICS)
            lines.append(f"  {label if n == 0 else '':<{width}}{peers[peer]:<{against}}{cells}")
    return lines


def table(r: Result) -> str:
    m, v = r.machine, r.versions
    head = [
        f"verify and drill: {r.data_bytes / MIB:.0f} MiB of data, {r.files} files "
        f"({r.random_bytes / MIB:.0f} MiB random, {r.text_bytes / MIB:.0f} MiB text), "
        f"seed {r.seed}; warm page cache, second of {REPEATS} runs",
        f"  machine: {m['cpus']} CPUs {m['cpu_model']}, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}; load average {m['load_before']:.2f} before the measurements, "
        f"{m['load_after']:.2f} after",
        f"  versions: drvault {v['drvault']} (Python {v['python']}), "
        f"{v.get('restic', 'no restic')}, {v.get('borg', 'no borg')}",
        "  repositories: "
        + ", ".join(f"{t} {n / MIB:.1f} MiB" for t, n in r.repository_bytes.items()),
        "",
    ]
    verify = _section(
        "prove the repository whole (MiB: the tool's repository)",
        r.verify,
        {"restic": RESTIC_CHECK, "borg": BORG_CHECK},
    )
    drill = _section(
        "restore drill of the latest snapshot (MiB: restored)",
        r.drill,
        {"restic": RESTIC_RESTORE, "borg": BORG_EXTRACT, "borg+hash": BORG_HASHED},
    )
    d = r.drill_record
    drill.append(
        f"  drvault drill's own times: restore {d['restore_seconds']:.2f} s "
        f"({d['throughput_bps'] / 1e6:.1f} MB/s), verify {d['verify_seconds']:.2f} s, "
        f"total {d['total_seconds']:.2f} s; the rest of its wall time is start-up, key "
        "derivation, index load, scratch removal and storing the record"
    )
    tail = ["", "PROBLEMS: " + "; ".join(r.problems)] if r.problems else []
    return "\n".join([*head, *verify, "", *drill, *tail])


def to_json(r: Result) -> dict[str, Any]:
    doc = asdict(r)
    for key in ("verify", "drill"):
        for row, out in zip(getattr(r, key), doc[key], strict=True):
            out["mb_s"] = row.mb_s
    doc["ratios"] = {
        "verify": ratios(r.verify, {"restic": RESTIC_CHECK, "borg": BORG_CHECK}),
        "drill": ratios(
            r.drill, {"restic": RESTIC_RESTORE, "borg": BORG_EXTRACT, "borg+hash": BORG_HASHED}
        ),
    }
    return doc


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.verify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--size", default="1G", help="bytes of data backed up (1G)")
    ap.add_argument("--workdir", type=Path, default=None, help="kept afterwards when given")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--json", action="store_true", help="also print the result as JSON")
    ap.add_argument("--no-peers", action="store_true", help="drvault only (no restic, borg)")
    args = ap.parse_args(argv)
    from drvault.sizes import parse_size

    size = parse_size(args.size)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="drvault-bench-verify-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = run(work, size, args.seed, not args.no_peers)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(result))
    if args.json:
        print(json.dumps(to_json(result), indent=1))
    return 1 if result.problems else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
