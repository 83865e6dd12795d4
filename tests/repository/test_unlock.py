"""Unlocking in the background: the first slot's key is derived by a thread started at once,
used once, and errors keep the order they had when everything ran in sequence."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHEAP_KDF, PASSWORD, MakeRepo

from drvault.errors import (
    IntegrityError,
    RepositoryNotFoundError,
    TransientError,
    WrongPasswordError,
)
from drvault.repository import keys
from drvault.repository.crypto import sha256
from drvault.repository.keys import MasterKey, wrap
from drvault.repository.repository import Repository
from drvault.repository.unlock import Unlock
from drvault.transport import LocalBackend
from drvault.transport.base import ObjectInfo

OTHER = b"another operator's password"


class Calls:
    """The key slots' scrypt, counted, with the thread of each call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: list[threading.Thread] = []
        self.started = threading.Event()
        real = keys.scrypt

        def scrypt(*args: Any, **kwargs: Any) -> bytes:
            self.threads.append(threading.current_thread())
            self.started.set()
            return real(*args, **kwargs)

        monkeypatch.setattr(keys, "scrypt", scrypt)


def test_the_first_slot_is_derived_in_a_thread_before_result_is_asked(
    make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = make_repo()
    calls = Calls(monkeypatch)
    unlock = Unlock(LocalBackend(tmp_path / "repo"), PASSWORD)
    assert calls.started.wait(20), "no derivation began before result()"
    assert calls.threads[0] is not threading.main_thread()
    assert unlock.result() == (created.master, created.slot_id)
    assert len(calls.threads) == 1  # the thread's key was used, not derived again


def test_a_later_slot_still_opens(
    make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = make_repo()
    other_id = created.add_key(OTHER, CHEAP_KDF)
    calls = Calls(monkeypatch)
    opened = Repository.open(LocalBackend(tmp_path / "repo"), OTHER)
    assert (opened.master, opened.slot_id) == (created.master, other_id)
    listed = [info.name for info in LocalBackend(tmp_path / "repo").list("keys/")]
    if listed[0] == f"keys/{other_id}":  # the slot that opens came first: the thread's key
        assert len(calls.threads) == 1
    else:  # the first slot in the thread, then the one that opens
        assert len(calls.threads) == 2 and calls.threads[1] is threading.main_thread()
    with pytest.raises(WrongPasswordError, match="none of 2 key slot"):
        Repository.open(LocalBackend(tmp_path / "repo"), b"nobody's")


def _put_slot_with_cipher(repo_dir: Path, master: MasterKey, cipher: str) -> str:
    """A slot intact but for an unknown cipher name; its object name."""
    _name, raw = wrap(master, PASSWORD, "aes-256-gcm", CHEAP_KDF)
    doc = json.loads(raw)
    doc["cipher"] = cipher
    bad = json.dumps(doc).encode()
    name = "keys/" + sha256(bad).hex()
    (repo_dir / name).write_bytes(bad)
    return name


def test_an_unknown_cipher_is_damage_reported_in_list_order(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    created = make_repo()
    bad = _put_slot_with_cipher(tmp_path / "repo", created.master, "rot13")
    opened = Repository.open(LocalBackend(tmp_path / "repo"), PASSWORD)
    assert opened.slot_id == created.slot_id  # the intact slot opens, wherever it is listed
    # a flipped byte in the intact slot: both are damaged now, and the first listed is named
    slot = tmp_path / "repo" / "keys" / created.slot_id
    raw = bytearray(slot.read_bytes())
    raw[3] ^= 1
    slot.write_bytes(raw)
    first = next(iter(LocalBackend(tmp_path / "repo").list("keys/"))).name  # as listed
    with pytest.raises(IntegrityError) as info:
        Repository.open(LocalBackend(tmp_path / "repo"), PASSWORD)
    assert info.value.name == first
    assert ("unknown cipher" in str(info.value)) == (first == bad)


class Outage(LocalBackend):
    """Listing keys fails; with ``no_config`` the config is missing too."""

    def __init__(self, root: Path, *, no_config: bool = False) -> None:
        super().__init__(root)
        self.no_config = no_config

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if prefix.startswith("keys"):
            raise TransientError("keys/: connection reset")
        return super().list(prefix)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if self.no_config and name == "config":
            raise RepositoryNotFoundError("no repository here")
        return super().get(name, offset, length)


def test_errors_keep_their_order(make_repo: MakeRepo, tmp_path: Path) -> None:
    make_repo()
    with pytest.raises(TransientError, match="connection reset"):
        Repository.open(Outage(tmp_path / "repo"), PASSWORD)
    # the config is read after the slots' thread began, and its error still comes first
    with pytest.raises(RepositoryNotFoundError):
        Repository.open(Outage(tmp_path / "repo", no_config=True), PASSWORD)
