"""Chunker throughput: drvault's FastCDC 2020 against the pyfastcdc package, same run.

Usage: ``python -m bench.chunker [--size MIB] [--seed N] [--repeats N] [--json]``

Chunks one in-memory buffer of deterministic pseudo-random data through each library's
public API, the whole path a caller uses:

- drvault: ``Chunker.chunk_buffer(data)``, one memoryview per chunk;
- drvault, per-chunk ``cut()``: a Python loop calling ``Chunker.cut`` once per chunk
  (shows what the many-cuts call ``cuts`` saves);
- pyfastcdc: ``FastCDC.cut_buf(data)`` of its Cython build, one Chunk per chunk.

All use the canonical gear table and min = avg/4, max = avg*4, level 1; the cut points
are checked to be identical before timing. Repeats are interleaved, the best is kept.
GB/s = 1e9 bytes/s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from drvault.chunker import IMPLEMENTATION, Chunker, ChunkerParams

AVERAGES = (1 << 20, 64 << 10)
_PIECE = 1 << 20


@dataclass(frozen=True, slots=True)
class Row:
    avg_size: int
    chunks: int
    drvault_gbps: float
    drvault_cut_loop_gbps: float
    pyfastcdc_gbps: float

    @property
    def ratio(self) -> float:
        return self.drvault_gbps / self.pyfastcdc_gbps


def make_data(size: int, seed: int) -> bytearray:
    rng = random.Random(seed)
    data = bytearray(size)
    for start in range(0, size, _PIECE):
        piece = min(_PIECE, size - start)
        data[start : start + piece] = rng.randbytes(piece)
    return data


def drvault_chunks(chunker: Chunker, data: bytearray) -> int:
    count = 0
    for _ in chunker.chunk_buffer(data):
        count += 1
    return count


def drvault_cut_loop(chunker: Chunker, data: bytearray) -> int:
    view = memoryview(data)
    cut, size, pos, count = chunker.cut, len(view), 0, 0
    while pos < size:
        pos += cut(view[pos:])
        count += 1
    return count


def pyfastcdc_chunks(fastcdc: object, data: bytearray) -> int:
    count = 0
    for _ in fastcdc.cut_buf(data):  # type: ignore[attr-defined]
        count += 1
    return count


def ends(sizes: Iterable[int]) -> list[int]:
    total, out = 0, []
    for size in sizes:
        total += size
        out.append(total)
    return out


def measure(avg: int, data: bytearray, repeats: int) -> Row:
    from pyfastcdc.cy import FastCDC  # the Cython build, pyfastcdc's fastest

    params = ChunkerParams.for_average(avg)
    chunker = Chunker.canonical(params)
    reference = FastCDC(
        avg, min_size=params.min_size, max_size=params.max_size, normalized_chunking=1
    )
    offsets = chunker.cut_points(data)
    if offsets != ends(chunk.length for chunk in reference.cut_buf(data)):
        raise SystemExit(f"cut points differ from pyfastcdc at avg {avg}")
    runs: dict[str, Callable[[], int]] = {
        "drvault": lambda: drvault_chunks(chunker, data),
        "cut_loop": lambda: drvault_cut_loop(chunker, data),
        "pyfastcdc": lambda: pyfastcdc_chunks(reference, data),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            count = run()
            best[name] = min(best[name], time.perf_counter() - start)
            if count != len(offsets):
                raise SystemExit(f"{name} made {count} chunks, expected {len(offsets)}")
    gbps = {name: len(data) / seconds / 1e9 for name, seconds in best.items()}
    return Row(avg, len(offsets), gbps["drvault"], gbps["cut_loop"], gbps["pyfastcdc"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chunker", description=__doc__)
    parser.add_argument("--size", type=int, default=256, help="data size in MiB (256)")
    parser.add_argument("--seed", type=int, default=0, help="random data seed (0)")
    parser.add_argument("--repeats", type=int, default=5, help="best of N runs (5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if IMPLEMENTATION != "native":
        print(f"warning: drvault chunker implementation is {IMPLEMENTATION}", file=sys.stderr)
    data = make_data(args.size << 20, args.seed)
    rows = [measure(avg, data, args.repeats) for avg in AVERAGES]
    if args.json:
        report = {
            "size_bytes": len(data),
            "seed": args.seed,
            "repeats": args.repeats,
            "implementation": IMPLEMENTATION,
            "results": [asdict(row) | {"ratio": row.ratio} for row in rows],
        }
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.size} MiB random data, seed {args.seed}, best of {args.repeats}, level 1")
    header = ("avg size", "chunks", "drvault GB/s", "pyfastcdc GB/s", "ratio", "cut() loop GB/s")
    print("  ".join(f"{h:>15}" for h in header))
    for row in rows:
        avg = (
            f"{row.avg_size >> 20} MiB" if row.avg_size >= 1 << 20 else f"{row.avg_size >> 10} KiB"
        )
        cells = (
            avg,
            str(row.chunks),
            f"{row.drvault_gbps:.2f}",
            f"{row.pyfastcdc_gbps:.2f}",
            f"{row.ratio:.2f}",
            f"{row.drvault_cut_loop_gbps:.2f}",
        )
        print("  ".join(f"{c:>15}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
