"""The append-only wrapper: nothing is deleted or overwritten through it, except lock objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from drvault.errors import AlreadyExistsError
from drvault.repository.crypto import sha256
from drvault.transport import LocalBackend
from drvault.transport.appendonly import AppendOnlyBackend, AppendOnlyError


@pytest.fixture
def pair(tmp_path: Path) -> tuple[LocalBackend, AppendOnlyBackend]:
    raw = LocalBackend(tmp_path / "repo")
    raw.create()
    return raw, AppendOnlyBackend(raw)


def test_deletes_are_refused_and_the_object_stays(
    pair: tuple[LocalBackend, AppendOnlyBackend],
) -> None:
    raw, guarded = pair
    data = b"pack bytes"
    name = f"data/{sha256(data).hex()[:2]}/{sha256(data).hex()}"
    guarded.put(name, data)
    with pytest.raises(AppendOnlyError, match="append-only"):
        guarded.delete(name)
    assert raw.get(name) == data


def test_a_content_addressed_rewrite_is_a_no_op_never_an_overwrite(
    pair: tuple[LocalBackend, AppendOnlyBackend],
) -> None:
    raw, guarded = pair
    name = "index/" + sha256(b"original").hex()
    raw.put(name, b"original")
    guarded.put(name, b"anything else")  # same name: nothing is written
    assert raw.get(name) == b"original"


def test_other_names_are_never_overwritten(pair: tuple[LocalBackend, AppendOnlyBackend]) -> None:
    raw, guarded = pair
    raw.put("config", b"one")
    with pytest.raises(AlreadyExistsError):
        guarded.put("config", b"two")
    assert raw.get("config") == b"one"


def test_lock_objects_may_be_rewritten_and_deleted(
    pair: tuple[LocalBackend, AppendOnlyBackend],
) -> None:
    raw, guarded = pair
    guarded.put("locks/ab", b"1", exclusive=True)
    guarded.put("locks/ab", b"2")
    assert raw.get("locks/ab") == b"2"
    guarded.delete("locks/ab")
    assert [i.name for i in raw.list("locks/")] == []
