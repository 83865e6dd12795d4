"""Capture: read directory listings and entry metadata from the file system into nodes.

Built for a million files per backup: a directory is listed with one ``scandir`` and each entry
costs its ``lstat``, a ``listxattr`` and (for symlinks) a ``readlink``; owner names come from a
per-process cache. Nothing here reads file contents.
"""

from __future__ import annotations

import errno
import functools
import grp
import os
import pwd
import stat
from operator import itemgetter

from drvault.snapshot import Node, NodeType

_TYPES: dict[int, NodeType] = {
    stat.S_IFREG: NodeType.FILE,
    stat.S_IFDIR: NodeType.DIR,
    stat.S_IFLNK: NodeType.SYMLINK,
    stat.S_IFIFO: NodeType.FIFO,
    stat.S_IFCHR: NodeType.CHARDEV,
    stat.S_IFBLK: NodeType.BLOCKDEV,
    stat.S_IFSOCK: NodeType.SOCKET,
}
_NO_XATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.ENODATA})
_BY_NAME = itemgetter(0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)  # only the owner or root may use it


def open_file(path: bytes, flags: int = 0) -> int:
    """A descriptor for reading a file under backup (plus ``flags``): symlinks not followed,
    and its access time left alone where the kernel allows (``O_NOATIME``)."""
    try:
        return os.open(path, _READ_FLAGS | _NOATIME | flags)
    except PermissionError:
        return os.open(path, _READ_FLAGS | flags)


def scan_dir(path: bytes) -> list[tuple[bytes, os.stat_result]]:
    """List a directory: ``(name, lstat result)`` per entry, sorted by name bytes.

    Entries that vanish between listing and ``lstat`` are left out (they no longer exist).
    Any other ``OSError`` (the directory cannot be opened or searched) propagates.
    """
    entries: list[tuple[bytes, os.stat_result]] = []
    with os.scandir(path) as listing:
        for entry in listing:
            try:
                entries.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    entries.sort(key=_BY_NAME)
    return entries


def capture(path: bytes, name: bytes, st: os.stat_result) -> Node:
    """Describe the entry at ``path`` (called ``name`` in its directory) from its ``lstat``.

    ``content`` and ``subtree`` stay empty: the backup service fills them in with
    ``dataclasses.replace`` once the data is stored. ``size`` is kept for regular files only
    and ``rdev`` for devices only, so equal directories give equal trees. Extended attributes
    the file system does not support or does not let us read are recorded as none. Raises
    ``OSError`` if the entry vanished or cannot be read (``readlink``), and ``ValueError`` for
    a file type Linux does not have.
    """
    mode = st.st_mode
    node_type = _TYPES.get(stat.S_IFMT(mode))
    if node_type is None:
        raise ValueError(f"unknown file type {stat.S_IFMT(mode):#o}")
    return Node(
        name=name,
        type=node_type,
        mode=stat.S_IMODE(mode),
        uid=st.st_uid,
        gid=st.st_gid,
        user=user_name(st.st_uid),
        group=group_name(st.st_gid),
        mtime_ns=st.st_mtime_ns,
        # atime is not recorded: every read moves it, so recording it would make every
        # directory's tree new on every run (no tree dedup). Restore sets atime = mtime.
        atime_ns=0,
        ctime_ns=st.st_ctime_ns,
        size=st.st_size if node_type is NodeType.FILE else 0,
        inode=st.st_ino,
        device=st.st_dev,
        links=st.st_nlink,
        rdev=st.st_rdev if node_type in (NodeType.CHARDEV, NodeType.BLOCKDEV) else 0,
        link_target=os.readlink(path) if node_type is NodeType.SYMLINK else None,
        xattrs=read_xattrs(path),
    )


def read_xattrs(path: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """All extended attributes of ``path`` (not following a symlink), sorted by name.

    A file system without xattr support, or an attribute we may not read (``trusted.*`` as
    non-root) or that disappears meanwhile, is silently left out.
    """
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as error:
        if error.errno in _NO_XATTRS:
            return ()
        raise
    if not names:
        return ()
    xattrs: list[tuple[bytes, bytes]] = []
    for xname in names:
        try:
            value = os.getxattr(path, xname, follow_symlinks=False)
        except OSError as error:
            if error.errno in _NO_XATTRS:
                continue
            raise
        xattrs.append((os.fsencode(xname), value))
    xattrs.sort(key=_BY_NAME)
    return tuple(xattrs)


@functools.cache
def user_name(uid: int) -> str | None:
    """The name of user ``uid`` (cached for the life of the process), or ``None``."""
    try:
        return _utf8_or_none(pwd.getpwuid(uid).pw_name)
    except KeyError:
        return None


@functools.cache
def group_name(gid: int) -> str | None:
    """The name of group ``gid`` (cached for the life of the process), or ``None``."""
    try:
        return _utf8_or_none(grp.getgrgid(gid).gr_name)
    except KeyError:
        return None


def _utf8_or_none(name: str) -> str | None:
    # A name with undecodable bytes arrives with surrogate escapes; it cannot be stored as
    # JSON text and is only informational, so it is dropped.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return name
