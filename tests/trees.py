"""Build source trees for backup tests and compare a restored tree with its source.

Everything works on ``bytes`` paths so names that are not UTF-8 stay exact. The comparison walks
both trees with ``lstat`` and never follows a symlink.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from dataclasses import dataclass

MIB = 1 << 20
GIB = 1 << 30

GBK_NAME = "测试文件".encode("gbk")
BAD_UTF8 = b"\xff\xfe"
GBK_DIR = "目录".encode("gbk")
SPARSE_OFFSETS = (0, 300 * MIB + 5, GIB - 8192)
BASE_MTIME = 1_600_000_000_123_456_789


def write(path: bytes, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def set_time(path: bytes, offset: int) -> None:
    """A distinct nanosecond mtime (and atime) per entry; never follows a symlink."""
    t = BASE_MTIME + offset * 1_000_000_007
    os.utime(path, ns=(t - 17, t), follow_symlinks=False)


def build_full_tree(root: bytes, *, big_sparse: bool = True) -> None:
    """A tree holding every kind of entry drvault must round-trip (root is created).

    Regular, empty, duplicate and multi-chunk files, non-UTF-8 file and directory names, hard
    links (3 names, one inode, across directories), relative / absolute / dangling / non-UTF-8
    symlinks, a FIFO, a char device, hard links to a FIFO and to a symlink, a 1 GiB sparse
    file, xattrs, setuid and sticky modes, an owner 1234:5678, nanosecond mtimes.
    """
    j = os.path.join
    rnd = random.Random(20240601)
    os.makedirs(root)
    os.makedirs(j(root, b"sub", b"deeper"))
    os.mkdir(j(root, GBK_DIR))
    os.mkdir(j(root, b"sticky"))

    write(j(root, b"hello.txt"), b"hello world\n")
    write(j(root, GBK_NAME), "内容".encode("gbk"))
    write(j(root, BAD_UTF8), b"not utf-8 name")
    write(j(root, GBK_DIR, b"inside"), b"file inside a GBK directory")
    write(j(root, GBK_DIR, GBK_NAME), b"GBK in GBK")
    write(j(root, b"empty"), b"")
    write(j(root, b"sub", b"empty2"), b"")

    random_data = rnd.randbytes(3 * MIB + 12345)
    write(j(root, b"random.bin"), random_data)
    duplicate = rnd.randbytes(MIB)
    write(j(root, b"dup1"), duplicate)
    write(j(root, b"sub", b"dup2"), duplicate)
    write(j(root, b"sub", b"deeper", b"dup3"), duplicate)

    write(j(root, b"linked"), b"one inode, three names")
    os.link(j(root, b"linked"), j(root, b"sub", b"linked2"))
    os.link(j(root, b"linked"), j(root, GBK_DIR, b"linked3"))

    os.symlink(b"hello.txt", j(root, b"rel-link"))
    os.symlink(b"../" + GBK_NAME, j(root, b"sub", b"rel-up-link"))
    os.symlink(b"/etc/hostname", j(root, b"abs-link"))
    os.symlink(b"does/not/exist", j(root, b"dangling"))
    os.symlink(b"\xff\xfe/" + GBK_NAME, j(root, b"bad-target"))
    os.symlink(b"sub", j(root, b"dir-link"))

    os.mkfifo(j(root, b"fifo"), 0o640)
    os.link(j(root, b"fifo"), j(root, b"sub", b"fifo-link"))  # hard-linked special files
    os.link(j(root, b"rel-link"), j(root, b"rel-link-hard"), follow_symlinks=False)
    os.mknod(j(root, b"null-dev"), stat.S_IFCHR | 0o666, os.makedev(1, 3))

    if big_sparse:
        sparse = j(root, b"sparse.img")
        with open(sparse, "wb") as f:
            f.truncate(GIB)
            for n, offset in enumerate(SPARSE_OFFSETS):
                f.seek(offset)
                f.write(rnd.randbytes(2048 + n * 1000))

    os.setxattr(j(root, b"hello.txt"), b"user.comment", b"a comment")
    os.setxattr(j(root, b"hello.txt"), b"user.binary", b"\x00\xff\x01")
    os.setxattr(j(root, b"sub"), b"user.dir", b"on a directory")
    os.setxattr(j(root, GBK_NAME), b"user." + GBK_NAME, "值".encode("gbk"))

    owned = j(root, b"owned")
    write(owned, b"owned by 1234:5678")
    os.chown(owned, 1234, 5678)
    os.chmod(owned, 0o640)
    setuid = j(root, b"setuid")
    write(setuid, b"#!/bin/sh\n")
    os.chmod(setuid, 0o4755)
    os.chmod(j(root, b"sticky"), 0o1777)
    os.chmod(j(root, b"hello.txt"), 0o600)
    os.chmod(j(root, b"sub", b"deeper"), 0o750)
    os.lchown(j(root, b"dangling"), 1234, 5678)

    # times last, children before parents, so nothing touches them afterwards
    for n, (dirpath, dirnames, filenames) in enumerate(sorted(os.walk(root), reverse=True)):
        for m, name in enumerate(sorted(dirnames + filenames)):
            path = j(dirpath, name)
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                set_time(path, n * 100 + m)
        for name in sorted(dirnames):
            set_time(j(dirpath, name), n * 100 + 99)
    set_time(root, 12345)


@dataclass(frozen=True)
class Entry:
    type: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int
    rdev: int
    target: bytes | None
    xattrs: tuple[tuple[str, bytes], ...]
    digest: bytes | None


def _xattrs(path: bytes) -> tuple[tuple[str, bytes], ...]:
    names = os.listxattr(path, follow_symlinks=False)
    return tuple(sorted((n, os.getxattr(path, n, follow_symlinks=False)) for n in names))


def _digest(path: bytes) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MIB):
            h.update(block)
    return h.digest()


def describe(root: bytes) -> tuple[dict[bytes, Entry], list[set[bytes]]]:
    """Every entry below ``root`` (``b"."`` is ``root`` itself) and the groups of hard links."""
    entries: dict[bytes, Entry] = {}
    inodes: dict[int, set[bytes]] = {}

    def visit(rel: bytes) -> None:
        path = os.path.join(root, rel) if rel != b"." else root
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        entries[rel] = Entry(
            type=kind,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
            size=st.st_size if kind in (stat.S_IFREG, stat.S_IFLNK) else 0,
            rdev=st.st_rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0,
            target=os.readlink(path) if kind == stat.S_IFLNK else None,
            xattrs=_xattrs(path),
            digest=_digest(path) if kind == stat.S_IFREG else None,
        )
        if kind != stat.S_IFDIR and st.st_nlink > 1:
            inodes.setdefault(st.st_ino, set()).add(rel)
        if kind == stat.S_IFDIR:
            for name in sorted(os.listdir(path)):
                visit(name if rel == b"." else os.path.join(rel, name))

    visit(b".")
    return entries, sorted(inodes.values(), key=sorted)


def assert_same_tree(source: bytes, restored: bytes) -> None:
    """Bytes and metadata equal entry by entry, hard links sharing one inode in both."""
    want, want_links = describe(source)
    got, got_links = describe(restored)
    assert sorted(got) == sorted(want)
    for rel, entry in want.items():
        assert got[rel] == entry, f"{rel!r} differs"
    assert got_links == want_links


def allocated(path: bytes | str) -> int:
    return os.stat(path).st_blocks * 512


def flip(path: str | bytes, position: int, mask: int = 0x01) -> bytes:
    """XOR one byte of the file at ``position`` with ``mask``; returns the original bytes."""
    with open(path, "rb") as f:
        original = f.read()
    damaged = bytearray(original)
    damaged[position] ^= mask
    with open(path, "wb") as f:
        f.write(damaged)
    return original
