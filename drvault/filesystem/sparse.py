"""Sparse files: write restored files with holes where the data is zeros, and find holes.

Restore writes every regular file through :class:`SparseWriter`: each file-system block
(``st_blksize``, normally 4 KiB, aligned to the file offset) that is all zeros is skipped and
so stays a hole, even inside a chunk that is only partly zeros; the rest goes out with
``pwrite``. The scan and the writes of one blob are one call into C (``native/sparse.c``, GIL
released), not a Python step per block. :meth:`SparseWriter.finish` sets the final size, which
keeps a trailing hole. So a sparse VM image restores sparse, whether or not the backup knew it
was sparse, and every byte reads back the same. The repository needs no "sparse" flag: all-zero
chunks are enough.

:func:`data_regions` tells a backup which parts of a file hold data (``SEEK_DATA`` /
``SEEK_HOLE``), so it can avoid reading holes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from typing_extensions import Buffer

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
_REOPEN_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_DEFAULT_BLOCK = 4096
_MAX_BLOCK = 1 << 20


class SparseWriter:
    """Write one regular file at given offsets, leaving all-zero blocks as holes.

    Opens ``path`` with ``O_CREAT | O_TRUNC | O_NOFOLLOW`` (a symlink planted at ``path`` is
    refused, never followed) and mode 0600; the restore sets the real mode afterwards. With
    ``create=False`` an existing file is reopened as it is (neither created nor truncated), so a
    restore can fill one file across many packs. Because
    the file starts empty and skipped blocks read as zeros, each byte range may be written at
    most once. With ``sparse=False`` every byte is written (no holes). Use as a context
    manager: leaving the block without :meth:`finish` (an error) just closes the file.
    """

    def __init__(
        self,
        path: bytes,
        *,
        sparse: bool = True,
        block_size: int | None = None,
        create: bool = True,
    ) -> None:
        if block_size is not None and block_size <= 0:
            raise ValueError(f"block_size must be positive, not {block_size}")
        self._fd = os.open(path, _OPEN_FLAGS if create else _REOPEN_FLAGS, 0o600)
        self._closed = False
        self._sparse = sparse
        if block_size is None:
            block_size = os.fstat(self._fd).st_blksize
            if not 512 <= block_size <= _MAX_BLOCK:
                block_size = _DEFAULT_BLOCK
        self._block = block_size

    @property
    def block_size(self) -> int:
        """Granularity of hole detection, in bytes."""
        return self._block

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset``, skipping all-zero blocks aligned to the file offset."""
        if self._sparse:
            PWRITE_SPARSE(self._fd, data, offset, self._block)
        else:
            _pwrite_all(self._fd, memoryview(data).cast("B"), offset)

    @property
    def fd(self) -> int:
        """The open file's descriptor (to set its metadata before :meth:`close`)."""
        return self._fd

    def set_size(self, size: int) -> None:
        """Set the file's final ``size``, keeping a trailing hole."""
        os.ftruncate(self._fd, size)

    def finish(self, size: int) -> None:
        """Set the file's final ``size`` (keeping a trailing hole) and close it."""
        try:
            self.set_size(size)
        finally:
            self.close()

    def close(self) -> None:
        """Close the file without setting its size; calling it again does nothing."""
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> SparseWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def py_pwrite_sparse(fd: int, data: Buffer, offset: int, block: int, /) -> None:
    """Write ``data`` at ``offset`` of ``fd``, skipping every all-zero block of ``block`` bytes
    aligned to the file offset; each run of other blocks goes out with one ``pwrite``.

    The reference for the C version in ``drvault.filesystem._sparse`` (``native/sparse.c``),
    which does the same without a Python step per block and with the GIL released; the tests
    hold both to the same files. Used where the extension is not built.
    """
    if offset < 0 or block <= 0:
        raise ValueError(
            f"offset {offset} and block {block}: offset must not be negative, "
            "block must be positive"
        )
    view = memoryview(data).cast("B")
    is_zero = bytes(block).startswith  # memcmp against a zero block
    length = len(view)
    run_start = -1  # start (in view) of the pending run of non-zero blocks
    start = 0
    while start < length:
        end = min(length, start + block - (offset + start) % block)
        if is_zero(view[start:end]):
            if run_start >= 0:
                _pwrite_all(fd, view[run_start:start], offset + run_start)
                run_start = -1
        elif run_start < 0:
            run_start = start
        start = end
    if run_start >= 0:
        _pwrite_all(fd, view[run_start:], offset + run_start)


def _load() -> Callable[[int, Buffer, int, int], None]:
    try:
        from drvault.filesystem import _sparse
    except ImportError:
        return py_pwrite_sparse
    return _sparse.pwrite_sparse


PWRITE_SPARSE: Final = _load()
"""The sparse write in use: the C extension's when it imports, else :func:`py_pwrite_sparse`."""


def data_regions(fd: int, size: int) -> list[tuple[int, int]]:
    """The ``(offset, length)`` ranges of the first ``size`` bytes of ``fd`` that hold data.

    Everything outside them is a hole and reads as zeros. On a file system without
    ``SEEK_DATA`` support the whole range is one region. The file offset of ``fd`` is left
    where it was. If the file changes meanwhile the answer is a best effort, as any read is.
    """
    regions: list[tuple[int, int]] = []
    saved = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        position = 0
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as error:
                if error.errno == errno.ENXIO:  # no data after position
                    break
                if error.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                    return [(0, size)]
                raise
            if start >= size:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            regions.append((start, end - start))
            position = end
    finally:
        os.lseek(fd, saved, os.SEEK_SET)
    return regions
