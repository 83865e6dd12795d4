"""Background uploads with a hard bound: the CPU work of a backup never waits on the network
until ``parallel`` uploads are already running, and then it waits (back-pressure), so memory
holds at most ``parallel`` finished packs however slow the link.

A failed upload is raised to the next caller of ``submit`` or ``wait``: a backup stops at the
first storage error instead of building on a pack that never arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures


class Uploader:
    def __init__(self, parallel: int) -> None:
        self.parallel = max(1, parallel)
        self._slots = threading.BoundedSemaphore(self.parallel)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._futures: set[Future[None]] = set()
        self._error: BaseException | None = None

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` in the background once a slot is free; raise an earlier failure."""
        self._raise()
        self._slots.acquire()
        try:
            self._raise()
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.parallel, "drvault-upload")
                future = self._pool.submit(task)
                self._futures.add(future)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)
            if not future.cancelled() and future.exception() is not None and self._error is None:
                self._error = future.exception()
        self._slots.release()

    def _raise(self) -> None:
        with self._lock:
            error = self._error
        if error is not None:
            raise error

    def wait(self) -> None:
        """Wait for every upload submitted so far; raise the first failure."""
        with self._lock:
            pending = set(self._futures)
        wait_futures(pending)
        self._raise()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
