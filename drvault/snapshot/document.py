"""The snapshot document: what a snapshot says about one backup run.

Encoded as canonical JSON (keys sorted) inside the snapshot envelope (repository/envelope.py):

    {"version": 1, "time": RFC 3339 UTC with nanoseconds, "time_ns": int,
     "hostname": str, "username": str, "paths": [PATH...], "excludes": [str...],
     "tags": [str...], "tree": hex root tree ID, "parent": hex snapshot ID or null,
     "backup_set": str or null, "program": "drvault X.Y.Z", "summary": {str: int}}

PATH is a JSON string when the path is valid UTF-8, else {"b64": base64 of the bytes}.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from drvault.errors import IntegrityError


def encode_path(path: bytes) -> str | dict[str, str]:
    try:
        return path.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(path).decode()}


def decode_path(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return base64.b64decode(value["b64"], validate=True)


def format_time(time_ns: int) -> str:
    secs, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


@dataclass(frozen=True)
class Snapshot:
    time_ns: int
    hostname: str
    username: str
    paths: tuple[bytes, ...]
    tree: bytes
    excludes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    parent: bytes | None = None
    backup_set: str | None = None
    program: str = ""
    summary: dict[str, int] = field(default_factory=dict)
    id: bytes = b""  # assigned from the object name, never stored inside
    packs: tuple[bytes, ...] = ()  # the keyless pack list, from the envelope

    @property
    def time(self) -> str:
        return format_time(self.time_ns)

    def encode(self) -> bytes:
        doc = {
            "version": 1,
            "time": self.time,
            "time_ns": self.time_ns,
            "hostname": self.hostname,
            "username": self.username,
            "paths": [encode_path(p) for p in self.paths],
            "excludes": list(self.excludes),
            "tags": list(self.tags),
            "tree": self.tree.hex(),
            "parent": self.parent.hex() if self.parent else None,
            "backup_set": self.backup_set,
            "program": self.program,
            "summary": self.summary,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes, snapshot_id: bytes, packs: tuple[bytes, ...]) -> Snapshot:
        try:
            doc = json.loads(data)
            if doc["version"] != 1:
                raise ValueError(f"unsupported snapshot version {doc['version']}")
            tree = bytes.fromhex(doc["tree"])
            if len(tree) != 32:
                raise ValueError("bad tree ID")
            return cls(
                time_ns=int(doc["time_ns"]),
                hostname=str(doc["hostname"]),
                username=str(doc["username"]),
                paths=tuple(decode_path(p) for p in doc["paths"]),
                tree=tree,
                excludes=tuple(doc.get("excludes", ())),
                tags=tuple(doc.get("tags", ())),
                parent=bytes.fromhex(doc["parent"]) if doc.get("parent") else None,
                backup_set=doc.get("backup_set"),
                program=str(doc.get("program", "")),
                summary={str(k): int(v) for k, v in doc.get("summary", {}).items()},
                id=snapshot_id,
                packs=packs,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"snapshots/{snapshot_id.hex()}", f"malformed document: {exc}"
            ) from exc
