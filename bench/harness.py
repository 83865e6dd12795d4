"""drvault against restic and borg on the issue-3 corpus: first backup, next-day backup, restore.

    python -m bench.harness [--scale 1.0] [--datasets dump,docs,image]
        [--tools drvault,restic,borg] [--workdir /tmp/drvault-bench] [--keep]
        [--chunk-avg 64K] [--seed N] [--cache cold|warm] [--json] [--out FILE]

For each data set (see ``bench.corpus``) and each tool, back to back on the same machine:

1. ``init`` a fresh repository (drvault with its normal scrypt KDF: every drvault command
   derives the key once, and that cost is part of every measured step, as for the peers);
2. copy the day-1 tree to ``<workdir>/runs/<set>/data`` and back it up (day 1);
3. turn that same directory into day 2 in place (unchanged files keep inode and times, so
   each tool's "unchanged file" shortcut applies) and back it up again (day 2);
4. restore the latest snapshot into an empty directory and compare it byte for byte with the
   source; a difference stops the run.

After the dump's table, the pipeline's ceiling (``bench.ceiling``: single-core chunking, keyed
hashing, zstd and the AEAD on the day-1 dump in memory, times the cores) is measured with the
chunk size, zstd level, cipher and ID hash of drvault's repository, and drvault's first backup
of the dump is reported as a share of it (issue 3 asks for at least 60%).

Per step: wall time, CPU time (user + system) and peak RSS of the tool's process (GNU time,
which waits for exactly that process), and repository size (apparent bytes of all its files)
after day 1 and day 2. Throughput is the data set's apparent size (holes included) divided by
wall time, in MB/s (1e6 bytes). Before each backup and restore the dirty pages are flushed
and, as root, the page cache is dropped, so every tool reads from the disk ("cold"); where
that is not permitted (or with ``--cache warm``) the step's input is read once beforehand so
every tool starts warm. The time of a ``sync`` after each step is recorded (``sync_s``) but
not counted in wall time.

Tables print one row per metric: each tool's value, then drvault/restic and drvault/borg
(below 1 is better for times, sizes and memory; above 1 for throughput). ``--json`` prints
one JSON document on stdout (the tables then go to stderr); ``--out`` saves it to a file.
Without ``--keep`` the corpus and repositories are deleted at the end; with it both stay and
a later ``--keep`` run reuses the corpus when seed and scale match its manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bench import ceiling
from bench.corpus import DATASETS, apply_day2, dir_size, ensure_dataset, stage_day1
from bench.tools import TOOLS, Drvault, Run, Tool, ToolError, ensure_peers, versions

DEFAULT_WORKDIR = Path("/tmp/drvault-bench")
DEFAULT_SEED = 20240601
_MIB = 1 << 20


class VerifyError(RuntimeError):
    """A restored tree differs from its source."""


# ------------------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class Step:
    """One measured command: ``bytes`` is the data it backed up or restored (0 for init)."""

    wall: float
    cpu: float
    peak_rss: int
    sync: float = 0.0
    bytes: int = 0

    @property
    def mb_s(self) -> float:
        return self.bytes / 1e6 / self.wall if self.wall > 0 else 0.0

    def doc(self) -> dict[str, float]:
        return {
            "wall_s": round(self.wall, 3),
            "cpu_s": round(self.cpu, 3),
            "peak_rss": self.peak_rss,
            "sync_s": round(self.sync, 3),
            "bytes": self.bytes,
            "mb_s": round(self.mb_s, 2),
        }


class PageCache:
    """Puts every tool's step in the same page-cache state: dropped (cold) or pre-read (warm)."""

    def __init__(self, want_cold: bool) -> None:
        self.cold = want_cold and self._drop()
        if self.cold:
            self.note = (
                "cold: page cache dropped (sync; echo 3 > /proc/sys/vm/drop_caches) "
                "before each backup and restore"
            )
        else:
            why = (
                "--cache warm" if not want_cold else "dropping the page cache is not permitted here"
            )
            self.note = f"warm ({why}): each step's input read once before it"

    @staticmethod
    def _drop() -> bool:
        os.sync()
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        except OSError:
            return False
        return True

    def prepare(self, inputs: Path) -> None:
        os.sync()
        if self.cold:
            self._drop()
            return
        for root, _dirs, files in os.walk(inputs):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    while f.read(8 * _MIB):
                        pass


def step(run: Run, nbytes: int = 0) -> Step:
    start = time.perf_counter()
    os.sync()
    return Step(run.wall, run.cpu, run.peak_rss, time.perf_counter() - start, nbytes)


def verify_tree(source: Path, restored: Path) -> None:
    """Raise VerifyError unless ``restored`` holds the same directories and files, byte for byte."""

    def listing(top: Path) -> tuple[set[str], dict[str, int]]:
        dirs, files = set(), {}
        for root, dnames, fnames in os.walk(top):
            rel = os.path.relpath(root, top)
            dirs.update(os.path.normpath(os.path.join(rel, d)) for d in dnames)
            for f in fnames:
                files[os.path.normpath(os.path.join(rel, f))] = os.lstat(
                    os.path.join(root, f)
                ).st_size
        return dirs, files

    if not restored.is_dir():
        raise VerifyError(f"restore produced no {restored}")
    (sd, sf), (rd, rf) = listing(source), listing(restored)
    if sd != rd or sf.keys() != rf.keys():
        diff = sorted((sd ^ rd) | (sf.keys() ^ rf.keys()))
        raise VerifyError(f"{len(diff)} paths differ between {source} and {restored}: {diff[:5]}")
    for rel, size in sf.items():
        if rf[rel] != size:
            raise VerifyError(f"{rel}: restored {rf[rel]} bytes, source has {size}")
        with open(source / rel, "rb") as a, open(restored / rel, "rb") as b:
            at = 0
            while True:
                x, y = a.read(8 * _MIB), b.read(8 * _MIB)
                if x != y:
                    raise VerifyError(f"{rel}: restored bytes differ from the source near {at}")
                if not x:
                    break
                at += len(x)


def allocated(path: Path) -> int:
    return sum(
        os.lstat(os.path.join(root, f)).st_blocks * 512
        for root, _dirs, files in os.walk(path)
        for f in files
    )


def bench_tool(
    tool: Tool, corpus: Path, run_dir: Path, cache: PageCache, say: Callable[[str], None]
) -> dict[str, Any]:
    """init, back up day 1, turn the data into day 2, back up, restore and verify."""
    data, target = run_dir / "data", run_dir / tool.name / "restore"
    shutil.rmtree(data, ignore_errors=True)
    stage_day1(corpus, data)
    size1 = dir_size(data)
    init = step(tool.init())
    say(f"init {init.wall:.2f} s")
    cache.prepare(data)
    b1 = step(tool.backup(data), size1)
    repo1 = dir_size(tool.repo)
    say(f"day-1 backup {b1.wall:.2f} s, {b1.mb_s:.1f} MB/s, repository {repo1 / _MIB:.1f} MiB")
    changes = apply_day2(corpus, data)
    size2 = dir_size(data)
    cache.prepare(data)
    b2 = step(tool.backup(data), size2)
    repo2 = dir_size(tool.repo)
    say(f"day-2 backup {b2.wall:.2f} s, repository +{(repo2 - repo1) / _MIB:.1f} MiB")
    cache.prepare(tool.repo)
    rs = step(tool.restore(target), size2)
    restored = target / data.relative_to(data.anchor)
    verify_tree(data, restored)
    say(f"restore {rs.wall:.2f} s, {rs.mb_s:.1f} MB/s, verified")
    result = {
        "init": init.doc(),
        "backup1": b1.doc(),
        "backup2": b2.doc(),
        "restore": rs.doc(),
        "source_day1": size1,
        "source_day2": size2,
        "day2_changes": changes,
        "repo_day1": repo1,
        "repo_day2": repo2,
        "restored_allocated": allocated(restored),
        "verified": True,
    }
    shutil.rmtree(target)
    shutil.rmtree(data)
    return result


# ------------------------------------------------------------------------------- tables

# (key, label, format); lower is better except for the MB/s rows
METRICS: tuple[tuple[str, str, str], ...] = (
    ("init_s", "init wall s", "{:.2f}"),
    ("backup1_s", "day-1 backup wall s", "{:.2f}"),
    ("backup1_mb_s", "day-1 backup MB/s", "{:.1f}"),
    ("backup1_cpu_s", "day-1 backup CPU s", "{:.2f}"),
    ("backup1_rss_mib", "day-1 backup peak RSS MiB", "{:.0f}"),
    ("repo_day1_mib", "repository after day 1 MiB", "{:.1f}"),
    ("backup2_s", "day-2 backup wall s", "{:.2f}"),
    ("backup2_mb_s", "day-2 backup MB/s", "{:.1f}"),
    ("backup2_cpu_s", "day-2 backup CPU s", "{:.2f}"),
    ("backup2_rss_mib", "day-2 backup peak RSS MiB", "{:.0f}"),
    ("repo_day2_mib", "repository after day 2 MiB", "{:.1f}"),
    ("growth_day2_mib", "day-2 growth MiB", "{:.1f}"),
    ("restore_s", "restore wall s", "{:.2f}"),
    ("restore_mb_s", "restore MB/s", "{:.1f}"),
    ("restore_cpu_s", "restore CPU s", "{:.2f}"),
    ("restore_rss_mib", "restore peak RSS MiB", "{:.0f}"),
)


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """The table's values from one tool's result document (see bench_tool)."""
    out: dict[str, float] = {"init_s": result["init"]["wall_s"]}
    for name in ("backup1", "backup2", "restore"):
        s = result[name]
        out[f"{name}_s"] = s["wall_s"]
        out[f"{name}_mb_s"] = s["bytes"] / 1e6 / s["wall_s"] if s["wall_s"] > 0 else 0.0
        out[f"{name}_cpu_s"] = s["cpu_s"]
        out[f"{name}_rss_mib"] = s["peak_rss"] / _MIB
    out["repo_day1_mib"] = result["repo_day1"] / _MIB
    out["repo_day2_mib"] = result["repo_day2"] / _MIB
    out["growth_day2_mib"] = (result["repo_day2"] - result["repo_day1"]) / _MIB
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratios(
    values: dict[str, dict[str, float]], peers: Iterable[str] = ("restic", "borg")
) -> dict[str, dict[str, float | None]]:
    """{"drvault/<peer>": {metric: drvault's value / the peer's}} for the peers measured."""
    mine = values.get("drvault", {})
    return {
        f"drvault/{peer}": {
            key: ratio(mine.get(key), values[peer].get(key)) for key, _, _ in METRICS
        }
        for peer in peers
        if peer in values and mine
    }


def format_table(values: dict[str, dict[str, float]]) -> str:
    """One row per metric: drvault, restic, borg, drvault/restic, drvault/borg ("-": not run)."""
    tools = ("drvault", "restic", "borg")
    rat = ratios(values)
    head = ["metric", *tools, "drvault/restic", "drvault/borg"]
    rows = [head]
    for key, label, fmt in METRICS:
        cells = [label]
        for t in tools:
            v = values.get(t, {}).get(key)
            cells.append("-" if v is None else fmt.format(v))
        for peer in ("restic", "borg"):
            r = rat.get(f"drvault/{peer}", {}).get(key)
            cells.append("-" if r is None else f"{r:.2f}x")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def describe(name: str, manifest: dict[str, Any]) -> str:
    s = manifest["stats"]
    if name == "dump":
        return (
            f"bank.sql {s['bytes_day1'] / 1e6:.1f} MB, {s['rows']:,} rows -> day 2 "
            f"{s['bytes_day2'] / 1e6:.1f} MB: {s['changed']:,} rows changed in place (new "
            f"values, length varies), {s['inserted']:,} inserted (both in runs of "
            f"{s['edit']['run_rows']} rows at random places), {s['appended']:,} appended"
        )
    if name == "docs":
        return (
            f"{s['files_day1']:,} documents, {s['bytes_day1'] / 1e6:.1f} MB in {s['dirs']} dirs "
            f"({s['incompressible_files']:,} incompressible) -> day 2: {s['modified']} modified, "
            f"{s['added']} added, {s['deleted']} deleted"
        )
    return (
        f"disk.img {s['bytes_day1'] / 1e6:.1f} MB, {100 * s['hole_blocks'] / s['blocks']:.0f}% "
        f"holes -> day 2: {s['rewritten_blocks']:,} of {s['blocks']:,} 4 KiB blocks rewritten"
    )


# --------------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem / (1 << 30), 1),
        "kernel": platform.release(),
    }


# drvault's settings per data set, as an operator sets them per backup set (``chunk_avg``,
# ``compression_level`` in the configuration; configs/drvault.example.yaml has one set of
# each kind):
# - a database dump edited in place dedups far better with 32 KiB chunks (day-2 growth 35 MiB
#   against 54 at 64 KiB on the 512 MiB dump), and zstd level 1 stores it within 1% of level
#   3's size at nearly twice the speed;
# - a document archive of whole files rarely edited gets 1 MiB chunks: most documents stay one
#   blob, so fewer records and index entries and a better ratio on the larger ones;
# - a VM image gets zstd level 1: on its compressible blocks it stores 0.586 of the input
#   against 0.591 at level 3, at 1.5 times the speed (64 KiB blocks of the image corpus).
PER_SET: dict[str, tuple[str | None, int | None]] = {
    "dump": ("32K", 1),
    "docs": ("1M", None),
    "image": (None, 1),
}


def make_tool(
    name: str, repo: Path, cache: Path, chunk_avg: str | None, level: int | None = None
) -> Tool:
    if name == "drvault":
        return Drvault(repo, chunk_avg=chunk_avg, cache=cache, compression_level=level)
    return TOOLS[name](repo, cache=cache)


def share_of_ceiling(
    corpus: Path, config: dict[str, Any], mb_s: float, show: Callable[[str], None]
) -> dict[str, Any]:
    """Measure the pipeline ceiling (``bench.ceiling``) on the day-1 dump with the chunk size,
    zstd level, cipher and ID hash of the repository drvault was measured with (``config``, as
    ``init`` printed it), and report drvault's first backup (``mb_s``) as a share of it."""
    chunker = config.get("chunker", {})
    avg = chunker.get("avg_size") if isinstance(chunker, dict) else None
    level, cipher, id_hash = (config.get(k) for k in ("compression_level", "cipher", "id_hash"))
    if not (
        isinstance(avg, int)
        and isinstance(level, int)
        and isinstance(cipher, str)
        and isinstance(id_hash, str)
    ):
        show("pipeline ceiling: not measured (drvault's repository settings are unknown)")
        return {}
    data = (corpus / "day1" / "bank.sql").read_bytes()
    result = ceiling.measure(data, avg, level, cipher, id_hash)
    del data
    share = mb_s / result.ceiling_mb_s
    show(ceiling.describe(result))
    show(f"drvault's first backup of the dump: {mb_s:.0f} MB/s, {share:.0%} of the ceiling")
    return {**result.doc(), "drvault_mb_s": round(mb_s, 1), "drvault_share": round(share, 3)}


def byte_compile() -> None:
    """Compile drvault's modules once, as installing it does: with PYTHONDONTWRITEBYTECODE
    set every command would otherwise compile them again (about 0.1 s a command)."""
    import compileall

    import drvault

    compileall.compile_dir(Path(drvault.__file__).parent, quiet=1)


def parse_list(text: str, known: Iterable[str], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in known]
    if bad or not items:
        raise SystemExit(f"unknown {what} {bad or text!r}; known: {', '.join(known)}")
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.harness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--tools", default="drvault,restic,borg")
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = the issue's sizes")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) corpus and repositories")
    ap.add_argument("--chunk-avg", default=None, help="drvault init --chunk-avg for every data set")
    ap.add_argument(
        "--drvault-defaults",
        action="store_true",
        help="drvault's init defaults for every data set (not the per-set settings)",
    )
    ap.add_argument("--cache", choices=("cold", "warm"), default="cold")
    ap.add_argument("--json", action="store_true", help="JSON on stdout, tables on stderr")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON document here")
    args = ap.parse_args(argv)
    datasets = parse_list(args.datasets, DATASETS, "data set")
    tools = parse_list(args.tools, TOOLS, "tool")
    if args.scale <= 0:
        raise SystemExit("--scale must be positive")
    human: TextIO = sys.stderr if args.json else sys.stdout

    def show(text: str = "") -> None:
        print(text, file=human, flush=True)

    ensure_peers()
    byte_compile()
    work = args.workdir.resolve()
    cache = PageCache(args.cache == "cold")
    doc: dict[str, Any] = {
        "harness": {
            "scale": args.scale,
            "seed": args.seed,
            "datasets": datasets,
            "tools": tools,
            "chunk_avg": args.chunk_avg,
            "drvault_per_set": {} if args.drvault_defaults else PER_SET,
            "workdir": str(work),
            "page_cache": cache.note,
        },
        "machine": machine(),
        "versions": versions(),
        "settings": {},
        "datasets": {},
    }
    m, v = doc["machine"], doc["versions"]
    show(f"machine: {m['cpus']} CPUs {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}")
    show(f"versions: drvault {v['drvault']} (Python {v['python']}), {v['restic']}, {v['borg']}")
    show(f"page cache: {cache.note}")
    failed = completed = False
    try:
        for name in datasets:
            corpus = work / "corpus" / name
            manifest, generated = ensure_dataset(name, corpus, args.scale, args.seed)
            how = (
                f"generated in {manifest['generate_s']:.1f} s"
                if generated
                else f"reused (generated earlier in {manifest['generate_s']:.1f} s)"
            )
            show(f"\n== {name}: {describe(name, manifest)}; corpus {how}")
            run_dir = work / "runs" / name
            results: dict[str, Any] = {}
            drvault_config: dict[str, Any] | None = None
            for tool_name in tools:
                tool_dir = run_dir / tool_name
                shutil.rmtree(tool_dir, ignore_errors=True)
                tool_dir.mkdir(parents=True)
                avg, level = (
                    (args.chunk_avg, None)
                    if args.chunk_avg or args.drvault_defaults
                    else PER_SET.get(name, (None, None))
                )
                tool = make_tool(tool_name, tool_dir / "repo", tool_dir / "cache", avg, level)

                def say(text: str, prefix: str = f"[{name} {tool_name}]") -> None:
                    print(f"{prefix} {text}", file=sys.stderr, flush=True)

                results[tool_name] = bench_tool(tool, corpus, run_dir, cache, say)
                doc["settings"][f"{tool_name} ({name})"] = tool.settings()
                if isinstance(tool, Drvault):
                    drvault_config = tool.config
                if not args.keep:
                    shutil.rmtree(tool_dir)
            values = {t: metrics_of(r) for t, r in results.items()}
            doc["datasets"][name] = {
                "corpus": manifest,
                "corpus_generated": generated,
                "results": results,
                "metrics": values,
                "ratios": ratios(values),
            }
            show(format_table(values))
            if name == "dump" and drvault_config is not None:
                doc["datasets"][name]["ceiling"] = share_of_ceiling(
                    corpus, drvault_config, values["drvault"]["backup1_mb_s"], show
                )
        completed = True
    except (ToolError, VerifyError) as e:
        failed = True
        show(f"\nFAILED: {e}\n(left {work / 'runs'} for inspection)")
    finally:
        if completed and not args.keep:
            shutil.rmtree(work / "corpus", ignore_errors=True)
            shutil.rmtree(work / "runs", ignore_errors=True)
    show("\nsettings:")
    for t, text in doc["settings"].items():
        show(f"  {t}: {text}")
    show(
        "ratios are drvault / peer: below 1 is better for times, sizes and RSS, above 1 for MB/s;"
        " MB/s = 1e6 bytes of source (apparent size) per second of wall time"
    )
    text = json.dumps(doc, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
