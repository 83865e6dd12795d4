"""Incremental backup of many unchanged files: is drvault bound by ``stat``?

Creates ``--files`` small files (1,000 a directory), backs them up twice with drvault and
restic, and reports the second (nothing changed) run: wall time, microseconds per file, and
the same for a bare walk that only lists and ``lstat``s every entry in Python (the floor any
Python tool pays) and for GNU ``find -printf`` (the floor in C).

    python -m bench.metadata [--files 1000000] [--workdir DIR] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.tools import Drvault, Restic, Tool, ensure_peers, versions

PER_DIR = 1000


def make_tree(root: Path, files: int) -> None:
    marker = root / f".complete-{files}"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    for d in range((files + PER_DIR - 1) // PER_DIR):
        sub = root / f"d{d:05d}"
        sub.mkdir(parents=True)
        for f in range(min(PER_DIR, files - d * PER_DIR)):
            (sub / f"f{f:04d}.txt").write_bytes(b"row %d\n" % (d * PER_DIR + f))
    marker.touch()


def stat_walk(root: Path) -> float:
    start = time.perf_counter()
    stack = [os.fsencode(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                del st
    return time.perf_counter() - start


def find_walk(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["find", str(root), "-printf", "%s %T@ %C@ %i\\n"], stdout=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--workdir", default="/tmp/drvault-bench-metadata")
    ap.add_argument("--keep", action="store_true", help="keep the file tree for the next run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ensure_peers()
    work = Path(args.workdir)
    data = work / "data"
    start = time.perf_counter()
    make_tree(data, args.files)
    made = time.perf_counter() - start
    results: dict[str, dict[str, float]] = {}
    stat_walk(data)  # warm the inode and dentry caches for everyone alike
    results["python scandir+lstat"] = {"second_s": stat_walk(data)}
    results["find -printf"] = {"second_s": find_walk(data)}
    tools: list[Tool] = [Drvault(work / "repo-drvault"), Restic(work / "repo-restic")]
    for tool in tools:
        shutil.rmtree(tool.repo, ignore_errors=True)
        tool.init()
        first = tool.backup(data)
        second = tool.backup(data)
        results[tool.name] = {
            "first_s": first.wall,
            "second_s": second.wall,
            "second_cpu_s": second.cpu,
            "second_peak_rss": second.peak_rss,
        }
        shutil.rmtree(tool.repo, ignore_errors=True)
    for r in results.values():
        r["us_per_file"] = 1e6 * r["second_s"] / args.files
    doc = {"versions": versions(), "files": args.files, "tree_made_s": made, "results": results}
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    print(f"{args.files:,} unchanged files, second backup (tree made in {made:.0f} s)")
    print(f"{'':<22} {'wall s':>8} {'us/file':>8} {'CPU s':>7} {'peak RSS MiB':>13}")
    for name, r in results.items():
        cpu = f"{r['second_cpu_s']:.1f}" if "second_cpu_s" in r else "-"
        rss = f"{r['second_peak_rss'] / 2**20:.0f}" if "second_peak_rss" in r else "-"
        print(f"{name:<22} {r['second_s']:>8.2f} {r['us_per_file']:>8.1f} {cpu:>7} {rss:>13}")


if __name__ == "__main__":
    main()
