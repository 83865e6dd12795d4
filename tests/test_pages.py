"""Large buffers are private anonymous memory, madvised for huge pages past their first 2 MiB."""

from __future__ import annotations

import ctypes
import mmap
import sys

import pytest

from drvault.directio import aligned_buffer
from drvault.pages import HUGE_PAGE, private_map
from drvault.repository.pack import PackWriter
from drvault.repository.suite import Suite

linux = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/smaps")


def _address(memory: mmap.mmap, offset: int = 0) -> int:
    pin = ctypes.c_char.from_buffer(memory)
    try:
        return ctypes.addressof(pin) + offset
    finally:
        del pin


def _mapping(address: int) -> tuple[str, set[str]]:
    """(permissions, VmFlags) of the mapping holding ``address``."""
    perms, flags, inside = "", set[str](), False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                start, end = (int(x, 16) for x in head[0].split("-"))
                inside = start <= address < end
                if inside:
                    perms = head[1]
            elif inside and line.startswith("VmFlags:"):
                flags = set(line.split()[1:])
                break
    return perms, flags


def test_private_map_is_zeroed_writable_and_page_aligned() -> None:
    memory = private_map(3 * HUGE_PAGE + 123)
    assert len(memory) == 3 * HUGE_PAGE + 123
    assert _address(memory) % mmap.PAGESIZE == 0
    assert memory[:] == bytes(len(memory))
    memory[-5:] = b"12345"
    assert memory[-5:] == b"12345"
    assert len(private_map(0)) == mmap.PAGESIZE


@linux
def test_huge_pages_are_asked_for_only_past_the_first_2_mib() -> None:
    memory = private_map(8 * HUGE_PAGE)
    perms, first = _mapping(_address(memory))
    assert perms == "rw-p"  # private, not shmem (which gets no huge pages by default)
    assert "hg" not in first
    if hasattr(mmap, "MADV_HUGEPAGE"):
        assert "hg" in _mapping(_address(memory, HUGE_PAGE))[1]
        assert "hg" in _mapping(_address(memory, len(memory) - 1))[1]
    small = private_map(HUGE_PAGE)
    assert "hg" not in _mapping(_address(small))[1]


@linux
def test_pack_and_read_buffers_are_private_memory() -> None:
    suite = Suite.choose("intl", None, None)
    writer = PackWriter("data", lambda salt: suite.cipher_for(bytes(32), b"pack", salt), 16 << 20)
    _, data = writer.finish()
    assert isinstance(data.obj, mmap.mmap)
    assert _mapping(_address(data.obj))[0] == "rw-p"
    buffer = aligned_buffer(1 << 20)
    assert _mapping(_address(buffer))[0] == "rw-p"
