"""The repository config: format version, crypto suite, compression, chunker, pack size.

Stored as ``config``, UTF-8 JSON: {"body": {...}, "sha256": hex, "mac": hex}. ``sha256`` is the
SHA-256 of the canonical body encoding (keys sorted, no spaces), checkable without a key;
``mac`` is the suite's keyed hash under the master ``mac`` key of b"drvault config v1\\0" +
canonical body, checked once the repository is unlocked, so nobody without the key can change
the chunker or suite of a repository unnoticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from drvault.chunker import ChunkerParams
from drvault.repository.crypto import sha256
from drvault.repository.suite import Suite

FORMAT_VERSION = 1
MiB = 1 << 20


class MalformedConfig(Exception):
    pass


@dataclass(frozen=True)
class ChunkerSettings:
    gear: str = "keyed"  # "keyed" (from the master chunker secret) or "canonical"
    min_size: int = 16 * 1024
    avg_size: int = 64 * 1024
    max_size: int = 256 * 1024
    level: int = 1

    @classmethod
    def for_average(cls, avg_size: int, *, canonical: bool = False) -> ChunkerSettings:
        """min = avg/4, max = 4 avg, level 1; ``ValueError`` for sizes the chunker refuses."""
        p = ChunkerParams.for_average(avg_size)
        gear = "canonical" if canonical else "keyed"
        return cls(gear, p.min_size, p.avg_size, p.max_size, p.level)


@dataclass(frozen=True)
class RepoConfig:
    repository_id: bytes
    suite: Suite
    chunker: ChunkerSettings
    compression: str = "zstd"
    compression_level: int = 3
    pack_size: int = 16 * MiB
    version: int = FORMAT_VERSION

    def body(self) -> dict[str, Any]:
        c = self.chunker
        return {
            "version": self.version,
            "repository_id": self.repository_id.hex(),
            "suite": self.suite.name,
            "cipher": self.suite.cipher,
            "id_hash": self.suite.id_hash,
            "compression": self.compression,
            "compression_level": self.compression_level,
            "pack_size": self.pack_size,
            "chunker": {
                "algorithm": "fastcdc2020",
                "gear": c.gear,
                "min_size": c.min_size,
                "avg_size": c.avg_size,
                "max_size": c.max_size,
                "level": c.level,
            },
        }


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def mac_input(body: dict[str, Any]) -> bytes:
    return b"drvault config v1\0" + canonical(body)


def encode(config: RepoConfig, mac: bytes) -> bytes:
    body = config.body()
    doc = {"body": body, "sha256": sha256(canonical(body)).hex(), "mac": mac.hex()}
    return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"


def decode(raw: bytes) -> tuple[RepoConfig, dict[str, Any], bytes]:
    """Parse and check the keyless checksum: (config, body, mac). Raises MalformedConfig."""
    try:
        doc = json.loads(raw)
        body = doc["body"]
        if sha256(canonical(body)).hex() != doc["sha256"]:
            raise MalformedConfig("checksum mismatch")
        if body["version"] != FORMAT_VERSION:
            raise MalformedConfig(f"unsupported format version {body['version']}")
        ch = body["chunker"]
        if ch["algorithm"] != "fastcdc2020":
            raise MalformedConfig(f"unknown chunker {ch['algorithm']!r}")
        config = RepoConfig(
            repository_id=bytes.fromhex(body["repository_id"]),
            suite=Suite.choose(body["suite"], body["cipher"], body["id_hash"]),
            chunker=ChunkerSettings(
                ch["gear"], ch["min_size"], ch["avg_size"], ch["max_size"], ch["level"]
            ),
            compression=body["compression"],
            compression_level=body["compression_level"],
            pack_size=body["pack_size"],
            version=body["version"],
        )
        return config, body, bytes.fromhex(doc["mac"])
    except MalformedConfig:
        raise
    except Exception as exc:  # any shape error in a damaged file
        raise MalformedConfig(f"malformed ({type(exc).__name__}: {exc})") from exc
