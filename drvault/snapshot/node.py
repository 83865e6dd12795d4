"""One directory entry as backed up, and the rules for its name.

A :class:`Node` is a value: the backup service builds it from an ``lstat`` (see
``drvault.filesystem.capture``), fills in ``content`` or ``subtree`` once the data is stored,
and the restore service turns it back into a file-system entry. File names are ``bytes`` end to
end, so names that are not valid UTF-8 (GBK names from old file servers) round-trip exactly;
:func:`display_name` is the only place they become text, for humans.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from drvault.errors import UnsafePathError

ID_SIZE = 32
"""Length in bytes of a blob ID (``content`` items and ``subtree``)."""


class NodeType(enum.StrEnum):
    """The kind of a directory entry; the value is what the tree encoding stores."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    CHARDEV = "chardev"
    BLOCKDEV = "blockdev"
    SOCKET = "socket"


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """Metadata of one directory entry plus where its data lives in the repository.

    ``mode`` holds the permission bits only (``st_mode & 0o7777``); the file type is ``type``.
    ``size`` is meaningful for regular files only, ``rdev`` for devices only, ``link_target``
    for symlinks only, ``content`` (the file's chunk blob IDs, in order) for regular files only,
    ``subtree`` (the blob ID of the directory's tree) for directories only. ``user`` and
    ``group`` are the names at backup time, for information; restore uses ``uid``/``gid``.
    Hard links are entries of one snapshot with equal :attr:`hardlink_key`.
    """

    name: bytes
    type: NodeType
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str | None = None
    group: str | None = None
    mtime_ns: int = 0
    atime_ns: int = 0
    ctime_ns: int = 0
    size: int = 0
    inode: int = 0
    device: int = 0
    links: int = 0
    rdev: int = 0
    link_target: bytes | None = None
    xattrs: tuple[tuple[bytes, bytes], ...] = ()
    content: tuple[bytes, ...] = ()
    subtree: bytes | None = None

    @property
    def hardlink_key(self) -> tuple[int, int] | None:
        """``(device, inode)`` if this entry may share its inode with others, else ``None``.

        Directories never do (their link count counts subdirectories, not hard links).
        """
        if self.links > 1 and self.type is not NodeType.DIR:
            return (self.device, self.inode)
        return None


def check_name(name: bytes) -> None:
    """Raise :class:`UnsafePathError` unless ``name`` is a single, harmless path component.

    Refused: the empty name, ``.``, ``..``, and any name containing ``/`` or NUL. Every name
    read from a repository passes through here before it is joined to a path.
    """
    if not name or name == b"." or name == b".." or b"/" in name or b"\0" in name:
        raise UnsafePathError(f"unsafe file name in snapshot: {display_name(name)!r}")


def display_name(name: bytes) -> str:
    """Render a file name for humans (logs, listings, errors) on one unambiguous line.

    Valid UTF-8 is shown as is. Each byte that is not part of valid UTF-8 is shown as ``\\xNN``
    (so a GBK name shows as escapes), a backslash as ``\\\\``, and non-printable characters
    (control characters, line and paragraph separators, unusual spaces) as ``\\xNN`` (ASCII),
    ``\\uNNNN`` or ``\\UNNNNNNNN``. The result contains no control characters, so a hostile
    name cannot forge a log line, and it maps back to exactly one byte string.
    """
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if text.isprintable() and "\\" not in text:
            return text
    parts: list[str] = []
    for char in name.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if char == "\\":
            parts.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            parts.append(char)
        elif code < 0x80:
            parts.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    return "".join(parts)
