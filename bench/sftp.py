"""SFTP throughput: drvault's SftpBackend against OpenSSH's ``sftp`` client, same run.

Usage: ``python -m bench.sftp [--size-mib 256] [--repeats 3] [--workdir DIR] [--json]``

Starts a private sshd on 127.0.0.1 (the test suite's :class:`SshdServer`), writes one file of
random bytes and reads it once so the source sits in the page cache, then, repeats interleaved,
times the whole path a user waits for:

- put: drvault opens a backend (connect, host key, login) and ``put``s the file's bytes, held
  in memory as the packer holds a pack (temporary name, fsync@openssh.com, rename); OpenSSH
  runs ``sftp -b`` with a ``put`` of the file (process start and login included);
- get: drvault opens a backend and ``get``s the object into memory; OpenSSH runs ``sftp -b``
  with a ``get`` into a local file (page cache).

OpenSSH runs twice: with its default cipher (chacha20-poly1305 on this build) and with
``-c aes128-gcm@openssh.com`` (what drvault negotiates); its put also runs with ``-f``
(fsync, as drvault does). Before each timed run the file systems are synced (untimed), so
no run pays for flushing the previous run's writes. MB/s = 1e6 bytes/s, median of the repeats;
the ratio is drvault / OpenSSH (above 1: drvault is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from drvault.transport.options import SftpOptions
from drvault.transport.sftp import SftpBackend
from drvault.transport.url import parse_sftp
from tests.servers.sshd_server import SshdServer

_GCM = "aes128-gcm@openssh.com"


def make_source(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for start in range(0, size, 1 << 20):
            f.write(os.urandom(min(1 << 20, size - start)))
    path.read_bytes()  # into the page cache


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Runner:
    def __init__(self, server: SshdServer, work: Path, size: int) -> None:
        self.server = server
        self.work = work
        self.size = size
        self.source = work / "source.bin"
        self.remote = server.root / "bench"
        self.remote.mkdir(exist_ok=True)
        self.options = SftpOptions(known_hosts=str(server.known_hosts), key=str(server.key_path))
        self.data = b""
        self.got = b""

    def backend(self) -> SftpBackend:
        return SftpBackend(parse_sftp(self.server.url("bench")), self.options)

    def drvault_put(self) -> None:
        backend = self.backend()
        try:
            backend.put("drvault.bin", self.data)
        finally:
            backend.close()

    def drvault_get(self) -> None:
        self.got = b""
        backend = self.backend()
        try:
            self.got = backend.get("drvault.bin")
        finally:
            backend.close()

    def openssh(self, command: str, *flags: str) -> None:
        batch = self.work / "batch"
        batch.write_text(command + "\n")
        s = self.server
        options = ["-o", f"UserKnownHostsFile={s.known_hosts}", "-o", "BatchMode=yes"]
        target = ["-P", str(s.port), f"{s.user}@{s.host}"]
        subprocess.run(
            ["sftp", "-q", *flags, "-b", str(batch), "-i", str(s.key_path), *options, *target],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )

    def openssh_put(self, *flags: str) -> Callable[[], None]:
        return lambda: self.openssh(f"put {self.source} {self.remote}/openssh.bin", *flags)

    def openssh_get(self, *flags: str) -> Callable[[], None]:
        target = self.work / "openssh-get.bin"

        def run() -> None:
            target.unlink(missing_ok=True)
            self.openssh(f"get {self.remote}/openssh.bin {target}", *flags)

        return run


def measure(size_mib: int, repeats: int, workdir: Path) -> dict[str, float]:
    size = size_mib << 20
    with SshdServer(workdir / "sshd") as server:
        runner = Runner(server, workdir, size)
        make_source(runner.source, size)
        runner.data = runner.source.read_bytes()
        cases: dict[str, Callable[[], None]] = {
            "put drvault": runner.drvault_put,
            "put openssh": runner.openssh_put(),
            "put openssh gcm": runner.openssh_put("-c", _GCM),
            "put openssh gcm -f": runner.openssh_put("-c", _GCM, "-f"),
            "get drvault": runner.drvault_get,
            "get openssh": runner.openssh_get(),
            "get openssh gcm": runner.openssh_get("-c", _GCM),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(repeats):
            for name, fn in cases.items():
                os.sync()  # no case pays for flushing the one before (ext4 fsync flushes all)
                times[name].append(timed(fn))
        if runner.got != runner.data:
            raise SystemExit("drvault get returned different bytes")
    return {name: size / 1e6 / statistics.median(t) for name, t in times.items()}


def report(mbps: dict[str, float], size_mib: int, repeats: int) -> str:
    lines = [
        f"SFTP on loopback, {size_mib} MiB, median of {repeats} (MB/s = 1e6 bytes/s)",
        f"{'':4} {'drvault':>8} {'openssh':>8} {'ratio':>6} {'ossh gcm':>9} {'ratio':>6}"
        f" {'ossh gcm -f':>12} {'ratio':>6}",
    ]
    for op in ("put", "get"):
        ours = mbps[f"{op} drvault"]
        row = f"{op:4} {ours:8.1f}"
        for other in (f"{op} openssh", f"{op} openssh gcm", f"{op} openssh gcm -f"):
            if other in mbps:
                width = 12 if other.endswith("-f") else 9 if "gcm" in other else 8
                row += f" {mbps[other]:{width}.1f} {ours / mbps[other]:6.2f}"
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sftp", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument("--json", action="store_true", help="print the MB/s as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="drvault-bench-sftp-", dir=args.workdir) as tmp:
        mbps = measure(args.size_mib, args.repeats, Path(tmp))
    if args.json:
        print(json.dumps({k: round(v, 1) for k, v in mbps.items()}, indent=2))
    else:
        print(report(mbps, args.size_mib, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
