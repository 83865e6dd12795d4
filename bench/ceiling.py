"""The backup pipeline's ceiling on this machine, as issue 3 defines it.

    python -m bench.ceiling FILE [--chunk-avg 32K] [--level 1] [--cipher aes-256-gcm]
        [--id-hash blake3] [--repeats 3] [--json]

The ceiling is the single-core throughput of the per-byte work every backup does (content-defined
chunking with each chunk copied out of the read buffer, the keyed blob ID, zstd, the AEAD
seal) on the same data, times the number of cores. It is measured here in one thread on the
file held in memory, with the primitives and parameters of a drvault repository (FastCDC at
``--chunk-avg``, the keyed ``--id-hash``, zstd at ``--level``, the ``--cipher``), so no disk,
no pack bookkeeping, no Python beyond one loop step per chunk. Each stage is also timed alone on the
same chunks, to show which dominates.

A backup at the ceiling would keep every core busy with nothing but that work; the harness
(``bench.harness``) reports drvault's first backup of the dump as a share of it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import zstandard

from drvault.chunker import Chunker, ChunkerParams
from drvault.repository.crypto import cipher_spec, make_cipher, make_keyed_hash
from drvault.sizes import parse_size

_KEY = bytes(range(32))  # the ID hash's key; the cipher takes its first key_size bytes
_NONCE = bytes(12)


@dataclass(frozen=True)
class Ceiling:
    """MB/s (1e6 bytes a second of input) on one core, per stage and all together."""

    bytes: int
    chunks: int
    cores: int
    chunk_avg: int
    level: int
    cipher: str
    id_hash: str
    chunk_copy_mb_s: float
    blob_id_mb_s: float
    zstd_mb_s: float
    aead_mb_s: float
    one_core_mb_s: float  # all four stages in one pass

    @property
    def ceiling_mb_s(self) -> float:
        return self.one_core_mb_s * self.cores

    def doc(self) -> dict[str, float | int]:
        return {**asdict(self), "ceiling_mb_s": round(self.ceiling_mb_s, 1)}


def _best(repeats: int, work: Callable[[], object]) -> float:
    """The shortest of ``repeats`` timed calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def measure(
    data: bytes,
    chunk_avg: int,
    level: int,
    cipher: str = "aes-256-gcm",
    id_hash: str = "blake3",
    repeats: int = 3,
) -> Ceiling:
    """Time each stage and the whole per-chunk pass over ``data`` in this thread."""
    chunker = Chunker.canonical(ChunkerParams.for_average(chunk_avg))
    blob_id = make_keyed_hash(id_hash, _KEY)
    seal = make_cipher(cipher, _KEY[: cipher_spec(cipher).key_size]).seal
    compress = zstandard.ZstdCompressor(level=level).compress
    view = memoryview(data)

    def chunk_copy() -> list[bytes]:
        return [bytes(c) for c in chunker.chunk_buffer(view)]

    chunks = chunk_copy()
    packed = [compress(c) for c in chunks]

    def ids() -> None:
        for c in chunks:
            blob_id(c)

    def zstd() -> None:
        for c in chunks:
            compress(c)

    def aead() -> None:
        for p in packed:
            seal(_NONCE, p, b"")

    def whole() -> None:
        for c in chunker.chunk_buffer(view):
            chunk = bytes(c)
            blob_id(chunk)
            seal(_NONCE, compress(chunk), b"")

    n = len(data)

    def rate(seconds: float) -> float:
        return n / 1e6 / seconds

    return Ceiling(
        bytes=n,
        chunks=len(chunks),
        cores=os.cpu_count() or 1,
        chunk_avg=chunk_avg,
        level=level,
        cipher=cipher,
        id_hash=id_hash,
        chunk_copy_mb_s=round(rate(_best(repeats, chunk_copy)), 1),
        blob_id_mb_s=round(rate(_best(repeats, ids)), 1),
        zstd_mb_s=round(rate(_best(repeats, zstd)), 1),
        aead_mb_s=round(rate(_best(repeats, aead)), 1),
        one_core_mb_s=round(rate(_best(repeats, whole)), 1),
    )


def describe(c: Ceiling) -> str:
    return (
        f"pipeline ceiling {c.ceiling_mb_s:.0f} MB/s = {c.one_core_mb_s:.0f} MB/s on one core "
        f"x {c.cores} cores (chunk + copy {c.chunk_copy_mb_s:.0f}, keyed {c.id_hash} "
        f"{c.blob_id_mb_s:.0f}, zstd {c.level} {c.zstd_mb_s:.0f}, {c.cipher} {c.aead_mb_s:.0f} "
        f"MB/s alone; {c.chunks:,} chunks of {c.chunk_avg >> 10} KiB average)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--chunk-avg", default="32K")
    ap.add_argument("--level", type=int, default=1)
    ap.add_argument("--cipher", default="aes-256-gcm")
    ap.add_argument("--id-hash", default="blake3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    data = args.file.read_bytes()
    avg = parse_size(args.chunk_avg)
    result = measure(data, avg, args.level, args.cipher, args.id_hash, args.repeats)
    print(json.dumps(result.doc(), indent=1) if args.json else describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
