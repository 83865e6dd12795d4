"""bench.verify without running the tools: its data set, its hash check and its table arithmetic
on made-up numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.verify import BORG_CHECK, RESTIC_CHECK, Row, _section, hash_tree, make_data, ratios

SIZE = 3 << 20


def test_data_is_seeded_half_random_half_text(tmp_path: Path) -> None:
    a = make_data(tmp_path / "a", SIZE, 7)
    b = make_data(tmp_path / "b", SIZE, 7)
    c = make_data(tmp_path / "c", SIZE, 8)
    assert a.digests == b.digests != c.digests
    assert a.bytes == SIZE == sum(p.stat().st_size for p in (tmp_path / "a").rglob("*.*"))
    assert a.random_bytes + a.text_bytes == SIZE
    assert abs(a.random_bytes - a.text_bytes) <= 16 << 20  # at most one file apart
    assert a.files == len(a.digests) > 1


def test_hash_tree_names_what_differs(tmp_path: Path) -> None:
    data = make_data(tmp_path, 1 << 20, 3)
    assert hash_tree(tmp_path, data.digests) == []
    first = sorted(data.digests)[0]
    with open(tmp_path / first, "r+b") as f:
        f.write(b"\0")
    (tmp_path / "extra").write_bytes(b"")
    (tmp_path / sorted(data.digests)[1]).unlink()
    assert hash_tree(tmp_path, data.digests) == [
        "extra: not expected",
        f"{sorted(data.digests)[1]}: missing",
        f"{first}: content differs",
    ]


def row(label: str, tool: str, wall: float, nbytes: int, rss: int) -> Row:
    return Row(label, tool, wall, wall / 2, rss << 20, nbytes, wall)


def test_ratios_read_as_the_table_says() -> None:
    rows = [
        row("drvault scrub", "drvault", 2.0, 10**9, 200),
        row(RESTIC_CHECK, "restic", 4.0, 10**9, 100),
        row(BORG_CHECK, "borg", 1.0, 5 * 10**8, 100),
    ]
    peers = {"restic": RESTIC_CHECK, "borg": BORG_CHECK}
    r = ratios(rows, peers)["drvault scrub"]
    assert r["restic"]["wall"] == pytest.approx(0.5)  # half restic's time
    assert r["restic"]["mb_s"] == pytest.approx(2.0)  # twice as fast
    assert r["borg"]["wall"] == pytest.approx(2.0)
    assert r["borg"]["mb_s"] == pytest.approx(1.0)  # borg's repository is half the bytes
    assert r["borg"]["peak_rss"] == pytest.approx(2.0)
    lines = _section("t", rows, peers)
    assert lines[-2].split()[-5:] == [RESTIC_CHECK.split()[-1], "0.50x", "2.00x", "0.50x", "2.00x"]
    assert lines[-1].split()[-4:] == ["2.00x", "1.00x", "2.00x", "2.00x"]
    assert ratios(rows[:1], peers) == {"drvault scrub": {}}  # --no-peers
