"""Backup and restore throughput to each backend on loopback: local disk, S3 (a moto server)
and SFTP (a private OpenSSH sshd), drvault side by side with restic on the same data.

    python -m bench.backends [--scale 0.25] [--backends local,s3,sftp,sftp-30ms]
                             [--tools drvault,restic]

The data is the harness's bank SQL dump (``--scale 1.0`` is 537 MB); each tool backs it up
into a fresh repository on each backend and restores it, and the restored tree is compared
byte for byte with the source. The page cache is warm for the source (the subject is the
transport, not the disk). MB/s = 1e6 bytes of source per second of wall time, process start
included. ``sftp-30ms`` reaches the same sshd through a userspace proxy adding 15 ms each way
(a 30 ms round trip, as to a remote park; the proxy itself caps throughput at a few tens of
MB/s), which shows whether requests are kept in flight or serialised. moto keeps everything in
one Python process, so S3 figures measure moto as much as the client: compare tools, not
backends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.corpus import dir_size, ensure_dataset, stage_day1
from bench.harness import DEFAULT_SEED, PageCache, step, verify_tree
from bench.tools import Drvault, Restic, Tool, ensure_peers, versions
from tests.servers.proxy import FaultProxy
from tests.servers.s3_server import MotoServer
from tests.servers.sshd_server import SshdServer

BACKENDS = ("local", "s3", "sftp", "sftp-30ms")
RTT = 0.030  # the round trip added by the proxy of "sftp-30ms"
TOOLS = ("drvault", "restic")


class Remote:
    """Where one backend's repositories go, and what each tool needs to reach them."""

    def __init__(
        self,
        kind: str,
        work: Path,
        moto: MotoServer | None,
        sshd: SshdServer | None,
        proxy: FaultProxy | None = None,
    ) -> None:
        self.kind, self.work, self.moto, self.sshd, self.proxy = kind, work, moto, sshd, proxy
        self.port = sshd.port if sshd else 0
        self.known_hosts = sshd.known_hosts if sshd else Path()
        if proxy is not None and sshd is not None:
            self.port = proxy.port
            self.known_hosts = work / f"known_hosts_{proxy.port}"
            self.known_hosts.write_text(f"[127.0.0.1]:{proxy.port} {sshd.host_key_line()}\n")

    def repo(self, tool: str) -> str:
        if self.kind == "local":
            return str(self.work / "local" / tool)
        if self.kind == "s3":
            assert self.moto is not None
            return f"s3:{self.moto.endpoint}/{self.moto.new_bucket()}/{tool}"
        assert self.sshd is not None
        path = self.sshd.root / f"bench-{tool}"
        shutil.rmtree(path, ignore_errors=True)
        if tool == "restic":
            return f"sftp:{self.sshd.user}@{self.sshd.host}:{path}"
        return f"sftp://{self.sshd.user}@{self.sshd.host}:{self.port}{path}"

    def env(self) -> dict[str, str]:
        if self.kind == "s3":
            return {
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        if self.kind.startswith("sftp"):
            assert self.sshd is not None
            return self.sshd.env(self.known_hosts)
        return {}

    def restic_options(self) -> list[str]:
        if not self.kind.startswith("sftp"):
            return []
        assert self.sshd is not None
        ssh = (
            f"ssh -p {self.port} -i {self.sshd.key_path} -o BatchMode=yes "
            f"-o UserKnownHostsFile={self.known_hosts} "
            f"{self.sshd.user}@{self.sshd.host} -s sftp"
        )
        return ["-o", f"sftp.command={ssh}"]


def measure(tool: Tool, data: Path, target: Path, cache: PageCache) -> dict[str, Any]:
    size = dir_size(data)
    tool.init()
    cache.prepare(data)
    backup = step(tool.backup(data), size)
    restore = step(tool.restore(target), size)
    verify_tree(data, target / data.relative_to(data.anchor))
    shutil.rmtree(target)
    return {"backup": backup.doc(), "restore": restore.doc()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__)
    ap.add_argument("--scale", type=float, default=0.25, help="of the harness's 537 MB dump")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON document here")
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    tools = [t for t in args.tools.split(",") if t]
    if set(backends) - set(BACKENDS) or set(tools) - set(TOOLS):
        raise SystemExit(f"backends: {', '.join(BACKENDS)}; tools: {', '.join(TOOLS)}")
    ensure_peers()
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="drvault-bench-backends-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus" / "dump"
    manifest, _ = ensure_dataset("dump", corpus, args.scale, DEFAULT_SEED)
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    stage_day1(corpus, data)
    cache = PageCache(want_cold=False)
    doc: dict[str, Any] = {"versions": versions(), "bytes": dir_size(data), "results": {}}
    print(f"data: {doc['bytes'] / 1e6:.1f} MB SQL dump; {cache.note}", flush=True)
    moto = MotoServer(work / "moto") if "s3" in backends else None
    sshd = SshdServer(work / "sshd") if any(b.startswith("sftp") for b in backends) else None
    proxy = None
    if sshd is not None:
        sshd.start()
        if "sftp-30ms" in backends:
            proxy = FaultProxy(sshd.port, delay=RTT / 2).start()
    try:
        for kind in backends:
            remote = Remote(kind, work, moto, sshd, proxy if kind == "sftp-30ms" else None)
            for name in tools:
                repo = remote.repo(name)
                tool: Tool = (
                    Drvault(repo)
                    if name == "drvault"
                    else Restic(repo, work / "restic-cache" / kind, remote.restic_options())
                )
                tool.env.update(remote.env())
                result = measure(tool, data, work / "restore", cache)
                doc["results"].setdefault(kind, {})[name] = result
                b, r = result["backup"], result["restore"]
                print(
                    f"[{kind:5} {name:7}] backup {b['mb_s']:7.1f} MB/s ({b['wall_s']:.2f} s), "
                    f"restore {r['mb_s']:7.1f} MB/s ({r['wall_s']:.2f} s), verified",
                    flush=True,
                )
    finally:
        if proxy is not None:
            proxy.stop()
        if sshd is not None:
            sshd.stop()
        if moto is not None:
            moto.stop()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    head = ["backend", "drvault backup MB/s", "restic", "ratio"]
    head += ["drvault restore MB/s", "restic", "ratio"]
    print("\n| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
    for kind, by_tool in doc["results"].items():
        d, r = by_tool.get("drvault"), by_tool.get("restic")
        if not (d and r):
            continue
        db, rb = d["backup"]["mb_s"], r["backup"]["mb_s"]
        dr, rr = d["restore"]["mb_s"], r["restore"]["mb_s"]
        cells = [kind, f"{db:.1f}", f"{rb:.1f}", f"{db / rb:.2f}x"]
        cells += [f"{dr:.1f}", f"{rr:.1f}", f"{dr / rr:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    if args.out:
        args.out.write_text(json.dumps({**doc, "corpus": manifest}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
