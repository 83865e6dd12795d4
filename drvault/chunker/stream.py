"""The chunker: FastCDC 2020 parameters plus a gear table, applied to buffers and streams.

`Chunker.chunk_buffer` slices an in-memory buffer (bytes, bytearray, mmap, ...) into
zero-copy memoryviews; `Chunker.chunk_file` reads a stream of any size through one
reusable buffer of bounded size and yields each chunk as `bytes`. Both find the same
boundaries as chunking the whole content at once.

Cut points are found by `drvault.chunker.backend` (C extension or fallback), many per
call: a cut is only reported once more data could not move it, so a boundary never
depends on how the input was read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Final, Protocol

from drvault.chunker import backend
from drvault.chunker.gear import GEAR_BYTES, canonical_gear, keyed_gear
from drvault.chunker.params import ChunkerParams
from drvault.directio import ALIGN, round_up
from drvault.pages import private_map

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["Chunker", "Readable"]

_MiB: Final = 1024 * 1024
# chunk_file keeps max(4 * max_size, 16 MiB) in memory; chunk_buffer asks for cut points
# in windows of max(64 * max_size, 16 MiB). Each window or refill rescans the unfinished
# last chunk (about avg_size bytes), so both are kept large relative to a chunk.
_READ_BUFFER_CHUNKS: Final = 4
_WINDOW_CHUNKS: Final = 64
_MIN_WINDOW: Final = 16 * _MiB


class Readable(Protocol):
    """A binary stream with ``readinto`` (files opened ``"rb"``, BytesIO, sockets' files)."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


def _reader(f: Readable | BinaryIO) -> Callable[[memoryview], int | None]:
    """``f.readinto``, or an equivalent over ``f.read`` for streams without it."""
    readinto = getattr(f, "readinto", None)
    if readinto is not None:
        return readinto  # type: ignore[no-any-return]

    def read_into(target: memoryview) -> int | None:
        data = f.read(len(target))  # type: ignore[union-attr]
        if data is None:
            return None
        target[: len(data)] = data
        return len(data)

    return read_into


def _byte_view(buf: Buffer) -> memoryview:
    view = memoryview(buf)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


@dataclass(frozen=True, slots=True)
class Chunker:
    """FastCDC 2020 chunker: chunk size parameters and a 2048-byte gear table.

    The gear table is hidden from ``repr``: a keyed table is as sensitive as its secret.
    """

    params: ChunkerParams
    gear: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.params, ChunkerParams):
            raise TypeError(f"params must be ChunkerParams, got {type(self.params).__name__}")
        gear = bytes(self.gear)
        if len(gear) != GEAR_BYTES:
            raise ValueError(
                f"gear must be {GEAR_BYTES} bytes (256 native-endian uint64), got {len(gear)}"
            )
        object.__setattr__(self, "gear", gear)

    @classmethod
    def canonical(cls, params: ChunkerParams) -> Chunker:
        """Chunker with the published gear table (reproduces reference cut points)."""
        return cls(params, canonical_gear())

    @classmethod
    def keyed(cls, params: ChunkerParams, secret: bytes) -> Chunker:
        """Chunker with the gear table derived from a 32-byte repository secret."""
        return cls(params, keyed_gear(secret))

    @property
    def read_buffer_size(self) -> int:
        """Default size of `chunk_file`'s buffer: ``max(4 * max_size, 16 MiB)``."""
        return max(_READ_BUFFER_CHUNKS * self.params.max_size, _MIN_WINDOW)

    def cut(self, buf: Buffer) -> int:
        """Length of the first chunk of `buf` (all of it if at most ``min_size``)."""
        return backend.cut(buf, self.gear, *self.params.as_args())

    def cut_points(self, buf: Buffer, *, eof: bool = True) -> list[int]:
        """End offsets of the chunks of `buf` (the last is ``len(buf)`` when `eof`).

        With ``eof=False`` the unfinished last chunk is left out: its end may still move
        when more data follows.
        """
        return backend.cuts(buf, self.gear, *self.params.as_args(), eof)

    def chunk_buffer(self, buf: Buffer) -> Iterator[memoryview]:
        """Yield the chunks of an in-memory buffer as memoryviews into it (no copies)."""
        view = _byte_view(buf)
        size = len(view)
        window = max(_WINDOW_CHUNKS * self.params.max_size, _MIN_WINDOW)
        cuts, gear, args = backend.cuts, self.gear, self.params.as_args()
        start = 0
        while start < size:
            stop = min(start + window, size)
            base = start
            for offset in cuts(view[base:stop], gear, *args, stop == size):
                end = base + offset
                yield view[start:end]
                start = end

    def chunk_file(
        self, f: Readable | BinaryIO, *, buffer_size: int | None = None
    ) -> Iterator[bytes]:
        """Yield the chunks of a binary stream as bytes, read with ``f.readinto``.

        Memory stays bounded by `buffer_size` (default `read_buffer_size`, at least
        ``max_size``) plus 4 KiB whatever the stream's length; short reads are retried until
        the buffer is full or ``readinto`` returns 0 (end of stream). An empty stream yields
        nothing. Streams without ``readinto`` are read with ``read`` (one extra copy).

        Every read starts at a page-aligned address, a whole number of 4 KiB blocks after the
        first (until a short read), and asks for whole blocks: a file opened with
        ``O_DIRECT`` can be read this way (the unfinished chunk carried over is moved to end
        on a block boundary).
        """
        size = self.read_buffer_size if buffer_size is None else buffer_size
        if size < self.params.max_size:
            raise ValueError(f"buffer_size must be at least max_size, got {size}")
        cuts, gear, args = backend.cuts, self.gear, self.params.as_args()
        readinto = _reader(f)
        total = round_up(size) + ALIGN  # one block of room to keep reads aligned
        memory = private_map(total)  # page aligned
        view = memoryview(memory)
        try:
            begin = filled = 0  # the data not yet chunked is view[begin:filled]
            eof = False
            while True:
                while filled < total and not eof:
                    got = readinto(view[filled:])
                    if got is None:
                        raise BlockingIOError("chunk_file needs a blocking stream")
                    if got == 0:
                        eof = True
                    filled += got
                start = begin
                for end in cuts(view[begin:filled], gear, *args, eof):
                    yield bytes(view[start : begin + end])
                    start = begin + end
                if eof:
                    return
                tail = filled - start
                begin = -tail % ALIGN  # so that the next read starts on a block boundary
                view[begin : begin + tail] = view[start:filled]
                filled = begin + tail
        finally:
            view.release()
            with contextlib.suppress(BufferError):  # a view of it still held: freed with it
                memory.close()
