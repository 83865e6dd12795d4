"""Prove a storage target keeps the backend contract before a repository is put on it.

``probe()`` works in a scratch prefix of its own (``.drvault-probe-<random>/``) beside whatever
the target already holds, checks each promise of ``transport/base.py`` in turn (put and get,
ranged get, short read, list, atomic create-if-absent, delete), measures upload and download
throughput, and removes what it wrote. Each step's outcome is data, so the CLI can render it.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drvault.errors import AlreadyExistsError, BackendError, NotFoundError
from drvault.transport.base import Backend, ShortReadError


@dataclass(frozen=True, slots=True)
class ProbeStep:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass(slots=True)
class ProbeReport:
    location: str
    steps: list[ProbeStep] = field(default_factory=list)
    upload_mb_s: float | None = None
    download_mb_s: float | None = None

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


class _Failed(Exception):
    pass


def _expect(condition: bool, detail: str) -> None:
    if not condition:
        raise _Failed(detail)


def probe(
    backend: Backend,
    *,
    size: int = 32 << 20,
    objects: int = 4,
    clock: Callable[[], float] = time.perf_counter,
) -> ProbeReport:
    """Run every step against ``backend``; a failed step is recorded and the next one runs."""
    report = ProbeReport(backend.location)
    base = f".drvault-probe-{secrets.token_hex(6)}/"
    small = os.urandom(4096)
    payload = os.urandom(max(size // objects, 1))
    written: list[str] = []

    def step(name: str, action: Callable[[], str]) -> None:
        start = clock()
        try:
            detail = action()
            ok = True
        except _Failed as exc:
            detail, ok = str(exc), False
        except BackendError as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        report.steps.append(ProbeStep(name, ok, detail, clock() - start))

    def reachable() -> str:
        if not backend.exists():
            backend.create()
            return f"created {backend.location}"
        return f"{backend.location} exists"

    def put_get() -> str:
        backend.put(base + "small", small)
        written.append(base + "small")
        _expect(backend.get(base + "small") == small, "read back differs from what was written")
        info = backend.stat(base + "small")
        _expect(info.size == len(small), f"stat says {info.size} bytes, wrote {len(small)}")
        backend.put(base + "small", small[::-1])
        _expect(backend.get(base + "small") == small[::-1], "overwrite not visible")
        return "4 KiB written, read back, stat, overwritten"

    def ranged() -> str:
        whole = backend.get(base + "small")
        _expect(backend.get(base + "small", 1000, 96) == whole[1000:1096], "range 1000+96 differs")
        _expect(backend.get(base + "small", 4000) == whole[4000:], "tail from 4000 differs")
        try:
            backend.get(base + "small", 4090, 100)
        except ShortReadError:
            return "ranges exact; a range past the end is a short-read error"
        raise _Failed("a range past the end returned short data instead of an error")

    def missing() -> str:
        try:
            backend.get(base + "absent")
        except NotFoundError:
            return "missing object reported as not found"
        raise _Failed("get of a missing object did not fail")

    def atomic_create() -> str:
        name = base + "lock"
        backend.put(name, b"first", exclusive=True)
        written.append(name)
        try:
            backend.put(name, b"second", exclusive=True)
        except AlreadyExistsError:
            _expect(backend.get(name) == b"first", "refused create changed the object")
            return "second exclusive create refused, first content kept"
        raise _Failed("an exclusive create over an existing object succeeded")

    def upload() -> str:
        start = clock()
        for i in range(objects):
            backend.put(f"{base}bulk/{i:04d}", payload)
            written.append(f"{base}bulk/{i:04d}")
        seconds = max(clock() - start, 1e-9)
        report.upload_mb_s = len(payload) * objects / seconds / 1e6
        return f"{objects} x {len(payload) >> 10} KiB at {report.upload_mb_s:.1f} MB/s"

    def listing() -> str:
        names = [i.name for i in backend.list(base)]
        _expect(len(names) == len(set(names)), "list yielded a name twice")
        _expect(sorted(names) == sorted(set(written)), f"list gave {len(names)} names")
        sizes = {i.name: i.size for i in backend.list(base + "bulk/")}
        _expect(len(sizes) == objects, f"prefix list gave {len(sizes)} of {objects}")
        _expect(all(s == len(payload) for s in sizes.values()), "listed sizes differ")
        return f"{len(names)} objects listed once each, sizes right"

    def download() -> str:
        start = clock()
        for i in range(objects):
            _expect(backend.get(f"{base}bulk/{i:04d}") == payload, f"bulk/{i:04d} differs")
        seconds = max(clock() - start, 1e-9)
        report.download_mb_s = len(payload) * objects / seconds / 1e6
        return f"{objects} x {len(payload) >> 10} KiB at {report.download_mb_s:.1f} MB/s"

    def cleanup() -> str:
        for name in sorted(set(written)):
            backend.delete(name)
        left = [i.name for i in backend.list(base)]
        _expect(not left, f"{len(left)} objects left after delete")
        try:
            backend.delete(base + "small")
        except NotFoundError:
            return f"{len(set(written))} objects deleted; deleting a missing one is an error"
        raise _Failed("delete of a missing object did not fail")

    step("reach", reachable)
    if not report.ok:
        return report
    for name, action in (
        ("put/get", put_get),
        ("ranged get", ranged),
        ("not found", missing),
        ("atomic create", atomic_create),
        ("upload", upload),
        ("list", listing),
        ("download", download),
        ("delete", cleanup),
    ):
        step(name, action)
    return report
