"""Known-answer self-test of the loaded chunker, cheap enough to run at every start-up.

Checks the two gear derivations (format constants) and the cut points of the loaded
implementation on a small embedded vector at every normalization level, so a broken
build or a changed constant fails at once instead of silently changing chunk
boundaries. The expected offsets come from the reference behaviour (fastcdc crate
v2020; equal to the pyfastcdc package on the same input).
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

from drvault.chunker import backend
from drvault.chunker.gear import canonical_gear, gear_entries, keyed_gear

__all__ = ["SelfTestError", "selftest", "selftest_data"]

_CANONICAL_FIRST: Final = (0x3B5D3C7D207E37DC, 0x784D68BA91123086, 0xCD52880F882E7298)
_CANONICAL_LAST: Final = 0xAABD2B2A451504E1
# SHA-256 of the 256 entries packed as big-endian uint64.
_CANONICAL_DIGEST: Final = "9df0a720752a7d211fdebaf39bed01610983756fc340a1cfef41052b7356ae73"
_KEYED_SECRET: Final = bytes(range(32))
_KEYED_DIGEST: Final = "320113d78f19887b351e8f8f20d05cb5d9e1d123b320028cb501f28ce9251ef9"

_SIZES: Final = (64, 256, 1024)  # min, avg, max
# level -> chunk end offsets of selftest_data() with the canonical table.
_CANONICAL_CUTS: Final[dict[int, tuple[int, ...]]] = {
    0: (228, 749, 1339, 2363, 2437, 2511, 2585, 2659, 2733, 2807, 2881, 2955, 3029,
        3103, 3177, 3251, 3325, 3399, 3473, 3547, 3621, 3695, 3769, 3843, 3917, 3991,
        4065, 4175, 4454, 4529, 4702, 5092, 5331, 5632),
    1: (389, 622, 762, 1036, 2060, 3084, 4108, 4702, 5056, 5206, 5478, 5632),
    2: (272, 535, 791, 1113, 1293, 1549, 2573, 3597, 4201, 4462, 4740, 5009, 5331, 5628,
        5632),
    3: (272, 528, 789, 1098, 1356, 2380, 3404, 4110, 4373, 4629, 4905, 5171, 5486, 5632),
}  # fmt: skip
# Level 1 with keyed_gear(bytes(range(32))).
_KEYED_CUTS: Final = (79, 317, 492, 740, 1102, 1516, 2540, 3564, 4174, 4780, 4892, 5013,
                      5403, 5632)  # fmt: skip


class SelfTestError(RuntimeError):
    """The chunker does not reproduce its known answers: do not write with it."""


def selftest_data() -> bytes:
    """The 5632-byte test vector: 1536 pseudo-random bytes, 2560 zeros, 1536 more.

    The pseudo-random bytes are SHA-256(b"drvault chunker selftest" + counter) for a
    4-byte big-endian counter 0..95, concatenated; the zeros exercise max-size cuts.
    """
    stream = b"".join(
        hashlib.sha256(b"drvault chunker selftest" + i.to_bytes(4, "big")).digest()
        for i in range(96)
    )
    return stream[:1536] + bytes(2560) + stream[1536:]


def _digest(gear: bytes) -> str:
    return hashlib.sha256(struct.pack(">256Q", *gear_entries(gear))).hexdigest()


def _check(what: str, got: object, want: object) -> None:
    if got != want:
        raise SelfTestError(
            f"chunker self-test failed ({backend.IMPLEMENTATION}): {what}: "
            f"got {got!r}, expected {want!r}"
        )


def selftest() -> None:
    """Run the known-answer checks against the loaded implementation.

    Raises SelfTestError on any mismatch. Takes about a millisecond with the C extension
    and a few tens of milliseconds with the pure-Python fallback.
    """
    canonical = canonical_gear()
    entries = gear_entries(canonical)
    _check("canonical gear first entries", entries[:3], _CANONICAL_FIRST)
    _check("canonical gear last entry", entries[255], _CANONICAL_LAST)
    _check("canonical gear digest", _digest(canonical), _CANONICAL_DIGEST)
    keyed = keyed_gear(_KEYED_SECRET)
    _check("keyed gear digest", _digest(keyed), _KEYED_DIGEST)

    data = selftest_data()
    for level, want in _CANONICAL_CUTS.items():
        got = backend.cuts(data, canonical, *_SIZES, level, True)
        _check(f"cut points at level {level}", tuple(got), want)
        _check(f"first cut at level {level}", backend.cut(data, canonical, *_SIZES, level), want[0])
    got = backend.cuts(data, keyed, *_SIZES, 1, True)
    _check("keyed cut points", tuple(got), _KEYED_CUTS)
