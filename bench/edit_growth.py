"""How much a backup grows after a day's edits of one large text file, drvault vs restic vs borg.

The edit (issue 2): 1% of a 512 MiB text file rewritten in place as 50 edits, and 0.5% inserted
at 50 random positions. Prints a table and, with --json, one JSON document.

    python -m bench.edit_growth [--size-mib 512] [--workdir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from bench.corpus import dir_size, edit_text_file, write_text_file
from bench.tools import Borg, Drvault, Restic, Tool, ensure_peers, versions


def measure(tool: Tool, data: Path, day1: Path, day2: Path) -> dict[str, float]:
    tool.init()
    shutil.copyfile(day1, data / "file.txt")
    first = tool.backup(data)
    size1 = dir_size(tool.repo)
    shutil.copyfile(day2, data / "file.txt")
    second = tool.backup(data)
    size2 = dir_size(tool.repo)
    return {
        "repo_after_day1": size1,
        "growth_day2": size2 - size1,
        "backup1_s": first.wall,
        "backup2_s": second.wall,
        "backup1_peak_rss": first.peak_rss,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ensure_peers()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="drvault-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    day1, day2 = work / "day1.txt", work / "day2.txt"
    write_text_file(day1, args.size_mib << 20, seed=1)
    edit = edit_text_file(day1, day2, seed=2)
    results: dict[str, dict[str, float]] = {}
    for cls in (Drvault, Restic, Borg):
        repo = work / f"repo-{cls.name}"
        data = work / f"data-{cls.name}"
        shutil.rmtree(repo, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        results[cls.name] = measure(cls(repo), data, day1, day2)
        shutil.rmtree(repo, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    size = edit["size"]
    doc = {"versions": versions(), "file_size": size, "edit": edit, "results": results}
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    print(
        f"{args.size_mib} MiB text file; day 2: {edit['changed_bytes']} B changed in 50 edits, "
        f"{edit['inserted_bytes']} B inserted at 50 places"
    )
    print(
        f"{'tool':<8} {'day-1 repo':>12} {'day-2 growth':>13} "
        f"{'growth/file':>12} {'vs drvault':>11}"
    )
    base = results["drvault"]["growth_day2"]
    for name, r in results.items():
        g = r["growth_day2"]
        print(
            f"{name:<8} {r['repo_after_day1'] / 2**20:>10.1f}Mi {g / 2**20:>11.1f}Mi "
            f"{100 * g / size:>11.2f}% {g / base if base else float('inf'):>10.2f}x"
        )


if __name__ == "__main__":
    main()
