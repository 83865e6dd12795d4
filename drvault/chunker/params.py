"""Chunker parameters: size bounds, normalization level and the FastCDC mask table.

`ChunkerParams` is the validated value the rest of drvault passes around; `check_params`
is the same validation for the raw integers taken by the low-level `cut`/`cuts`
functions (the C extension applies identical rules, see native/fastcdc.c).

Masks: FastCDC 2020 normalized chunking tests the gear hash against a stricter mask
(more bits) before `avg_size` and a looser one (fewer bits) after it. With
``bits = log2(avg_size)`` they are ``MASKS[bits + level]`` and ``MASKS[bits - level]``,
where `MASKS` is the reference table of the fastcdc crate (values for 64 B to 128 KiB
from the paper authors' C code in destor, larger ones from restic-FastCDC). The spread
bit patterns are format constants: changing one changes every cut point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "AVG_SIZE_MAX",
    "AVG_SIZE_MIN",
    "DEFAULT_LEVEL",
    "LEVEL_MAX",
    "MASKS",
    "MAX_SIZE_MAX",
    "MIN_SIZE_MIN",
    "ChunkerParams",
    "check_params",
    "masks_for",
]

MIN_SIZE_MIN: Final = 64
AVG_SIZE_MIN: Final = 256
AVG_SIZE_MAX: Final = 4 * 1024 * 1024
MAX_SIZE_MAX: Final = 16 * 1024 * 1024
LEVEL_MAX: Final = 3
DEFAULT_LEVEL: Final = 1

# Index = number of mask bits; 0-4 are padding, 5 and 25 are reached only at level 3.
MASKS: Final[tuple[int, ...]] = (
    0,
    0,
    0,
    0,
    0,
    0x0000000001804110,
    0x0000000001803110,  # 64 B
    0x0000000018035100,  # 128 B
    0x0000001800035300,  # 256 B
    0x0000019000353000,  # 512 B
    0x0000590003530000,  # 1 KiB
    0x0000D90003530000,  # 2 KiB
    0x0000D90103530000,  # 4 KiB
    0x0000D90303530000,  # 8 KiB
    0x0000D90313530000,  # 16 KiB
    0x0000D90F03530000,  # 32 KiB
    0x0000D90303537000,  # 64 KiB
    0x0000D90703537000,  # 128 KiB
    0x0000D90707537000,  # 256 KiB
    0x0000D91707537000,  # 512 KiB
    0x0000D91747537000,  # 1 MiB
    0x0000D91767537000,  # 2 MiB
    0x0000D93767537000,  # 4 MiB
    0x0000D93777537000,  # 8 MiB
    0x0000D93777577000,  # 16 MiB
    0x0000DB3777577000,
)


def check_params(min_size: int, avg_size: int, max_size: int, level: int) -> None:
    """Raise ValueError unless the parameters are valid (same rules as the C extension).

    Rules: level 0-3; avg_size a power of two from 256 B to 4 MiB; min_size even, at
    least 64 and below avg_size (even because the two-bytes-per-step scan starts at an
    even offset: an odd minimum could yield a chunk one byte short of it); max_size above
    avg_size and at most 16 MiB.
    """
    if not 0 <= level <= LEVEL_MAX:
        raise ValueError(f"level must be 0, 1, 2 or 3, got {level}")
    if not AVG_SIZE_MIN <= avg_size <= AVG_SIZE_MAX or avg_size & (avg_size - 1):
        raise ValueError(
            f"avg_size must be a power of two from {AVG_SIZE_MIN} to {AVG_SIZE_MAX}, got {avg_size}"
        )
    if not MIN_SIZE_MIN <= min_size < avg_size or min_size % 2:
        raise ValueError(
            f"min_size must be even, at least {MIN_SIZE_MIN} and below avg_size, got {min_size}"
        )
    if not avg_size < max_size <= MAX_SIZE_MAX:
        raise ValueError(
            f"max_size must be above avg_size and at most {MAX_SIZE_MAX}, got {max_size}"
        )


def masks_for(avg_size: int, level: int) -> tuple[int, int]:
    """Return ``(mask_s, mask_l)``: the masks used before and from `avg_size` on."""
    bits = avg_size.bit_length() - 1
    return MASKS[bits + level], MASKS[bits - level]


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    """Chunk size bounds and normalization level of a FastCDC 2020 chunker.

    Every chunk is between `min_size` and `max_size` bytes, except the last chunk of a
    stream, which may be shorter. The mean is roughly ``min_size + avg_size``: FastCDC
    starts looking for a cut point only after `min_size` bytes.
    """

    min_size: int
    avg_size: int
    max_size: int
    level: int = DEFAULT_LEVEL

    def __post_init__(self) -> None:
        for name in ("min_size", "avg_size", "max_size", "level"):
            value = getattr(self, name)
            if type(value) is not int:
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        check_params(self.min_size, self.avg_size, self.max_size, self.level)

    @classmethod
    def for_average(cls, avg_size: int, level: int = DEFAULT_LEVEL) -> ChunkerParams:
        """Common practice: ``min = avg / 4``, ``max = avg * 4``."""
        return cls(avg_size // 4, avg_size, avg_size * 4, level)

    @property
    def masks(self) -> tuple[int, int]:
        """``(mask_s, mask_l)`` for these parameters."""
        return masks_for(self.avg_size, self.level)

    def as_args(self) -> tuple[int, int, int, int]:
        """``(min_size, avg_size, max_size, level)`` in the order `cut`/`cuts` take them."""
        return self.min_size, self.avg_size, self.max_size, self.level
