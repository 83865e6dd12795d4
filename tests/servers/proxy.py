"""A TCP proxy on 127.0.0.1 that injects link faults: latency, a silent cut, a reset.

``blackhole()`` stops moving bytes in both directions without closing anything: the peers'
kernels still hold the connections open, data piles up in the socket buffers and no FIN or RST
ever arrives, as when a link dies silently. ``reset()`` aborts every connection with an RST.
``heal()`` resumes forwarding. The proxy runs an asyncio loop in a daemon thread; the controls
may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")
_CHUNK = 64 << 10


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, *writers: asyncio.StreamWriter) -> None:
        self.writers = writers
        self.tasks: list[asyncio.Task[None]] = []
        self.eofs = 0  # directions that ended with a FIN

    def abort(self, rst: bool) -> None:
        for writer in self.writers:
            if rst:
                sock = writer.get_extra_info("socket")
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port``."""

    def __init__(
        self, target_port: int, target_host: str = "127.0.0.1", delay: float = 0.0
    ) -> None:
        self.target = (target_host, target_port)
        self.delay = delay  # added one-way latency in seconds, each direction
        self.port = 0
        self.accepted = 0  # connections accepted so far
        self.forwarded = 0  # bytes delivered so far, both directions
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._links: set[_Link] = set()
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ controls

    def blackhole(self) -> None:
        """Silently stop forwarding in both directions; nothing is closed."""
        self._call(self._set_flowing, False)

    def blackhole_after(self, moved: int) -> threading.Thread:
        """Go silent once ``moved`` more bytes have passed (watched from a daemon thread)."""
        start = self.forwarded

        def watch() -> None:
            deadline = time.monotonic() + 60
            while self.forwarded - start < moved and time.monotonic() < deadline:
                time.sleep(0.005)
            self.blackhole()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def heal(self) -> None:
        """Resume forwarding on the connections still open, and for new ones."""
        self._call(self._set_flowing, True)

    def reset(self) -> None:
        """Abort every current connection (both sides) with an RST."""
        self._call(self._abort_all, True)

    @property
    def connections(self) -> int:
        """Connections currently open through the proxy."""
        return len(self._links)

    # ------------------------------------------------------------------ loop side

    def _call(self, fn: Callable[..., Coroutine[Any, Any, _T]], *args: Any) -> _T:
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop).result(10)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._abort_all(True)
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _abort_all(self, rst: bool) -> None:
        for link in list(self._links):
            self._drop(link, rst)
        await asyncio.sleep(0)  # let the cancelled pumps finish

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        assert self._flowing is not None
        pending = _Link(writer)
        self._links.add(pending)
        await self._flowing.wait()  # a cut link never reaches the server either
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            pending.abort(True)
            self._links.discard(pending)
            return
        self._links.discard(pending)
        for w in (writer, up_writer):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.ensure_future(self._pump(reader, up_writer, link)),
            asyncio.ensure_future(self._pump(up_reader, writer, link)),
        ]

    def _drop(self, link: _Link, rst: bool) -> None:
        link.abort(rst)
        self._links.discard(link)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link
    ) -> None:
        assert self._flowing is not None
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=64)
        link.tasks.append(asyncio.ensure_future(self._send(queue, dst, link)))
        try:
            while True:
                await self._flowing.wait()
                data = await src.read(_CHUNK)
                await queue.put((self._loop.time() + self.delay, data))
                if not data:
                    return
        except OSError:
            self._drop(link, True)  # a reset on one side resets the other

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter, link: _Link
    ) -> None:
        assert self._flowing is not None
        try:
            while True:
                due, data = await queue.get()
                wait = due - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()
                if data:
                    dst.write(data)
                    self.forwarded += len(data)
                    await dst.drain()
                    continue
                if dst.can_write_eof():
                    dst.write_eof()
                link.eofs += 1
                if link.eofs == 2:
                    self._drop(link, False)
                return
        except OSError:
            self._drop(link, True)
