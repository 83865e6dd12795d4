"""Choice of the cut-point implementation: the C extension or the pure-Python fallback.

Decided once, at import, by the environment variable ``DRVAULT_CHUNKER``:

- unset: the C extension `drvault.chunker._fastcdc` if it imports, else the fallback;
- ``native``: the C extension; ImportError if it is missing, so a broken build can
  never pass silently as a slow one;
- ``python``: the pure-Python fallback.

`IMPLEMENTATION` names the one loaded (``"native"`` or ``"python"``); `cut` and `cuts`
are its two functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["ENV_VAR", "IMPLEMENTATION", "IMPLEMENTATIONS", "CutFn", "CutsFn", "cut", "cuts"]

ENV_VAR: Final = "DRVAULT_CHUNKER"
IMPLEMENTATIONS: Final = ("native", "python")

CutFn = Callable[["Buffer", "Buffer", int, int, int, int], int]
CutsFn = Callable[["Buffer", "Buffer", int, int, int, int, bool], list[int]]


def _load() -> tuple[str, CutFn, CutsFn]:
    wanted = os.environ.get(ENV_VAR, "")
    if wanted not in ("", *IMPLEMENTATIONS):
        raise ImportError(
            f"{ENV_VAR}={wanted!r} is not a chunker implementation; "
            f"known: {', '.join(IMPLEMENTATIONS)}"
        )
    if wanted != "python":
        try:
            from drvault.chunker import _fastcdc
        except ImportError as exc:
            if wanted == "native":
                raise ImportError(
                    f"{ENV_VAR}=native but the C extension drvault.chunker._fastcdc "
                    f"is not importable ({exc}); build it with `pip install -e .`"
                ) from exc
        else:
            return "native", _fastcdc.cut, _fastcdc.cuts
    from drvault.chunker import fallback

    return "python", fallback.cut, fallback.cuts


_LOADED = _load()
IMPLEMENTATION: Final[str] = _LOADED[0]
cut: Final[CutFn] = _LOADED[1]
cuts: Final[CutsFn] = _LOADED[2]
