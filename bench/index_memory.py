"""Index memory and load time at many blobs (synthetic), as issue 3 asks.

Builds index-file bodies for N random blobs in packs of 500, loads them the way a repository
opens (bulk ``add_records``), and reports bytes per blob held by the index table, peak RSS
growth, load (merge) time and lookup latency.

    python -m bench.index_memory [--blobs 10000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np

from drvault.repository.index import PackRef
from drvault.repository.memindex import Index
from drvault.repository.pack import ENTRY

# One pack-table record (drvault.repository.pack, ENTRY) as a numpy row, to build many at once.
RECORD = np.dtype(
    [
        ("id", np.uint8, (32,)),
        ("type", np.uint8),
        ("compression", np.uint8),
        ("reserved", "<u2"),
        ("offset", "<u4"),
        ("length", "<u4"),
        ("raw", "<u4"),
    ]
)
assert RECORD.itemsize == ENTRY.size

PER_PACK = 500


def synthetic_records(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, RECORD)
    rec["id"] = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    rec["offset"] = rng.integers(24, 1 << 25, n, dtype=np.uint32)
    rec["length"] = rng.integers(16, 1 << 18, n, dtype=np.uint32)
    rec["raw"] = rec["length"] - 16
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--blobs", type=int, default=10_000_000)
    ap.add_argument("--lookups", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    records = synthetic_records(args.blobs)
    body = records.tobytes()  # what the index files' bodies hold
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    index = Index()
    start = time.perf_counter()
    for p, first in enumerate(range(0, args.blobs, PER_PACK)):
        ref = PackRef(p.to_bytes(32, "big"), "data", os.urandom(16))
        count = min(PER_PACK, args.blobs - first)
        index.add_records(ref, body, first * ENTRY.size, count)
    del body
    count = len(index)  # forces the merge
    load = time.perf_counter() - start
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ids = [
        records["id"][i].tobytes() for i in range(0, args.blobs, max(1, args.blobs // args.lookups))
    ]
    start = time.perf_counter()
    hits = sum(1 for i in ids if i in index)
    lookup = (time.perf_counter() - start) / len(ids)
    misses = [os.urandom(32) for _ in range(len(ids))]
    start = time.perf_counter()
    false = sum(1 for i in misses if i in index)
    miss = (time.perf_counter() - start) / len(misses)
    doc = {
        "blobs": count,
        "index_bytes": index.nbytes(),
        "bytes_per_blob": index.nbytes() / count,
        "peak_rss_growth_per_blob": (rss1 - rss0) / count,
        "load_seconds": load,
        "lookup_hit_us": lookup * 1e6,
        "lookup_miss_us": miss * 1e6,
        "hits": hits,
        "false_hits": false,
    }
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(
            f"{count:,} blobs: {doc['bytes_per_blob']:.1f} bytes/blob in the index table, "
            f"peak RSS growth {doc['peak_rss_growth_per_blob']:.1f} bytes/blob (merge buffers), "
            f"load {load:.2f} s, lookup {doc['lookup_hit_us']:.1f} us hit / "
            f"{doc['lookup_miss_us']:.1f} us miss"
        )


if __name__ == "__main__":
    main()
