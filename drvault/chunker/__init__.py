"""Content-defined chunking: FastCDC 2020 (Xia et al., IEEE TPDS 2020).

Concepts:

- `ChunkerParams`: min / avg / max chunk size and normalization level (module `params`).
- gear table: 256 random 64-bit values; `canonical_gear()` reproduces published cut
  points, `keyed_gear(secret)` derives one from a repository secret (module `gear`).
- `Chunker`: params plus gear; cuts in-memory buffers and streams (module `stream`).
- implementation: the C extension `_fastcdc` or the pure-Python `fallback`, chosen by
  ``DRVAULT_CHUNKER`` (unset, ``native`` or ``python``; module `backend`). `IMPLEMENTATION`
  says which is loaded; `selftest()` checks it against known answers (module
  `known_answers`).

Example::

    chunker = Chunker.keyed(ChunkerParams.for_average(1 << 20), secret)
    with open(path, "rb") as f:
        for chunk in chunker.chunk_file(f):
            ...
"""

from drvault.chunker.backend import IMPLEMENTATION
from drvault.chunker.gear import canonical_gear, keyed_gear
from drvault.chunker.known_answers import SelfTestError, selftest
from drvault.chunker.params import ChunkerParams
from drvault.chunker.stream import Chunker, Readable

__all__ = [
    "IMPLEMENTATION",
    "Chunker",
    "ChunkerParams",
    "Readable",
    "SelfTestError",
    "canonical_gear",
    "keyed_gear",
    "selftest",
]
