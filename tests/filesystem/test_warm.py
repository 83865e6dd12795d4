from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from drvault.filesystem import warm
from drvault.filesystem.warm import walk


def _tree(root: Path) -> int:
    """A small tree with a symlink loop and a FIFO; the number of entries under ``root``."""
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"x")
    (root / "a" / "g").write_bytes(b"")
    (root / "a" / "up").symlink_to("..")  # followed, it would never end
    os.mkfifo(root / "fifo")  # lstat, never opened
    (root / "dangling").symlink_to("missing")
    return 7  # a, a/b, a/b/f, a/g, a/up, fifo, dangling


def test_walk_lstats_every_entry_once_without_following_symlinks(tmp_path: Path) -> None:
    expected = _tree(tmp_path)
    assert walk([os.fsencode(tmp_path)], threading.Event()) == expected


def test_walk_ignores_what_it_cannot_walk(tmp_path: Path) -> None:
    expected = _tree(tmp_path)
    paths = [b"/nonexistent/drvault", os.fsencode(tmp_path / "a" / "g"), os.fsencode(tmp_path)]
    assert walk(paths, threading.Event()) == expected


def test_walk_stops_when_told(tmp_path: Path) -> None:
    _tree(tmp_path)
    stop = threading.Event()
    stop.set()
    assert walk([os.fsencode(tmp_path)], stop) == 0


def test_the_walk_runs_beside_the_block_and_is_stopped_at_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started, stopped = threading.Event(), threading.Event()

    def blocking_walk(paths: list[bytes], stop: threading.Event) -> int:
        started.set()
        if stop.wait(timeout=10):
            stopped.set()
        return 0

    monkeypatch.setattr(warm, "walk", blocking_walk)
    with warm.inodes_warmed([b"/"]):
        assert started.wait(timeout=10)  # running while the block runs
        assert not stopped.is_set()
    assert stopped.wait(timeout=10)
