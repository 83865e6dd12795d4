"""FastCDC 2020 cut-point search (C hot path of drvault.chunker); see native/fastcdc.c.

`gear` is 2048 bytes: 256 uint64 in native byte order. Parameters are validated as in
`drvault.chunker.params.check_params` (ValueError otherwise). `data` is any C-contiguous
buffer; it is not copied, and the GIL is released while scanning.
"""

from typing_extensions import Buffer

def cut(
    data: Buffer, gear: Buffer, min_size: int, avg_size: int, max_size: int, level: int, /
) -> int:
    """Length of the first chunk of `data` (``len(data)`` if at most `min_size`)."""

def cuts(
    data: Buffer,
    gear: Buffer,
    min_size: int,
    avg_size: int,
    max_size: int,
    level: int,
    eof: bool,
    /,
) -> list[int]:
    """End offsets of the chunks of `data`; without `eof`, only chunks more data
    could not change (the unfinished tail is left for the next call)."""
