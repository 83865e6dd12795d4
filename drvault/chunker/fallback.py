"""Pure-Python FastCDC 2020 cut-point search, a drop-in for the C extension `_fastcdc`.

Same functions, same signatures, same cut points, same ValueErrors; about a thousand
times slower. Used when the extension is not built or ``DRVAULT_CHUNKER=python``.

This module follows the reference implementation (fastcdc crate, v2020) literally:
two bytes per step, the even byte added through ``GEAR_LS = GEAR << 1`` and tested
against ``mask << 1``, the odd byte through ``GEAR`` against ``mask``. The C code
computes the same hashes by different arithmetic, which makes the property test that
compares the two a real cross-check.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Final

from drvault.chunker.gear import gear_entries
from drvault.chunker.params import check_params, masks_for

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["cut", "cuts"]

_U64: Final = (1 << 64) - 1


@lru_cache(maxsize=8)
def _tables(gear: bytes) -> tuple[tuple[int, ...], tuple[int, ...]]:
    entries = gear_entries(gear)
    return entries, tuple((g << 1) & _U64 for g in entries)


class _Scanner:
    """Validated parameters plus the two gear tables, for repeated cuts."""

    __slots__ = ("avg_size", "gear", "gear_ls", "mask_l", "mask_s", "max_size", "min_size")

    def __init__(
        self, gear: Buffer, min_size: int, avg_size: int, max_size: int, level: int
    ) -> None:
        check_params(min_size, avg_size, max_size, level)
        self.min_size = min_size
        self.avg_size = avg_size
        self.max_size = max_size
        self.mask_s, self.mask_l = masks_for(avg_size, level)
        self.gear, self.gear_ls = _tables(bytes(gear))

    def find_cut(self, buf: memoryview, base: int, remaining: int) -> int:
        """Length of the first chunk of ``buf[base:base + remaining]``."""
        if remaining <= self.min_size:
            return remaining
        center = self.avg_size
        if remaining > self.max_size:
            remaining = self.max_size
        elif remaining < center:
            center = remaining
        gear, gear_ls = self.gear, self.gear_ls
        h = 0
        index = self.min_size // 2
        for mask, stop in ((self.mask_s, center // 2), (self.mask_l, remaining // 2)):
            mask_ls = mask << 1
            while index < stop:
                a = index * 2
                h = ((h << 2) + gear_ls[buf[base + a]]) & _U64
                if not h & mask_ls:
                    return a
                h = (h + gear[buf[base + a + 1]]) & _U64
                if not h & mask:
                    return a + 1
                index += 1
        return remaining


def _bytes_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    if not view.c_contiguous:
        view.release()
        raise BufferError("data must be a C-contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def cut(
    data: Buffer, gear: Buffer, min_size: int, avg_size: int, max_size: int, level: int, /
) -> int:
    """Return the length of the first chunk of `data` (see the C `cut`)."""
    scanner = _Scanner(gear, min_size, avg_size, max_size, level)
    with _bytes_view(data) as view:
        return scanner.find_cut(view, 0, len(view))


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
    """Return the end offsets of the final chunks of `data` (see the C `cuts`)."""
    scanner = _Scanner(gear, min_size, avg_size, max_size, level)
    offsets: list[int] = []
    with _bytes_view(data) as view:
        size = len(view)
        pos = 0
        while pos < size:
            rest = size - pos
            length = scanner.find_cut(view, pos, rest)
            if not eof and length == rest and rest < max_size:
                break
            pos += length
            offsets.append(pos)
    return offsets
