"""Forwarding records: canonical bytes named by their hash, strict decoding, closure, garbage."""

from __future__ import annotations

from pathlib import Path

import pytest

from drvault.errors import IntegrityError
from drvault.repository import forward, layout
from drvault.repository.crypto import sha256
from drvault.transport import LocalBackend


def name(n: int) -> bytes:
    return bytes([n]) * 32


def test_a_record_is_canonical_json_named_by_its_hash(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    backend.create()
    moved = {name(1): (name(3), name(2), name(3)), name(4): ()}
    path = forward.write(backend, moved)
    assert path is not None
    raw = backend.get(path)
    assert path == layout.forward_path(sha256(raw))
    assert raw == (
        b'{"moved":{"'
        + name(1).hex().encode()
        + b'":["'
        + name(2).hex().encode()
        + b'","'
        + name(3).hex().encode()
        + b'"],"'
        + name(4).hex().encode()
        + b'":[]},"version":1}'
    )
    assert forward.decode(raw, path) == {name(1): (name(2), name(3)), name(4): ()}
    assert forward.write(backend, {}) is None  # nothing moved: no record


BAD = [
    b"not json",
    b"[]",
    b'{"version":2,"moved":{}}',
    b'{"version":1}',
    b'{"version":1,"moved":[]}',
    b'{"version":1,"moved":{"zz":[]}}',
    b'{"version":1,"moved":{"' + b"ab" * 32 + b'":"cd"}}',
    b'{"version":1,"moved":{"' + b"ab" * 32 + b'":["cd"]}}',
]


@pytest.mark.parametrize("raw", BAD)
def test_a_malformed_record_is_an_integrity_error(raw: bytes) -> None:
    path = layout.forward_path(sha256(raw))
    with pytest.raises(IntegrityError, match="not a forwarding record"):
        forward.decode(raw, path)


def test_a_record_not_matching_its_name_is_refused() -> None:
    raw = forward.encode({name(1): (name(2),)})
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        forward.decode(raw + b" ", layout.forward_path(sha256(raw)))


def test_closure_unions_records_and_follows_chains(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    backend.create()
    first = forward.write(backend, {name(1): (name(2),)})
    second = forward.write(backend, {name(1): (name(5),), name(2): (name(3),)})
    unrelated = forward.write(backend, {name(9): (name(8),)})
    backend.put(layout.FORWARD + "foreign-file", b"ignored")
    merged = forward.read_all(backend)
    assert set(merged.files) == {first, second, unrelated}
    assert merged.moved[name(1)] == (name(2), name(5))
    assert merged.closure([name(1)]) == {name(1), name(2), name(3), name(5)}
    assert merged.closure([name(7)]) == {name(7)}
    # A record is garbage once none of its old packs is reachable.
    assert merged.garbage({name(1), name(2), name(3), name(5)}) == [unrelated]
    assert merged.garbage(set()) == sorted([first, second, unrelated])  # type: ignore[type-var]


def test_a_damaged_record_raises_or_is_collected(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    backend.create()
    good = forward.write(backend, {name(1): (name(2),)})
    assert good is not None
    backend.put(layout.forward_path(bytes(32)), b"{}")
    with pytest.raises(IntegrityError):
        forward.read_all(backend)
    errors: list[IntegrityError] = []
    merged = forward.read_all(backend, errors=errors)
    assert list(merged.files) == [good] and len(errors) == 1
