from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drvault.errors import UnsafePathError
from drvault.snapshot import Node, NodeType, check_name, display_name


@pytest.mark.parametrize("name", [b"", b".", b"..", b"a/b", b"/", b"x\0y", b"../etc"])
def test_check_name_refuses_unsafe_names(name: bytes) -> None:
    with pytest.raises(UnsafePathError):
        check_name(name)


@pytest.mark.parametrize("name", [b"a", b"...", b".hidden", "测试".encode("gbk"), b"a\\b"])
def test_check_name_accepts_single_components(name: bytes) -> None:
    check_name(name)


def test_display_name_shows_utf8_as_is() -> None:
    assert display_name("测试.txt".encode()) == "测试.txt"


def test_display_name_escapes_invalid_bytes_controls_and_backslash() -> None:
    assert display_name("测试".encode("gbk")) == "\\xb2\\xe2\\xca\\xd4"
    assert display_name(b"a\nb") == "a\\x0ab"
    assert display_name(b"a\\xb2") == "a\\\\xb2"
    assert display_name("a\u0085".encode()) == "a\\u0085"
    assert display_name("\u2028".encode()) == "\\u2028"


def _undisplay(shown: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(shown):
        char = shown[i]
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
        elif shown[i + 1] == "\\":
            out += b"\\"
            i += 2
        else:
            width = {"x": 2, "u": 4, "U": 8}[shown[i + 1]]
            code = int(shown[i + 2 : i + 2 + width], 16)
            out += bytes([code]) if width == 2 else chr(code).encode("utf-8")
            i += 2 + width
    return bytes(out)


@given(st.binary(max_size=40) | st.text(max_size=20).map(lambda t: t.encode("utf-8", "replace")))
def test_display_name_is_one_printable_line_that_maps_back(name: bytes) -> None:
    shown = display_name(name)
    assert shown.isprintable()
    assert _undisplay(shown) == name


def test_hardlink_key_only_for_linked_non_directories() -> None:
    node = Node(name=b"f", type=NodeType.FILE, inode=7, device=3, links=2)
    assert node.hardlink_key == (3, 7)
    assert dataclasses.replace(node, links=1).hardlink_key is None
    assert Node(name=b"d", type=NodeType.DIR, inode=7, device=3, links=5).hardlink_key is None


def test_node_is_frozen() -> None:
    node = Node(name=b"f", type=NodeType.FILE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.mode = 0o777  # type: ignore[misc]
