"""Ordered, bounded parallel fetches: hide the round trip of a remote store.

``fan_out(fn, items, parallel)`` runs ``fn`` on up to ``parallel`` items at once and yields
``(item, result, error)`` in the order of ``items``; at most ``parallel + 1`` results are in
memory (``parallel`` running, one finished), so a listing of thousands of objects never loads
them all at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def fan_out(
    fn: Callable[[T], R], items: Iterable[T], parallel: int
) -> Iterator[tuple[T, R | None, Exception | None]]:
    """Each item with ``fn(item)`` or the exception it raised, in input order."""
    if parallel <= 1:
        for item in items:
            try:
                yield item, fn(item), None
            except Exception as exc:
                yield item, None, exc
        return
    window: deque[tuple[T, Future[R]]] = deque()

    def settle() -> tuple[T, R | None, Exception | None]:
        item, future = window.popleft()
        error = future.exception()
        if error is None:
            return item, future.result(), None
        if not isinstance(error, Exception):
            raise error
        return item, None, error

    with ThreadPoolExecutor(parallel, "drvault-fetch") as pool:
        try:
            for item in items:
                window.append((item, pool.submit(fn, item)))
                while len(window) > parallel or (window and window[0][1].done()):
                    yield settle()
            while window:
                yield settle()
        finally:
            for _item, future in window:
                future.cancel()
