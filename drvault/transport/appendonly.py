"""Append-only: a backend wrapper through which drvault never deletes or overwrites.

For centers whose store has no Object Lock (an SFTP server, a local disk), the operator can
declare the copy append-only: every put becomes a create-if-absent, and deletes are refused,
so forget, prune and a compromised production host's drvault cannot remove what landed there.
Lock objects (``locks/``) are the one exception: they coordinate writers and hold no data.
This is drvault's own discipline, not the server's; ``status`` reports it as such.
"""

from __future__ import annotations

from drvault.errors import AlreadyExistsError, PermanentError
from drvault.repository import layout
from drvault.transport.stack import Wrapper


class AppendOnlyError(PermanentError):
    """A delete or overwrite refused at an append-only center."""


class AppendOnlyBackend(Wrapper):
    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        if name.startswith(layout.LOCKS):
            self.inner.put(name, data, exclusive=exclusive, storage_class=storage_class)
            return
        try:
            self.inner.put(name, data, exclusive=True, storage_class=storage_class)
        except AlreadyExistsError:
            if exclusive or layout.parse_hex_name(name) is None:
                raise
            # A content-addressed name already there holds these bytes (or is damaged, which
            # check reports): nothing to write, and nothing is overwritten.

    def delete(self, name: str) -> None:
        if name.startswith(layout.LOCKS):
            self.inner.delete(name)
            return
        raise AppendOnlyError(f"{name}: not deleted: {self.location} is append-only")
