"""Sparse writes of restored blobs (C hot path of drvault.filesystem.sparse); see native/sparse.c.

`data` is any C-contiguous buffer; it is not copied, and the GIL is released while it is scanned
and written. OSError on a failed write (what was written before it stays).
"""

from typing_extensions import Buffer

def pwrite_sparse(fd: int, data: Buffer, offset: int, block: int, /) -> None: ...
