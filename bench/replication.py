"""Replication throughput: a local production repository copied to S3 and SFTP, on loopback and
over a WAN-like link, drvault side by side with restic's ``restic copy``.

    python -m bench.replication [--size 256M] [--links loopback,wan] [--backends s3,sftp]
                                [--parallel auto,2,4] [--repeats 1] [--probe 64M] [--seed N]
                                [--no-restic] [--workdir DIR] [--json]

1. Source: ``--size`` of deterministic incompressible files (the subject is the link, so the
   bytes sent equal the data backed up) backed up with drvault's library API into a local
   repository (16 MiB packs, the default), and with ``restic backup`` (its defaults) into a
   local restic repository; both untimed.
2. Each (link, backend, parallel) case copies the whole source into a fresh, empty target with
   ``drvault.replicate.replicate`` through the CLI's backend stack (retry, concurrency cap),
   then checks that the target lists exactly the source's objects, sizes included.
   Interleaved with drvault's runs, each (link, backend) also times ``restic copy`` from the
   local restic repository into a fresh restic repository on the same server, made untimed by
   ``restic init --copy-chunker-params``; the copy must then hold the source's snapshot (same
   root tree) and pass ``restic check`` (``bench.restic_copy``). restic's S3 target is a new
   bucket on the same moto endpoint; its SFTP target is reached with ``-o sftp.command=`` and
   OpenSSH's ssh, with the bench's client key and known_hosts, through the same port (the
   same delay proxy on the WAN) as drvault's.
   - ``loopback``: a moto server / a private sshd on 127.0.0.1.
   - ``wan``: the server runs inside a network namespace (``bench.netns``) behind a veth with
     a 100 Mbit/s ``tbf`` on both ends, and is reached through a delay proxy on the host
     adding 15 ms each way (a 30 ms round trip; this kernel has no netem). The proxy runs in
     its own process, so it never competes with the client for the GIL.
3. The WAN link's yardstick: a plain TCP upload of ``--probe`` bytes to a sink inside the
   namespace, directly over the veth and through a delay proxy like the servers'. The table
   gives drvault's WAN rate (bytes sent) as a share of the raw 12.5 MB/s and of that measured
   TCP capacity; the progress lines give the seconds beyond what that capacity needs for the
   bytes: the run's fixed cost in round trips (it dominates small runs; compare ``--size 16M``
   with the default).

The delay proxy ends TCP on both sides, so the kernel's TCP never sees the 30 ms: the link
exercises the client's request/response round trips, not TCP window limits (at 100 Mbit/s and
30 ms the bandwidth-delay product is 375 kB, far below the 4 MiB SSH window and socket buffers).

MB/s = 1e6 bytes per second of wall time. In the table both tools' MB/s count the same
payload, the source files' size, so the ratio drvault/restic is restic's time over drvault's;
each cell also gives what the tool put into the target per second (drvault: the bytes
replicate() reports sent, over the wall time of the call, planning and listings included;
restic: the target repository's size after the copy, over the wall time of the ``restic copy``
process, start-up and both repositories' key derivations included). The file systems are
synced (untimed) before every timed run. moto keeps everything in one Python process, so S3
loopback figures measure moto as much as the client. Borg has no repository-to-repository
copy, so it has no column (the output says so).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import restic_copy
from bench.corpus import rng_for
from bench.netns import Netns, NetnsError, Shape, TcpSink
from bench.restic_copy import ResticCase, ResticError, ResticSource
from bench.tools import ToolError
from drvault.backup import BackupRequest, backup
from drvault.repository.keys import KdfParams
from drvault.repository.repository import Repository
from drvault.repository.suite import Suite
from drvault.transport import LocalBackend, open_backend
from drvault.transport.base import Backend
from drvault.transport.options import SftpOptions, TransportOptions
from drvault.transport.stack import stack
from tests.servers.s3_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from tests.servers.sshd_server import SSHD, SshdError, SshdServer

LINKS = ("loopback", "wan")
BACKENDS = ("s3", "sftp")
ONE_WAY = 0.015  # seconds the proxy adds each way: a 30 ms round trip
SEED = 20240601
FILE_SIZE = 8 << 20
PASSWORD = b"bench-replication"
REPO_ROOT = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """A case failed: replicate() reported an error or the copy differs from the source."""


# ------------------------------------------------------------------------------ the source


@dataclass(frozen=True)
class Source:
    path: Path
    data_bytes: int
    repo_bytes: int
    objects: int
    packs: int


def make_source(work: Path, size: int, seed: int, keep_data: bool = False) -> Source:
    """Back up ``size`` bytes of seeded random files into a new local repository; the files
    stay in ``work``/data when ``keep_data`` (for another tool to back them up)."""
    data, repo_dir = work / "data", work / "source-repo"
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(repo_dir, ignore_errors=True)
    data.mkdir(parents=True)
    for i, start in enumerate(range(0, size, FILE_SIZE)):
        n = min(FILE_SIZE, size - start)
        (data / f"file-{i:05d}.bin").write_bytes(rng_for(seed, i).bytes(n))
    repo = Repository.init(
        LocalBackend(str(repo_dir)), PASSWORD, suite=Suite.choose("intl"), kdf=KdfParams(n=1024)
    )
    backup(repo, BackupRequest(paths=(os.fsencode(data),), hostname="bench"))
    if not keep_data:
        shutil.rmtree(data)
    listing = list(LocalBackend(str(repo_dir)).list(""))
    packs = sum(1 for o in listing if o.name.startswith(("data/", "tree/")))
    return Source(repo_dir, size, sum(o.size for o in listing), len(listing), packs)


# ----------------------------------------------------------------------- servers and links


class DelayProxy:
    """``tests/servers/proxy.py``'s FaultProxy in its own process: 127.0.0.1:``port`` forwards
    to ``host``:``target_port`` with ``delay`` seconds added each way."""

    _SCRIPT = (
        "import sys\n"
        "from tests.servers.proxy import FaultProxy\n"
        "p = FaultProxy(int(sys.argv[2]), target_host=sys.argv[1], delay=float(sys.argv[3]))\n"
        "p.start()\n"
        "print(p.port, flush=True)\n"
        "sys.stdin.read()\n"
        "p.stop()\n"
    )

    def __init__(self, host: str, target_port: int, delay: float) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", self._SCRIPT, host, str(target_port), str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise BenchError("the delay proxy did not start")
        self.port = int(line)

    def stop(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class NamespaceSshd(SshdServer):
    """The test suite's private sshd, run inside ``ns`` and listening on its address."""

    def __init__(self, workdir: Path, ns: Netns) -> None:
        super().__init__(workdir)
        self.ns = ns
        self.host = ns.ns_ip

    def _launch(self, port: int) -> bool:
        with open(self.log, "ab") as log:
            argv = [SSHD, "-D", "-e", "-f", str(self.config), "-p", str(port)]
            proc = self.ns.popen(
                [*argv, "-o", f"ListenAddress={self.host}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        self._proc = proc
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        return False


class NamespaceMoto:
    """``python -m moto.server`` inside ``ns``, on its address and a port it picks itself."""

    def __init__(self, workdir: Path, ns: Netns) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "moto.log"
        with open(self.log, "wb") as log:
            self._proc = ns.popen(
                [sys.executable, "-m", "moto.server", "-H", ns.ns_ip, "-p", "0"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        running = re.compile(rf"Running on http://{re.escape(ns.ns_ip)}:(\d+)")
        deadline = time.monotonic() + 30
        while not (found := running.search(self.log.read_text(errors="replace"))):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"moto in {ns.name} did not start: {self.log.read_text()[-500:]}")
            time.sleep(0.05)
        self.port = int(found.group(1))
        self.endpoint = f"http://{ns.ns_ip}:{self.port}"


def _s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


@dataclass(frozen=True)
class Capacity:
    """Plain TCP uploads over the shaped link: directly and through a delay proxy."""

    raw: float  # the tbf rate, bytes/s
    direct: float
    proxied: float


class Site:
    """Where the targets of one link live: URL factories for S3 and SFTP repositories."""

    def __init__(self, link: str, work: Path, stack_: ExitStack, backends: list[str]) -> None:
        self.link = link
        self.work = work / link
        self.options = TransportOptions()
        self.capacity: Capacity | None = None
        self._n = 0
        self._s3_endpoint = ""
        self._s3_client: Any = None
        self._sftp: tuple[SshdServer, str, int] | None = None
        self._known_hosts = Path()
        self._sink: TcpSink | None = None
        self._sink_proxy: DelayProxy | None = None
        if link == "loopback":
            self._loopback(stack_, backends)
        else:
            self._wan(stack_, backends)

    def _loopback(self, stack_: ExitStack, backends: list[str]) -> None:
        if "s3" in backends:
            moto = MotoServer(self.work / "moto")
            stack_.callback(moto.stop)
            self._s3_endpoint = moto.endpoint
            self._s3_client = moto.client()
        if "sftp" in backends:
            sshd = SshdServer(self.work / "sshd")
            sshd.start()
            stack_.callback(sshd.stop)
            self._sftp_via(sshd, sshd.host, sshd.port)

    def _wan(self, stack_: ExitStack, backends: list[str]) -> None:
        shape = Shape()
        ns = stack_.enter_context(Netns(shape))

        def proxy(port: int) -> DelayProxy:
            p = DelayProxy(ns.ns_ip, port, ONE_WAY)
            stack_.callback(p.stop)
            return p

        sink = TcpSink(ns)
        self.capacity = Capacity(shape.bytes_per_second, 0.0, 0.0)
        self._sink, self._sink_proxy = sink, proxy(sink.port)
        if "s3" in backends:
            moto = NamespaceMoto(self.work / "moto", ns)
            self._s3_endpoint = f"http://127.0.0.1:{proxy(moto.port).port}"
            self._s3_client = _s3_client(moto.endpoint)
        if "sftp" in backends:
            sshd = NamespaceSshd(self.work / "sshd", ns)
            sshd.start()
            stack_.callback(sshd.stop)
            self._sftp_via(sshd, "127.0.0.1", proxy(sshd.port).port)

    def measure_capacity(self, nbytes: int) -> None:
        if self.capacity is None or self._sink is None or self._sink_proxy is None:
            return
        direct = nbytes / self._sink.upload(nbytes)
        proxied = nbytes / self._sink.upload(nbytes, "127.0.0.1", self._sink_proxy.port)
        self.capacity = Capacity(self.capacity.raw, direct, proxied)

    def _sftp_via(self, sshd: SshdServer, host: str, port: int) -> None:
        known = self.work / f"known_hosts_{port}"
        known.write_text(f"[{host}]:{port} {sshd.host_key_line()}\n")
        sftp = SftpOptions(known_hosts=str(known), key=str(sshd.key_path))
        self.options = TransportOptions(sftp=sftp)
        self._sftp = (sshd, host, port)
        self._known_hosts = known

    def new_target(self, backend: str) -> str:
        """The URL of a new, empty repository location on ``backend``."""
        self._n += 1
        if backend == "s3":
            bucket = f"bench-{self._n:03d}-{os.getpid()}"
            self._s3_client.create_bucket(Bucket=bucket)
            return f"s3:{self._s3_endpoint}/{bucket}/repo"
        assert self._sftp is not None
        sshd, host, port = self._sftp
        return f"sftp://{sshd.user}@{host}:{port}{sshd.root}/repl-{self._n:03d}"

    def new_restic_target(self, backend: str) -> tuple[str, list[str]]:
        """A new, empty restic repository location on ``backend``, and restic's options to
        reach it (the same endpoint, or the same port, key and known_hosts as drvault)."""
        if backend == "s3":
            return self.new_target("s3"), []
        assert self._sftp is not None
        self._n += 1
        sshd, host, port = self._sftp
        path = sshd.root / f"restic-{self._n:03d}"
        options = restic_copy.sftp_options(sshd.user, host, port, sshd.key_path, self._known_hosts)
        return f"sftp:{sshd.user}@{host}:{path}", options

    def target_bytes(self, url: str) -> int:
        """The size of everything stored under a target (drvault's or restic's)."""
        if url.startswith("s3:"):
            bucket = url.split("/")[3]
            pages = self._s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            return sum(o["Size"] for page in pages for o in page.get("Contents", []))
        assert self._sftp is not None
        root = self._sftp[0].root / url.rsplit("/", 1)[1]
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())

    def drop_target(self, url: str) -> None:
        """Free the target's space (moto holds objects in memory or open temp files)."""
        if url.startswith("s3:"):
            bucket = url.split("/")[3]
            pages = self._s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for page in pages:
                for obj in page.get("Contents", []):
                    self._s3_client.delete_object(Bucket=bucket, Key=obj["Key"])
            self._s3_client.delete_bucket(Bucket=bucket)
        elif self._sftp is not None:
            shutil.rmtree(self._sftp[0].root / url.rsplit("/", 1)[1], ignore_errors=True)


# ------------------------------------------------------------------------------- one case


@dataclass(frozen=True)
class Case:
    link: str
    backend: str
    parallel: int | None  # None: replicate()'s default
    bytes_sent: int
    seconds: float
    packs_sent: int
    objects: int

    @property
    def mb_s(self) -> float:
        return self.bytes_sent / 1e6 / self.seconds


def _listing(backend: Backend) -> dict[str, int]:
    return {o.name: o.size for o in backend.list("") if not o.name.startswith("locks/")}


def run_case(site: Site, source: Source, backend: str, parallel: int | None) -> Case:
    from drvault.replicate import replicate

    url = site.new_target(backend)
    src = stack(LocalBackend(str(source.path)), site.options)
    dst = stack(open_backend(url, site.options), site.options)
    try:
        os.sync()  # no run pays for flushing the previous run's writes
        start = time.perf_counter()
        results = replicate(src, {"dr": dst}, parallel=parallel)
        seconds = time.perf_counter() - start
        result = results["dr"]
        if result.error is not None:
            raise BenchError(f"{site.link} {backend}: replicate failed: {result.error}")
        want, got = _listing(src), _listing(dst)
        if want != got:
            diff = sorted(set(want.items()) ^ set(got.items()))
            raise BenchError(f"{site.link} {backend}: copy differs in {len(diff)}: {diff[:3]}")
    finally:
        src.close()
        dst.close()
    site.drop_target(url)
    return Case(
        site.link, backend, parallel, result.bytes_sent, seconds, result.packs_sent, len(got)
    )


def run_restic_case(site: Site, source: ResticSource, backend: str) -> ResticCase:
    """``restic copy`` of the local restic repository into a new one on ``backend``."""
    url, options = site.new_restic_target(backend)
    os.sync()
    try:
        timed = restic_copy.copy(source, url, options)
    except (ToolError, ResticError) as exc:
        raise BenchError(f"{site.link} {backend}: restic: {exc}") from exc
    uploaded = site.target_bytes(url)
    site.drop_target(url)
    return ResticCase(
        site.link, backend, source.data_bytes, uploaded, timed.wall, timed.cpu, timed.peak_rss
    )


# --------------------------------------------------------------------------------- report


_Timed = TypeVar("_Timed", Case, ResticCase)


def _median(cases: list[_Timed]) -> _Timed:
    best = sorted(cases, key=lambda c: c.seconds)
    return best[len(best) // 2]


def _payload_rate(payload: int, runs: list[_Timed]) -> str:
    """The median run's MB/s of ``payload``, with the runs' range when there are several."""
    rates = [payload / 1e6 / r.seconds for r in runs]
    spread = f" ({min(rates):.1f}-{max(rates):.1f})" if len(runs) > 1 else ""
    return f"{payload / 1e6 / _median(runs).seconds:.2f}{spread}"


def table(
    cases: list[list[Case]],
    restic: dict[tuple[str, str], list[ResticCase]],
    payload: int,
    capacity: Capacity | None,
) -> str:
    """One row per drvault case, with restic's copy on the same link and backend beside it."""
    head = ["link", "backend", "drvault MB/s", "restic MB/s", "ratio", "drvault % of link"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    several = len({c.parallel for runs in cases for c in runs}) > 1
    for runs in cases:
        c = _median(runs)
        backend = c.backend
        if several or c.parallel is not None:
            backend += f" (parallel {'auto' if c.parallel is None else c.parallel})"
        theirs = restic.get((c.link, c.backend), [])
        restic_cell = ratio = share = "-"
        if theirs:
            r = _median(theirs)
            restic_cell = f"{_payload_rate(payload, theirs)}; {r.uploaded_mb_s:.2f} uploaded"
            ratio = f"{r.seconds / c.seconds:.2f}x"
        if c.link == "wan" and capacity is not None:
            rate = c.bytes_sent / c.seconds
            share = (
                f"{100 * rate / capacity.raw:.0f}% of 12.5 MB/s "
                f"({100 * rate / capacity.proxied:.0f}% of TCP)"
            )
        cells = [
            c.link,
            backend,
            f"{_payload_rate(payload, runs)}; {c.mb_s:.2f} sent",
            restic_cell,
            ratio,
            share,
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _borg_note() -> str:
    found = ""
    if shutil.which("borg"):
        done = subprocess.run(["borg", "--version"], capture_output=True, text=True, check=False)
        found = f" ({done.stdout.strip() or 'borg'} here)"
    return (
        f"Borg{found}: not measured. Borg has no repository-to-repository copy: a borg "
        "repository is replicated by copying its files (rsync, rclone) or by a second "
        "`borg create` of the source data into the DR repository, and borg has no S3 backend."
    )


# ----------------------------------------------------------------------------------- main


def _parse_size(text: str) -> int:
    from drvault.sizes import parse_size

    return parse_size(text)


def _parse_list(text: str, known: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or set(items) - set(known):
        raise SystemExit(f"--{what}: choose from {', '.join(known)}")
    return items


def _parse_parallel(text: str) -> list[int | None]:
    out: list[int | None] = []
    for item in text.split(","):
        item = item.strip()
        if item == "auto":
            out.append(None)
        elif item.isdigit() and int(item) > 0:
            out.append(int(item))
        else:
            raise SystemExit(f"--parallel: 'auto' or positive integers, not {item!r}")
    return out


@contextmanager
def _aws_environment(work: Path) -> Iterator[None]:
    """The fake credentials for the S3 backends in this process, and no user AWS config."""
    saved = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(work / "absent-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(work / "absent-credentials"),
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _beyond_tcp(nbytes: int, seconds: float, capacity: Capacity | None) -> str:
    if capacity is None or not capacity.proxied:
        return ""
    return f", {seconds - nbytes / capacity.proxied:.2f} s beyond TCP time"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.replication",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--size", default="256M", help="data backed up into the source (256M)")
    ap.add_argument("--links", default=",".join(LINKS))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--parallel", default="auto", help="comma list: auto (the engine's) or N")
    ap.add_argument("--repeats", type=int, default=1, help="runs per case; the median is shown")
    ap.add_argument("--probe", default="64M", help="bytes of each plain TCP capacity upload")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--no-restic", action="store_true", help="leave out `restic copy`")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="also print the cases as JSON")
    args = ap.parse_args(argv)
    links = _parse_list(args.links, LINKS, "links")
    backends = _parse_list(args.backends, BACKENDS, "backends")
    parallels = _parse_parallel(args.parallel)
    size, probe = _parse_size(args.size), _parse_size(args.probe)
    with_restic = not args.no_restic
    work = Path(args.workdir or tempfile.mkdtemp(prefix="drvault-bench-repl-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cases: list[list[Case]] = []
    restic: dict[tuple[str, str], list[ResticCase]] = {}
    restic_source: ResticSource | None = None
    restic_version = ""
    capacity: Capacity | None = None
    try:
        if with_restic:
            restic_version = restic_copy.version()
        with _aws_environment(work):
            t = time.perf_counter()
            source = make_source(work, size, args.seed, keep_data=with_restic)
            _progress(
                f"source: {source.data_bytes / 1e6:.1f} MB of incompressible files -> "
                f"{source.objects} objects, {source.packs} packs, "
                f"{source.repo_bytes / 1e6:.1f} MB ({time.perf_counter() - t:.1f} s)"
            )
            if with_restic:
                t = time.perf_counter()
                restic_source = restic_copy.make_source(work, work / "data", size)
                shutil.rmtree(work / "data")
                _progress(
                    f"restic source ({restic_version}): "
                    f"{restic_source.repo_bytes / 1e6:.1f} MB "
                    f"({time.perf_counter() - t:.1f} s); opening one repository takes "
                    f"{restic_source.open_seconds:.2f} s"
                )
            for link in links:
                with ExitStack() as stack_:
                    site = Site(link, work, stack_, backends)
                    site.measure_capacity(probe)
                    if site.capacity is not None:
                        capacity = site.capacity
                        _progress(
                            f"wan TCP capacity: {capacity.direct / 1e6:.2f} MB/s direct, "
                            f"{capacity.proxied / 1e6:.2f} MB/s through the delay proxy "
                            f"(tbf {capacity.raw / 1e6:.2f} MB/s raw)"
                        )
                    for backend in backends:
                        runs: dict[int | None, list[Case]] = {p: [] for p in parallels}
                        theirs = restic.setdefault((link, backend), []) if with_restic else []
                        for _ in range(args.repeats):  # the tools interleaved, run by run
                            for parallel in parallels:
                                case = run_case(site, source, backend, parallel)
                                _progress(
                                    f"[{link} {backend} drvault parallel={parallel or 'auto'}] "
                                    f"{case.bytes_sent / 1e6:.1f} MB in {case.seconds:.2f} s: "
                                    f"{case.mb_s:.2f} MB/s"
                                    + _beyond_tcp(case.bytes_sent, case.seconds, site.capacity)
                                )
                                runs[parallel].append(case)
                            if restic_source is not None:
                                r = run_restic_case(site, restic_source, backend)
                                _progress(
                                    f"[{link} {backend} restic copy] "
                                    f"{r.payload_bytes / 1e6:.1f} MB payload, "
                                    f"{r.uploaded_bytes / 1e6:.1f} MB uploaded in "
                                    f"{r.seconds:.2f} s: {r.mb_s:.2f} MB/s payload, "
                                    f"{r.uploaded_mb_s:.2f} MB/s uploaded, "
                                    f"CPU {r.cpu_seconds:.1f} s, "
                                    f"peak RSS {r.peak_rss / 2**20:.0f} MiB"
                                    + _beyond_tcp(r.uploaded_bytes, r.seconds, site.capacity)
                                )
                                theirs.append(r)
                        cases.extend(runs[p] for p in parallels)
    except (BenchError, SshdError, NetnsError, ResticError, ToolError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(cases, restic, size, capacity))
    print(
        f"\nMB/s: 1e6 bytes of payload (the same {size / 1e6:.1f} MB of source files for both "
        f"tools) per second of wall time; median of {args.repeats} run(s), range in "
        "parentheses. 'sent' / 'uploaded': the bytes the tool put into the target per "
        "second (drvault: what replicate() reports sent; restic: the target repository's "
        "size after the copy). ratio: drvault MB/s / restic MB/s, i.e. restic's time over "
        "drvault's for the same payload (above 1: drvault is faster)."
    )
    if restic_source is not None:
        print(
            f"\nrestic: {restic_version}, defaults; `restic copy --from-repo LOCAL "
            "--from-password-file F` into a target made (untimed) by `restic init "
            "--copy-chunker-params`. Timed: the whole `restic copy` process: start-up, "
            "opening both repositories (a scrypt key derivation each; one `restic cat config` "
            f"takes {restic_source.open_seconds:.2f} s here), then decrypting every blob and "
            "re-encrypting (and compressing) it under the target's key. drvault replicates "
            "keylessly: the source's objects are copied as they are."
        )
    print(f"\n{_borg_note()}")
    if capacity is not None:
        print(
            f"\nWAN: tbf 100 Mbit/s each way = {capacity.raw / 1e6:.2f} MB/s raw; plain TCP "
            f"measured {capacity.direct / 1e6:.2f} MB/s over the veth, "
            f"{capacity.proxied / 1e6:.2f} MB/s through the 30 ms delay proxy "
            "('% of TCP'). 'drvault % of link': drvault's bytes sent per second as a share "
            "of those. The progress lines give each run's 's beyond TCP time': wall time "
            "minus the time that TCP capacity needs for the bytes sent, i.e. the run's round "
            "trips that nothing overlapped (connections, listings, the small objects of each "
            "phase)."
        )
    if args.json:
        doc = {
            "capacity": asdict(capacity) if capacity else None,
            "payload_bytes": size,
            "cases": [[asdict(c) for c in runs] for runs in cases],
            "median_mb_s": [statistics.median(c.mb_s for c in runs) for runs in cases],
            "restic": {
                "version": restic_version,
                "open_seconds": restic_source.open_seconds if restic_source else None,
                "cases": [[asdict(r) for r in runs] for runs in restic.values()],
                "median_mb_s": [
                    statistics.median(r.mb_s for r in runs) for runs in restic.values() if runs
                ],
            },
        }
        print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
