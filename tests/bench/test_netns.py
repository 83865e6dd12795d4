"""The benchmark's shaped link for real: namespace up, ~100 Mbit/s each way, nothing left after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from bench.netns import Netns, NetnsError, Shape, TcpSink, missing_tools

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

SIZE = 20 << 20
LOW, HIGH = 8e6, 13.5e6  # bytes/s around 100 Mbit/s (12.5e6 raw, ~11.9e6 of TCP payload)


def test_tools_present() -> None:
    assert missing_tools() == [], "install iproute2 (ip, tc) and run as root"


def test_link_up_shaped_and_torn_down() -> None:
    with Netns() as ns:
        assert ns.present() == ["netns", "link"]
        for argv in (
            ["tc", "qdisc", "show", "dev", ns.host_if],
            ["tc", "-n", ns.name, "qdisc", "show", "dev", ns.ns_if],
        ):
            shown = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            assert "tbf" in shown and "rate 100Mbit" in shown, shown
        sink = TcpSink(ns)
        rate = SIZE / sink.upload(SIZE)
        assert LOW < rate < HIGH, f"host -> namespace at {rate / 1e6:.2f} MB/s"
        started = ns.popen(["sleep", "600"])
    assert started.poll() is not None  # processes inside are stopped with the namespace
    assert ns.present() == []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert ns.name not in listed


_UPLOAD_FROM_INSIDE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2]))) as s:
    s.sendall(bytes(int(sys.argv[3])))
"""


def test_namespace_to_host_is_capped_too() -> None:
    with Netns() as ns, socket.socket() as listener:
        listener.bind((ns.host_ip, 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        times: dict[str, float] = {}

        def receive() -> None:
            conn, _ = listener.accept()
            with conn:
                got, start = 0, 0.0
                while chunk := conn.recv(1 << 20):
                    if not got:
                        start = time.perf_counter()
                    got += len(chunk)
                times["seconds"] = time.perf_counter() - start
                times["bytes"] = got

        thread = threading.Thread(target=receive)
        thread.start()
        sender = ns.popen(
            [sys.executable, "-c", _UPLOAD_FROM_INSIDE, ns.host_ip, str(port), str(SIZE)]
        )
        assert sender.wait(timeout=60) == 0
        thread.join(60)
    assert times["bytes"] == SIZE
    rate = SIZE / times["seconds"]
    assert LOW < rate < HIGH, f"namespace -> host at {rate / 1e6:.2f} MB/s"


def test_two_links_at_once_have_their_own_names() -> None:
    with Netns() as a, Netns() as b:
        assert len({a.name, b.name}) == 2
        assert len({a.host_if, b.host_if, a.ns_if, b.ns_if}) == 4
        assert a.ns_ip != b.ns_ip
        assert len(a.host_if) <= 15
    assert a.present() == [] and b.present() == []


def test_failed_setup_leaves_nothing() -> None:
    ns = Netns(Shape(rate_mbit=0))  # tc refuses a zero rate, after the veth exists
    with pytest.raises(NetnsError, match="tc"), ns:
        pass
    assert ns.present() == []
