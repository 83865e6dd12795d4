"""Unlock a repository: read its key slots and find the one the password opens.

scrypt is most of every command's start-up (0.34-0.42 s on the benchmark machine), and it
releases the GIL. :class:`Unlock` reads the slots and derives the first slot's key in a thread
started the moment it is made, so a command can import the rest of drvault meanwhile (the
repository code, zstandard, the cryptography package: 0.15-0.2 s on a cold page cache) on the
other core instead of before it. This module and :mod:`drvault.repository.keys` import nothing
heavy, so that the thread starts early; ``drvault.cli.open_repo`` is the caller that does the
overlapping. The slots' cipher names are checked after the derivation (that check imports the
cipher table, which the main thread has imported by then). Damaged slots are reported in the
order they are listed, as before.

Errors keep their order: one raised while reading the slots is kept and raised by
:meth:`Unlock.result`, so a missing or unreadable config (read by ``Repository.open`` in
between) is still the error a user sees first. A slot that cannot be derived in the thread
(malformed cost parameters) is derived again by :meth:`Unlock.result`, which reports it as
before.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from drvault.errors import IntegrityError, PermanentError, WrongPasswordError
from drvault.repository import layout
from drvault.repository.keys import (
    KeySlot,
    MalformedKeySlot,
    MasterKey,
    check_cipher,
    parse_slot_fields,
)

if TYPE_CHECKING:
    from drvault.transport.base import Backend


class Unlock:
    """A repository's key slots, read and parsed, and the first one's key derived, by a
    thread started when this is made; :meth:`result` waits for it and opens the key."""

    def __init__(self, backend: Backend, password: bytes) -> None:
        self._backend = backend
        self._password = password
        self._listed: list[KeySlot | tuple[str, str]] = []  # a slot, or (name, why damaged)
        self._error: Exception | None = None  # raised by result()
        self._derived: tuple[KeySlot, bytes] | None = None  # the first slot and its key
        self._thread = threading.Thread(target=self._work, name="drvault-unlock", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        backend = self._backend
        try:
            for info in backend.list(layout.KEYS):
                try:
                    self._listed.append(parse_slot_fields(info.name, backend.get(info.name)))
                except MalformedKeySlot as exc:
                    self._listed.append((info.name, str(exc)))
                except PermanentError as exc:  # transient errors propagate: not damage
                    self._listed.append((info.name, str(exc).removeprefix(f"{info.name}: ")))
        except Exception as exc:  # raised by result(), after the config's own errors
            self._error = exc
            return
        first = next((s for s in self._listed if isinstance(s, KeySlot)), None)
        if first is not None:
            # on failure, result() derives it again and reports the slot as malformed
            with contextlib.suppress(ValueError, KeyError, MemoryError):
                self._derived = first, first.derive(self._password)

    def result(self) -> tuple[MasterKey, str]:
        """(master key, slot ID) of the first slot the password opens; waits for the
        thread. Raises WrongPasswordError, or IntegrityError when no intact slot opens."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        slots: list[KeySlot] = []
        damaged: list[tuple[str, str]] = []
        for listed in self._listed:
            if isinstance(listed, KeySlot):
                try:
                    check_cipher(listed)
                    slots.append(listed)
                except MalformedKeySlot as exc:
                    damaged.append((listed.name, str(exc)))
            else:
                damaged.append(listed)
        for slot in slots:
            kek = self._derived[1] if self._derived and self._derived[0] is slot else None
            try:
                master = slot.unwrap(self._password, kek)
            except (ValueError, KeyError) as exc:
                damaged.append((slot.name, f"malformed ({exc})"))
                continue
            if master is not None:
                return master, slot.id
        if damaged:
            name, reason = damaged[0]
            raise IntegrityError(name, f"{reason}; no intact key slot opens with this password")
        if not slots:
            raise IntegrityError(layout.KEYS, "no key slots: the repository cannot be opened")
        raise WrongPasswordError(f"wrong password: none of {len(slots)} key slot(s) opens with it")
