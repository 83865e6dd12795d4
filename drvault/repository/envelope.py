"""The sealed-document envelope shared by index files, snapshots and drill records.

    offset  size  field
    0       4     magic: b"DRVI" (index), b"DRVS" (snapshot) or b"DRVD" (drill record)
    4       1     envelope version = 1
    5       3     reserved, zero
    8       16    salt (random)
    24      4     pack count P, u32 little-endian
    28      32*P  pack names (SHA-256 of each pack), ascending: the keyless part
    28+32P  rest  sealed body: AEAD(subkey, nonce = 12 zero bytes, zstd(body),
                                   aad = bytes 0..28+32P)

subkey = suite.derive(master.enc, label, salt) with label b"index", b"snapshot" or b"drill" (a
drill record has an empty pack list, see ``drvault.drillrecord``); the salt makes
every document's key unique, so the fixed nonce is never reused under one key. The pack list is
readable without any key (replication plans with it) and authenticated by the AEAD: nobody
without the key can change it unnoticed. The file's name is the SHA-256 of all its bytes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import zstandard

from drvault.repository.crypto import AuthenticationFailed
from drvault.repository.suite import Suite

VERSION = 1
HEADER = struct.Struct("<4sB3x16sI")
NONCE = bytes(12)
INDEX_MAGIC = b"DRVI"
SNAPSHOT_MAGIC = b"DRVS"
DRILL_MAGIC = b"DRVD"
LABELS = {INDEX_MAGIC: b"index", SNAPSHOT_MAGIC: b"snapshot", DRILL_MAGIC: b"drill"}


class MalformedEnvelope(Exception):
    pass


@dataclass(frozen=True)
class Envelope:
    """The keyless view of a sealed document."""

    magic: bytes
    salt: bytes
    packs: tuple[bytes, ...]
    aad: bytes
    sealed: bytes


def seal(magic: bytes, suite: Suite, enc_key: bytes, packs: list[bytes], body: bytes) -> bytes:
    salt = os.urandom(16)
    ordered = sorted(set(packs))
    head = HEADER.pack(magic, VERSION, salt, len(ordered)) + b"".join(ordered)
    cipher = suite.cipher_for(enc_key, LABELS[magic], salt)
    return head + cipher.seal(NONCE, zstandard.compress(body, 3), head)


def parse(raw: bytes, magic: bytes) -> Envelope:
    """Split a document into its keyless parts; raises MalformedEnvelope."""
    if len(raw) < HEADER.size:
        raise MalformedEnvelope("truncated header")
    got_magic, version, salt, count = HEADER.unpack_from(raw)
    if got_magic != magic:
        raise MalformedEnvelope(f"bad magic {got_magic!r}")
    if version != VERSION:
        raise MalformedEnvelope(f"unsupported version {version}")
    end = HEADER.size + 32 * count
    if len(raw) < end + 16:
        raise MalformedEnvelope("truncated")
    packs = tuple(raw[i : i + 32] for i in range(HEADER.size, end, 32))
    return Envelope(got_magic, salt, packs, raw[:end], raw[end:])


def open_body(env: Envelope, suite: Suite, enc_key: bytes, max_size: int = 1 << 31) -> bytes:
    """Decrypt and decompress the body; raises MalformedEnvelope."""
    cipher = suite.cipher_for(enc_key, LABELS[env.magic], env.salt)
    try:
        compressed = cipher.open(NONCE, env.sealed, env.aad)
    except AuthenticationFailed as exc:
        raise MalformedEnvelope(
            "authentication failed (corrupt, or another repository's key)"
        ) from exc
    try:
        # max_output_size only limits frames that do not declare their size: check it here
        declared = zstandard.get_frame_parameters(compressed).content_size
        if declared != zstandard.CONTENTSIZE_UNKNOWN and declared > max_size:
            raise MalformedEnvelope(f"body of {declared} bytes exceeds the {max_size}-byte limit")
        return zstandard.ZstdDecompressor().decompress(compressed, max_output_size=max_size)
    except zstandard.ZstdError as exc:
        raise MalformedEnvelope(f"body does not decompress: {exc}") from exc
