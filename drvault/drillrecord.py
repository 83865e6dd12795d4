"""Drill records: the outcome of one restore drill, kept in the repository it was drilled from.

Object: ``drills/<sha256 of its bytes>``, a sealed envelope (``repository/envelope.py``) with
magic ``DRVD``, label ``drill`` and an empty pack list, whose body is the record as canonical
JSON (sorted keys, no whitespace). Writing one needs the key but no lock: it is a new
content-addressed object, never rewritten, and nothing else refers to it. A record says when,
by whom, from which center and snapshot, how long each phase took, and whether the drill
passed; ``docs/format.md`` ("Drill records") lists every field.

Readers verify each record against its name and decrypt it; a damaged record is collected as
an :class:`~drvault.errors.IntegrityError` (``status`` ignores it, ``report`` names it), never
raised, so one bad object cannot hide every other drill.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from drvault.errors import IntegrityError, NotFoundError
from drvault.repository import envelope, layout
from drvault.repository.crypto import sha256
from drvault.repository.fanout import fan_out
from drvault.repository.repository import Repository

VERSION = 1
MAX_BODY = 1 << 20  # a record is a few hundred bytes; anything near this is not one
FIELDS = frozenset(
    {
        "version",
        "set",
        "center",
        "center_role",
        "snapshot",
        "snapshot_time",
        "started",
        "finished",
        "who",
        "target",
        "scratch",
        "passed",
        "reasons",
        "rto_seconds",
        "thaw_seconds",
        "ttfb_seconds",
        "restore_seconds",
        "verify_seconds",
        "total_seconds",
        "files",
        "bytes",
        "throughput_bps",
        "verified_files",
        "mismatched_files",
        "mismatches",
        "live",
        "drvault_version",
    }
)
ROLES = ("production", "same-city", "remote", "")
_NUMBERS = (
    "snapshot_time",
    "started",
    "finished",
    "thaw_seconds",
    "restore_seconds",
    "verify_seconds",
    "total_seconds",
    "throughput_bps",
)
_OPTIONAL_NUMBERS = ("rto_seconds", "ttfb_seconds")
_INTEGERS = ("files", "bytes", "verified_files", "mismatched_files")
_STRINGS = ("set", "center", "center_role", "who", "target", "drvault_version")


def encode(record: Mapping[str, Any]) -> bytes:
    """The canonical JSON body of ``record``; a record that breaks the schema is a bug."""
    problem = _problem(record)
    if problem:
        raise ValueError(f"not a drill record: {problem}")
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def seal(repo: Repository, record: Mapping[str, Any]) -> tuple[str, bytes]:
    """(object path, bytes) of the record sealed with the repository's key."""
    raw = envelope.seal(envelope.DRILL_MAGIC, repo.suite, repo.master.enc, [], encode(record))
    return layout.drill_path(sha256(raw)), raw


def write_drill(repo: Repository, record: Mapping[str, Any]) -> str:
    """Store the record at the repository (no lock: a new content-addressed object)."""
    path, raw = seal(repo, record)
    repo.backend.put(path, raw)
    return path


def open_drill(repo: Repository, path: str, raw: bytes) -> dict[str, Any]:
    """The record stored as ``raw`` at ``path``; IntegrityError when it is not one."""
    want = layout.parse_hex_name(path)
    if want is None or sha256(raw) != want:
        raise IntegrityError(path, "content does not match its name (SHA-256 mismatch)")
    try:
        env = envelope.parse(raw, envelope.DRILL_MAGIC)
        if env.packs:
            raise envelope.MalformedEnvelope("a drill record lists no packs")
        body = envelope.open_body(env, repo.suite, repo.master.enc, max_size=MAX_BODY)
    except envelope.MalformedEnvelope as exc:
        raise IntegrityError(path, str(exc)) from exc
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise IntegrityError(path, f"body is not JSON: {exc}") from exc
    problem = _problem(doc)
    if problem:
        raise IntegrityError(path, f"not a drill record: {problem}")
    return dict(doc)


def read_drills(
    repo: Repository, errors: list[IntegrityError] | None = None
) -> list[dict[str, Any]]:
    """Every intact drill record of the repository, oldest (``finished``) first.

    Damaged records go to ``errors`` when given and are skipped either way; a record deleted
    between listing and reading is skipped; storage errors (an outage) propagate."""
    names = [
        info.name
        for info in repo.backend.list(layout.DRILLS)
        if layout.parse_hex_name(info.name) is not None
    ]

    def load(path: str) -> dict[str, Any]:
        return open_drill(repo, path, repo.backend.get(path))

    out: list[tuple[float, str, dict[str, Any]]] = []
    for path, record, exc in fan_out(load, names, repo.parallel_reads):
        if record is not None:
            out.append((float(record["finished"]), path, record))
        elif isinstance(exc, IntegrityError):
            if errors is not None:
                errors.append(exc)
        elif isinstance(exc, NotFoundError):
            continue
        elif exc is not None:
            raise exc
    out.sort(key=lambda item: (item[0], item[1]))
    return [record for _, _, record in out]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _problem(doc: object) -> str | None:
    """What makes ``doc`` not a version 1 drill record, or None."""
    if not isinstance(doc, Mapping):
        return "not an object"
    if doc.get("version") != VERSION:
        return f"unknown version {doc.get('version')!r}"
    keys = set(doc)
    if keys != FIELDS:
        missing, extra = sorted(FIELDS - keys), sorted(keys - FIELDS)
        return f"missing {missing}, unexpected {extra}" if extra else f"missing {missing}"
    wrong = [k for k in _NUMBERS if not _is_number(doc[k])]
    wrong += [k for k in _OPTIONAL_NUMBERS if doc[k] is not None and not _is_number(doc[k])]
    wrong += [k for k in _INTEGERS if not isinstance(doc[k], int) or isinstance(doc[k], bool)]
    wrong += [k for k in _STRINGS if not isinstance(doc[k], str)]
    wrong += [k for k in ("passed", "scratch") if not isinstance(doc[k], bool)]
    wrong += [
        k
        for k in ("reasons", "mismatches")
        if not isinstance(doc[k], list) or not all(isinstance(i, str) for i in doc[k])
    ]
    snapshot = doc["snapshot"]
    if not isinstance(snapshot, str) or len(snapshot) != 64 or not _hex(snapshot):
        wrong.append("snapshot")
    if doc["center_role"] not in ROLES:
        wrong.append("center_role")
    live = doc["live"]
    if live is not None and (
        not isinstance(live, Mapping)
        or set(live) != {"compared", "differ", "missing", "examples"}
        or not all(isinstance(live[k], int) for k in ("compared", "differ", "missing"))
        or not isinstance(live["examples"], list)
    ):
        wrong.append("live")
    return f"bad {', '.join(wrong)}" if wrong else None


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
