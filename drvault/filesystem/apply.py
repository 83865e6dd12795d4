"""Apply: re-create special entries and put a node's metadata back on a restored entry.

Regular files are written with :class:`~drvault.filesystem.sparse.SparseWriter` and directories
with ``os.mkdir`` by the restore service; :func:`create_entry` makes everything else. Then
:func:`apply_metadata` restores owner, extended attributes, mode and times, in that order:
``chown`` clears setuid/setgid bits and file capabilities, so it goes first; xattrs go before
``chmod`` because writing ``user.*`` attributes needs write permission the final mode may deny;
times go last. Call it after the entry's contents are complete: writing a file or adding
entries to a directory moves its ``mtime``, so directories get theirs after their children.

What needs privilege or file-system support (owner, xattrs, devices) does not fail the
restore when it is refused: it comes back as a warning (``create_entry`` returns why it skipped
the entry). ``ctime`` cannot be set on Linux and is not restored.
"""

from __future__ import annotations

import errno
import os
import stat

from drvault.snapshot import Node, NodeType, display_name

_NOT_PERMITTED = frozenset({errno.EPERM, errno.EACCES})
_NOT_SUPPORTED = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP})
_DEVICE_TYPES = {NodeType.CHARDEV: stat.S_IFCHR, NodeType.BLOCKDEV: stat.S_IFBLK}


def create_entry(path: bytes, node: Node) -> str | None:
    """Create the symlink, FIFO or device described by ``node`` at ``path``.

    Returns ``None`` once created, or the reason nothing was created: a device without the
    privilege to make one (``mknod`` needs root / ``CAP_MKNOD``), or a socket. Sockets are
    never restored: a socket only means something while the program that bound it listens on
    it, and that program re-creates it. The entry is created with mode 0600 (the symlink with
    the umask's mode, which Linux ignores); call :func:`apply_metadata` next. Raises
    ``ValueError`` for a regular file or directory, and ``OSError`` for other failures, e.g.
    ``FileExistsError`` if ``path`` exists.
    """
    kind = node.type
    if kind is NodeType.SYMLINK:
        if node.link_target is None:
            raise ValueError(f"symlink {display_name(node.name)!r} has no target")
        os.symlink(node.link_target, path)
    elif kind is NodeType.FIFO:
        os.mkfifo(path, 0o600)
    elif kind in _DEVICE_TYPES:
        try:
            os.mknod(path, _DEVICE_TYPES[kind] | 0o600, node.rdev)
        except PermissionError:
            return f"skipped {kind.value} {display_name(node.name)!r}: not permitted (not root)"
    elif kind is NodeType.SOCKET:
        return f"skipped socket {display_name(node.name)!r}: sockets are not restorable"
    else:
        raise ValueError(f"create_entry cannot make a {kind.value}")
    return None


def apply_metadata(target: bytes | int, node: Node, *, restore_owner: bool) -> list[str]:
    """Set owner (if ``restore_owner``), xattrs, mode and times of ``target`` from ``node``.

    ``target`` is a path or a file descriptor open on the entry (a restored regular file,
    finished through the descriptor it was written with: no path lookups). Never follows a
    symlink at a path; a symlink's mode is left alone (Linux has no ``lchmod``). Xattrs already
    on the entry and not in ``node`` are kept. Returns one warning per step that was not
    permitted or not supported; other ``OSError`` propagate.
    """
    warnings: list[str] = []
    shown = display_name(node.name)
    follow = isinstance(target, int)  # with a descriptor there is no link to follow
    if restore_owner:
        try:
            os.chown(target, node.uid, node.gid, follow_symlinks=follow)
        except OSError as error:
            if error.errno not in _NOT_PERMITTED:
                raise
            warnings.append(f"{shown!r}: cannot set owner {node.uid}:{node.gid}: {error.strerror}")
    for xname, xvalue in node.xattrs:
        try:
            os.setxattr(target, xname, xvalue, follow_symlinks=follow)
        except OSError as error:
            if error.errno in _NOT_SUPPORTED:
                warnings.append(f"{shown!r}: extended attributes not supported here")
                break
            if error.errno not in _NOT_PERMITTED:
                raise
            warnings.append(
                f"{shown!r}: cannot set xattr {display_name(xname)!r}: {error.strerror}"
            )
    if node.type is not NodeType.SYMLINK:
        # os.chmod follows a symlink (no lchmod on Linux): safe because the restore created
        # this entry itself, as long as nobody else can write to the restore target.
        os.chmod(target, node.mode)
    atime_ns = node.atime_ns or node.mtime_ns  # trees written by drvault carry no atime
    os.utime(target, ns=(atime_ns, node.mtime_ns), follow_symlinks=follow)
    return warnings
