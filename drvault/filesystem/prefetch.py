"""Read-ahead of the small files a backup's workers are about to read.

A worker reads a batch of small files one after the other, and a file not in the page cache
is read directly (:mod:`drvault.directio`): each read waits for the disk, and with one read in
flight per worker the disk mostly idles. On the benchmark machine (ext4 on virtio) reading the
20,000 documents one at a time took 8.2 s; four at a time, 2.9 s. So while the workers
compress, one thread goes over the batches handed to them and asks the kernel to read each
file ahead (``POSIX_FADV_WILLNEED``: it queues the reads and returns), keeping many reads in
flight. The worker then reads the file through the page cache, waiting only for what has not
arrived yet, and drops its pages afterwards (``POSIX_FADV_DONTNEED``), so a backup still
leaves the page cache as it found it. The drop costs kernel time: on the documents about
0.5 s of it, against 0.1-3.6 s (median 1.7 s) of wall time saved.

Only files whose first block is not cached are read ahead (a cached file belongs to someone
else's working set and is left alone), and only where the kernel can tell
(:func:`~drvault.directio.first_block_cached`); elsewhere nothing is read ahead, and the
workers read directly as before. A file a worker has begun is skipped: reading it ahead then
would read it twice.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence

from drvault.directio import first_block_cached
from drvault.filesystem.capture import open_file

_ADVISE = hasattr(os, "posix_fadvise")


class FileBatch:
    """Files one worker reads in order, shared with the thread reading them ahead: which of
    them were read ahead, and how far the worker has come. A file is either read ahead
    before the worker begins it (the worker then reads it through the page cache and drops
    its pages) or not at all (pages read ahead too late are dropped again right away)."""

    __slots__ = ("_ahead", "_begun", "_lock", "paths")

    def __init__(self, paths: Sequence[bytes]) -> None:
        self.paths = paths
        self._ahead = bytearray(len(paths))  # 1: read ahead before the worker began it
        self._begun = 0  # files the worker has begun
        self._lock = threading.Lock()

    def begin(self, i: int) -> bool:
        """The worker begins file ``i`` (in order): whether it was read ahead."""
        with self._lock:
            self._begun = i + 1
            return self._ahead[i] == 1

    def claim(self, i: int) -> bool:
        """Mark file ``i`` read ahead, unless the worker has begun it (False)."""
        with self._lock:
            if i < self._begun:
                return False
            self._ahead[i] = 1
            return True

    def begun(self, i: int) -> bool:
        with self._lock:
            return i < self._begun

    def marked(self) -> list[int]:
        """The files read ahead (positions)."""
        with self._lock:
            return [i for i, a in enumerate(self._ahead) if a]


def read_ahead(batch: FileBatch) -> bool:
    """Ask the kernel to read ahead every file of ``batch`` the worker has not begun and the
    page cache does not hold. False when the page cache cannot be asked (no ``cachestat``):
    the caller should stop reading ahead."""
    if not _ADVISE:
        return False
    for i, path in enumerate(batch.paths):
        if batch.begun(i):
            continue
        try:
            fd = open_file(path, os.O_NONBLOCK)  # a FIFO now: must not wait for a writer
        except OSError:  # vanished, unreadable: the worker will say
            continue
        try:
            cached = first_block_cached(fd)
            if cached is None:
                return False
            if not cached:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                if not batch.claim(i):  # the worker began it meanwhile, reading it directly
                    drop(fd)
        except OSError:
            continue
        finally:
            os.close(fd)
    return True


def drop(fd: int) -> None:
    """Drop a file's pages from the page cache once it has been read (errors ignored)."""
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
