"""Object names inside a repository."""

from __future__ import annotations

from drvault.repository import layout


def test_paths() -> None:
    name = bytes.fromhex("ab" + "01" * 31)
    assert layout.pack_path("data", name) == "data/ab/ab" + "01" * 31
    assert layout.pack_path("tree", name) == "tree/ab/ab" + "01" * 31
    assert layout.index_path(name) == "index/ab" + "01" * 31
    assert layout.snapshot_path(name) == "snapshots/ab" + "01" * 31


def test_parse_hex_name() -> None:
    name = bytes(range(32))
    assert layout.parse_hex_name("data/00/" + name.hex()) == name
    assert layout.parse_hex_name("snapshots/" + name.hex()) == name
    assert layout.parse_hex_name("config") is None
    assert layout.parse_hex_name("index/" + "zz" * 32) is None
    assert layout.parse_hex_name("index/" + name.hex()[:-2]) is None
