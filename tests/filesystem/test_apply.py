"""Capture a real directory tree, encode it, and re-create it: metadata must survive."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from pathlib import Path

import pytest

from drvault.filesystem import (
    SparseWriter,
    apply_metadata,
    capture,
    create_entry,
    read_xattrs,
    scan_dir,
)
from drvault.snapshot import Node, NodeType, decode_tree, encode_tree

GBK_NAME = "测试".encode("gbk")
MTIME = 1_600_000_000_123_456_789
ATIME = 1_500_000_000_987_654_321


def _set_times(path: bytes, offset: int) -> None:
    os.utime(path, ns=(ATIME + offset, MTIME + offset), follow_symlinks=False)


def _build_source(root: bytes) -> None:
    join = os.path.join
    regular = join(root, b"file.txt")
    with open(regular, "wb") as file:
        file.write(b"hello world")
    os.setxattr(regular, b"user.b", b"second")
    os.setxattr(regular, b"user.a", b"\x00binary\xff")
    os.chown(regular, 1234, 5678)
    os.chmod(regular, 0o4755)
    _set_times(regular, 1)

    with open(join(root, GBK_NAME), "wb") as file:
        file.write("内容".encode("gbk"))
    os.chmod(join(root, GBK_NAME), 0o2640)

    with open(join(root, b"empty"), "wb"):
        pass
    os.chmod(join(root, b"empty"), 0o000)

    os.symlink(b"file.txt", join(root, b"link"))
    os.lchown(join(root, b"link"), 1234, 5678)
    os.symlink(b"\xb2\xe2\xff/../x", join(root, b"gbk-link"))
    _set_times(join(root, b"gbk-link"), 2)

    os.mkfifo(join(root, b"fifo"))
    os.chmod(join(root, b"fifo"), 0o640)
    _set_times(join(root, b"fifo"), 3)

    os.mknod(join(root, b"null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(join(root, b"null"), 0o666)
    os.chown(join(root, b"null"), 7, 8)

    sub = join(root, b"sub")
    os.mkdir(sub)
    with open(join(sub, b"inner"), "wb") as file:
        file.write(b"x" * 10_000)
    os.chmod(sub, 0o1750)
    os.chown(sub, 42, 43)
    os.setxattr(sub, b"user.dir", b"yes")
    _set_times(sub, 4)


class _Store:
    """A stand-in for the repository: blobs by SHA-256."""

    def __init__(self) -> None:
        self.blobs: dict[bytes, bytes] = {}

    def put(self, data: bytes) -> bytes:
        blob_id = hashlib.sha256(data).digest()
        self.blobs[blob_id] = data
        return blob_id


def _backup(store: _Store, path: bytes) -> bytes:
    nodes = []
    for name, st in scan_dir(path):
        child = os.path.join(path, name)
        node = capture(child, name, st)
        if node.type is NodeType.FILE:
            with open(child, "rb") as file:
                node = dataclasses.replace(node, content=(store.put(file.read()),))
        elif node.type is NodeType.DIR:
            node = dataclasses.replace(node, subtree=_backup(store, child))
        nodes.append(node)
    return store.put(encode_tree(nodes))


def _restore(store: _Store, tree_id: bytes, path: bytes) -> list[str]:
    warnings: list[str] = []
    for node in decode_tree(store.blobs[tree_id]):
        child = os.path.join(path, node.name)
        if node.type is NodeType.FILE:
            with SparseWriter(child) as writer:
                offset = 0
                for blob_id in node.content:
                    data = store.blobs[blob_id]
                    writer.write(offset, data)
                    offset += len(data)
                writer.finish(node.size)
        elif node.type is NodeType.DIR:
            os.mkdir(child, 0o700)
            assert node.subtree is not None
            warnings += _restore(store, node.subtree, child)
        else:
            skipped = create_entry(child, node)
            if skipped is not None:
                warnings.append(skipped)
                continue
        warnings += apply_metadata(child, node, restore_owner=True)
    return warnings


def _walk(root: bytes) -> dict[bytes, Node]:
    found: dict[bytes, Node] = {}
    for name, st in scan_dir(root):
        path = os.path.join(root, name)
        found[name] = capture(path, name, st)
        if stat.S_ISDIR(st.st_mode):
            found.update({os.path.join(name, k): v for k, v in _walk(path).items()})
    return found


def test_capture_then_apply_recreates_entries_exactly(tmp_path: Path) -> None:
    source = os.fsencode(tmp_path / "src")
    target = os.fsencode(tmp_path / "dst")
    os.mkdir(source)
    os.mkdir(target)
    _build_source(source)
    before = _walk(source)
    store = _Store()

    warnings = _restore(store, _backup(store, source), target)

    assert warnings == []
    after = _walk(target)
    assert after.keys() == before.keys()
    assert GBK_NAME in after
    for name, original in before.items():
        restored = after[name]
        # Everything but where the entry lives and when its inode changed.
        ignore = {"inode": 0, "device": 0, "ctime_ns": 0}
        if original.type is not NodeType.FILE:
            ignore["atime_ns"] = 0  # reading the tree during the backup moved source atimes
        assert dataclasses.replace(restored, **ignore) == dataclasses.replace(original, **ignore)
    for name in (b"file.txt", GBK_NAME, b"empty", b"sub/inner"):
        with (
            open(os.path.join(source, name), "rb") as a,
            open(os.path.join(target, name), "rb") as b,
        ):
            assert a.read() == b.read()
    assert after[b"file.txt"].mode == 0o4755  # setuid survives the chown
    assert after[b"file.txt"].mtime_ns == MTIME + 1
    assert after[b"sub"].mtime_ns == MTIME + 4  # dir times set after its contents
    assert after[b"gbk-link"].link_target == b"\xb2\xe2\xff/../x"
    assert after[b"null"].rdev == os.makedev(1, 3)
    assert (after[b"link"].uid, after[b"link"].gid) == (1234, 5678)


def test_socket_is_skipped_with_a_reason(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "s")
    reason = create_entry(path, Node(name=b"s", type=NodeType.SOCKET))
    assert reason is not None and "socket" in reason
    assert not os.path.lexists(path)


def test_device_without_privilege_is_skipped_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "mknod", refuse)
    path = os.fsencode(tmp_path / "sda")
    node = Node(name=b"sda", type=NodeType.BLOCKDEV, rdev=os.makedev(8, 0))
    reason = create_entry(path, node)
    assert reason is not None and "not root" in reason and "sda" in reason


def test_create_entry_refuses_files_and_dirs(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        create_entry(os.fsencode(tmp_path / "f"), Node(name=b"f", type=NodeType.FILE))
    with pytest.raises(ValueError):
        create_entry(os.fsencode(tmp_path / "d"), Node(name=b"d", type=NodeType.DIR))


def test_create_entry_does_not_replace_existing(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "l")
    os.symlink(b"a", path)
    with pytest.raises(FileExistsError):
        create_entry(path, Node(name=b"l", type=NodeType.SYMLINK, link_target=b"b"))


def test_unsettable_xattr_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    # Linux refuses user.* attributes on symlinks.
    path = os.fsencode(tmp_path / "l")
    node = Node(
        name=b"l",
        type=NodeType.SYMLINK,
        link_target=b"nowhere",
        mtime_ns=MTIME,
        xattrs=((b"user.a", b"1"),),
    )
    assert create_entry(path, node) is None
    warnings = apply_metadata(path, node, restore_owner=False)
    assert len(warnings) == 1 and "user.a" in warnings[0]
    assert os.lstat(path).st_mtime_ns == MTIME  # later steps still ran


def test_owner_is_kept_unless_asked(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path / "p")
    node = Node(name=b"p", type=NodeType.FIFO, mode=0o604, uid=1234, gid=5678)
    create_entry(path, node)
    assert apply_metadata(path, node, restore_owner=False) == []
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o604)


def test_xattrs_are_set_before_a_read_only_mode(tmp_path: Path) -> None:
    # Only a non-root owner is stopped by mode 0444 from writing user.* xattrs.
    path = os.fsencode(tmp_path / "f")
    with SparseWriter(path) as writer:
        writer.finish(0)
    os.chown(path, 1234, 1234)
    os.chmod(tmp_path, 0o711)
    node = Node(name=b"f", type=NodeType.FILE, mode=0o444, xattrs=((b"user.k", b"v"),))

    pid = os.fork()
    if pid == 0:  # child: become the owner and restore the metadata
        code = 1
        try:
            os.chdir(tmp_path)  # the directories above tmp_path are closed to other users
            os.setgid(1234)
            os.setuid(1234)
            code = 0 if apply_metadata(b"f", node, restore_owner=False) == [] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert read_xattrs(path) == ((b"user.k", b"v"),)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o444
