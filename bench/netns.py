"""A rate-limited link to a network namespace, for benchmarks over a WAN-like path.

:class:`Netns` creates a namespace and a veth pair (names unique to this process), gives the
host end ``10.a.b.c+1/30`` and the namespace end ``+2``, and caps the egress of *both* ends
with a ``tbf`` qdisc, so each direction runs at the link rate (100 Mbit/s by default). Servers
started with :meth:`Netns.popen` run inside the namespace (``ip netns exec``) and listen on
:attr:`Netns.ns_ip`; the host reaches them only through the shaped veth. On exit the processes
started inside are stopped, then the veth is deleted before the namespace, so the names can be
reused at once.

This kernel has no ``netem``: ``tbf`` shapes the rate only. Latency is added in userspace by a
delay proxy on the host side (``tests/servers/proxy.py``). :class:`TcpSink` measures what plain
TCP achieves over the same path, the yardstick for any client's throughput.

Needs root and iproute2's ``ip`` and ``tc`` (Debian package ``iproute2``).
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

_counter = itertools.count()


class NetnsError(RuntimeError):
    """The namespace or the shaping could not be set up (not root, no iproute2, ...)."""


@dataclass(frozen=True)
class Shape:
    """A ``tbf`` qdisc: ``rate_mbit`` on average, bursts of ``burst`` bytes, and packets
    dropped rather than queued longer than ``latency_ms``."""

    rate_mbit: float = 100.0
    burst: int = 64 << 10
    latency_ms: float = 50.0

    @property
    def bytes_per_second(self) -> float:
        return self.rate_mbit * 1e6 / 8

    def tc_args(self) -> list[str]:
        return [
            "tbf",
            "rate",
            f"{self.rate_mbit:g}mbit",
            "burst",
            str(self.burst),
            "latency",
            f"{self.latency_ms:g}ms",
        ]


def missing_tools() -> list[str]:
    """What this module needs and the machine lacks (empty: ready)."""
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root (network namespaces need CAP_NET_ADMIN)")
    return missing


def _run(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise NetnsError(f"{argv[0]}: not found (install iproute2)") from None
    if done.returncode != 0:
        detail = done.stderr.strip().replace("\n", "; ")
        raise NetnsError(f"{' '.join(argv)}: exit {done.returncode}: {detail}")
    return done.stdout


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """The host's IPv4 networks: those of its addresses and the destinations of its routes."""
    nets = []
    words = _run("ip", "-4", "-o", "addr", "show").split()
    words += [line.split()[0] for line in _run("ip", "-4", "route", "show").splitlines() if line]
    for word in words:
        if word[:1].isdigit():
            try:
                nets.append(ipaddress.IPv4Network(word, strict=False))
            except ValueError:
                continue
    return nets


def _free_block() -> ipaddress.IPv4Network:
    """A random /30 in 10.0.0.0/8 that no route of the host covers or overlaps."""
    taken = _taken_networks()
    for _ in range(100):
        block = ipaddress.IPv4Network((0x0A000000 | (secrets.randbits(22) << 2), 30))
        if not any(block.overlaps(net) for net in taken):
            return block
    raise NetnsError("no free /30 in 10.0.0.0/8")


class Netns:
    """``with Netns() as ns:`` a namespace behind a shaped veth; see the module docstring."""

    def __init__(self, shape: Shape | None = None) -> None:
        self.shape = shape or Shape()
        n = next(_counter)
        pid = os.getpid()
        self.name = f"drvault-bench-{pid}-{n}"
        self.host_if = f"dv{pid}h{n}"[:15]
        self.ns_if = f"dv{pid}n{n}"[:15]
        self.host_ip = ""
        self.ns_ip = ""
        self._procs: list[subprocess.Popen[Any]] = []
        self._made: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Netns:
        missing = missing_tools()
        if missing:
            raise NetnsError(f"cannot build a namespace link: missing {', '.join(missing)}")
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _create(self) -> None:
        block = _free_block()
        host, peer = (str(h) for h in list(block.hosts())[:2])
        _run("ip", "netns", "add", self.name)
        self._made.append("netns")
        _run(
            "ip",
            "link",
            "add",
            self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            self.ns_if,
            "netns",
            self.name,
        )
        self._made.append("link")
        _run("ip", "addr", "add", f"{host}/30", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        _run("ip", "-n", self.name, "addr", "add", f"{peer}/30", "dev", self.ns_if)
        _run("ip", "-n", self.name, "link", "set", self.ns_if, "up")
        _run("ip", "-n", self.name, "link", "set", "lo", "up")
        _run("tc", "qdisc", "add", "dev", self.host_if, "root", *self.shape.tc_args())
        _run(
            "tc", "-n", self.name, "qdisc", "add", "dev", self.ns_if, "root", *self.shape.tc_args()
        )
        self.host_ip, self.ns_ip = host, peer
        self._wait_reachable()

    def _wait_reachable(self, timeout: float = 5.0) -> None:
        """Until both ends have carrier (a veth's link comes up a moment after ``set up``)."""
        deadline = time.monotonic() + timeout
        while True:
            host = _run("ip", "-o", "link", "show", "dev", self.host_if)
            inside = _run("ip", "-n", self.name, "-o", "link", "show", "dev", self.ns_if)
            if "LOWER_UP" in host and "LOWER_UP" in inside:
                return
            if time.monotonic() > deadline:
                raise NetnsError(f"{self.host_if} <-> {self.ns_if}: no carrier after {timeout} s")
            time.sleep(0.02)

    def close(self) -> None:
        """Stop the processes started inside, delete the veth, then the namespace."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        errors: list[str] = []
        if "link" in self._made:
            try:
                _run("ip", "link", "del", self.host_if)
            except NetnsError as exc:
                errors.append(str(exc))
        if "netns" in self._made:
            try:
                _run("ip", "netns", "del", self.name)
            except NetnsError as exc:
                errors.append(str(exc))
        self._made.clear()
        if errors:
            raise NetnsError("; ".join(errors))

    def present(self) -> list[str]:
        """What of this link still exists on the host ("netns", "link"): empty after close."""
        left = []
        if self.name in _run("ip", "netns", "list").split():
            left.append("netns")
        if (
            subprocess.run(
                ["ip", "link", "show", "dev", self.host_if], capture_output=True, check=False
            ).returncode
            == 0
        ):
            left.append("link")
        return left

    # ------------------------------------------------------------------ processes inside

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace; it is stopped when the namespace closes."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.exec_argv(argv), **kwargs)
        self._procs.append(proc)
        return proc


_SINK = """
import socket, sys
srv = socket.socket()
srv.bind((sys.argv[1], 0))
srv.listen(8)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        got = 0
        while chunk := conn.recv(1 << 20):
            got += len(chunk)
        conn.sendall(str(got).encode())
"""


class TcpSink:
    """A discard server inside the namespace that answers each connection's byte count after
    its EOF: an upload's time is from connect until that answer (every byte delivered)."""

    def __init__(self, ns: Netns) -> None:
        self.ns = ns
        self._proc = ns.popen(
            [sys.executable, "-c", _SINK, ns.ns_ip], stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            raise NetnsError(f"the TCP sink in {ns.name} did not start")
        self.port = int(line)

    def upload(self, nbytes: int, host: str | None = None, port: int | None = None) -> float:
        """Seconds to push ``nbytes`` to the sink, directly or through ``host``:``port``
        (a proxy in front of it)."""
        block = bytes(1 << 20)
        start = time.perf_counter()
        with socket.create_connection((host or self.ns.ns_ip, port or self.port)) as s:
            left = nbytes
            while left > 0:
                n = min(left, len(block))
                s.sendall(block[:n] if n < len(block) else block)
                left -= n
            s.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := s.recv(64):
                answer += chunk
        elapsed = time.perf_counter() - start
        if int(answer or b"-1") != nbytes:
            raise NetnsError(f"TCP sink received {answer!r} bytes, {nbytes} sent")
        return elapsed
