from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from drvault.filesystem import capture, group_name, read_xattrs, scan_dir, user_name
from drvault.snapshot import NodeType

GBK_NAME = "测试".encode("gbk")


def test_scan_dir_lists_lstat_results_sorted_by_bytes(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    for name in (b"b", GBK_NAME, b"a", "é".encode(), b"Z"):
        with open(os.path.join(root, name), "wb"):
            pass
    os.symlink(b"/nonexistent", os.path.join(root, b"link"))
    os.mkdir(os.path.join(root, b"dir"))

    entries = scan_dir(root)

    names = [name for name, _ in entries]
    assert names == sorted(names)
    assert names == [b"Z", b"a", b"b", b"dir", b"link", GBK_NAME, "é".encode()]
    stats = dict(entries)
    assert os.path.islink(os.path.join(root, b"link"))
    assert stats[b"link"].st_ino == os.lstat(os.path.join(root, b"link")).st_ino
    assert stats[GBK_NAME].st_ino == os.lstat(os.path.join(root, GBK_NAME)).st_ino


def test_scan_dir_of_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_dir(os.fsencode(tmp_path / "missing"))


def test_capture_regular_file(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "f")
    with open(path, "wb") as file:
        file.write(b"hello")
    os.chown(path, 0, 0)
    os.chmod(path, 0o4751)  # after chown, which clears setuid
    os.utime(path, ns=(1_500_000_000_000_000_001, 1_600_000_000_123_456_789))
    os.setxattr(path, b"user.b", b"2")
    os.setxattr(path, b"user.a", b"\x00\xff")

    node = capture(path, b"f", os.lstat(path))
    st = os.lstat(path)

    assert node.name == b"f"
    assert node.type is NodeType.FILE
    assert node.mode == 0o4751
    assert (node.uid, node.gid, node.user, node.group) == (0, 0, "root", group_name(0))
    assert node.mtime_ns == 1_600_000_000_123_456_789
    assert node.atime_ns == 0  # never recorded: reads move it, and trees would never dedup
    assert node.ctime_ns == st.st_ctime_ns
    assert (node.size, node.inode, node.device, node.links) == (5, st.st_ino, st.st_dev, 1)
    assert node.xattrs == ((b"user.a", b"\x00\xff"), (b"user.b", b"2"))
    assert (node.rdev, node.link_target, node.content, node.subtree) == (0, None, (), None)


def test_capture_types_and_type_specific_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # keeps the socket path short
    os.mkdir(b"d")
    os.symlink("目标".encode("gbk"), b"l")
    os.mkfifo(b"p")
    os.mknod(b"c", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(b"c", 0o620)
    os.mknod(b"b", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(b"s")
        nodes = {name: capture(name, name, st) for name, st in scan_dir(b".")}

    assert {name: node.type for name, node in nodes.items()} == {
        b"d": NodeType.DIR,
        b"l": NodeType.SYMLINK,
        b"p": NodeType.FIFO,
        b"c": NodeType.CHARDEV,
        b"b": NodeType.BLOCKDEV,
        b"s": NodeType.SOCKET,
    }
    assert nodes[b"l"].link_target == "目标".encode("gbk")
    assert nodes[b"c"].rdev == os.makedev(1, 3)
    assert nodes[b"b"].rdev == os.makedev(7, 0)
    assert nodes[b"c"].mode == 0o620
    # Directory and symlink sizes depend on history, not content: not recorded.
    assert nodes[b"d"].size == 0
    assert nodes[b"l"].size == 0
    assert nodes[b"d"].links == 2
    assert all(node.link_target is None for name, node in nodes.items() if name != b"l")
    assert all(node.rdev == 0 for name, node in nodes.items() if name not in (b"b", b"c"))


def test_capture_hard_links_share_inode(tmp_path: Path) -> None:
    first = os.fsencode(tmp_path / "one")
    second = os.fsencode(tmp_path / "two")
    with open(first, "wb"):
        pass
    os.link(first, second)
    a = capture(first, b"one", os.lstat(first))
    b = capture(second, b"two", os.lstat(second))
    assert a.hardlink_key == b.hardlink_key is not None


def test_unknown_owner_has_no_name(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "f")
    with open(path, "wb"):
        pass
    os.chown(path, 2_000_000_123, 2_000_000_456)
    node = capture(path, b"f", os.lstat(path))
    assert (node.uid, node.gid) == (2_000_000_123, 2_000_000_456)
    assert (node.user, node.group) == (None, None)
    assert user_name(0) == "root"


def test_read_xattrs_on_symlink_does_not_follow(tmp_path: Path) -> None:
    target = os.fsencode(tmp_path / "t")
    with open(target, "wb"):
        pass
    os.setxattr(target, b"user.x", b"1")
    link = os.fsencode(tmp_path / "l")
    os.symlink(target, link)
    assert read_xattrs(target) == ((b"user.x", b"1"),)
    assert read_xattrs(link) == ()


def test_read_xattrs_unsupported_records_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*args: object, **kwargs: object) -> list[str]:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "listxattr", unsupported)
    assert read_xattrs(os.fsencode(tmp_path)) == ()


def test_capture_missing_entry_raises(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "l")
    os.symlink(b"x", path)
    st = os.lstat(path)
    os.unlink(path)
    with pytest.raises(FileNotFoundError):
        capture(path, b"l", st)
