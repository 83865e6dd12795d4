"""The benchmark corpus at tiny sizes: deterministic per seed, day-2 edits in the stated
proportions; and the harness's table arithmetic on made-up numbers."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import pytest

from bench.corpus import (
    BLOCK,
    Vocabulary,
    apply_day2,
    dir_size,
    ensure_dataset,
    generate_docs,
    generate_dump,
    generate_image,
    stage_day1,
)
from bench.harness import VerifyError, format_table, metrics_of, ratios, verify_tree

DUMP_SCALE = 0.004  # ~2 MiB, ~10,000 rows
DOCS_SCALE = 0.005  # 100 documents
IMAGE_SCALE = 0.002  # 2 MiB, 512 blocks


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("gen", "scale"),
    [(generate_dump, DUMP_SCALE), (generate_docs, DOCS_SCALE), (generate_image, IMAGE_SCALE)],
)
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, gen, scale: float) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        gen(tmp_path / name, scale, seed)
    a, b, c = (digest(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c


def test_vocabulary_text_is_sized_and_deterministic() -> None:
    import numpy as np

    v = Vocabulary()
    t = v.text(100_000, np.random.default_rng(1))
    assert len(t) == 100_000
    assert t == v.text(100_000, np.random.default_rng(1))
    assert t.count(b" ") > 10_000  # words, not a blob


ROW_ID = re.compile(rb"^INSERT INTO public\.(\w+) VALUES \((\d+),", re.M)


def rows_by_id(path: Path) -> dict[tuple[bytes, int], bytes]:
    text = path.read_bytes()
    out = {}
    for line in text.splitlines():
        m = ROW_ID.match(line)
        if m:
            out[(m.group(1), int(m.group(2)))] = line
    return out


def test_dump_day2_changes_inserts_and_appends_the_stated_rows(tmp_path: Path) -> None:
    stats = generate_dump(tmp_path, DUMP_SCALE, 3)
    day1 = rows_by_id(tmp_path / "day1" / "bank.sql")
    day2 = rows_by_id(tmp_path / "day2" / "replace" / "bank.sql")
    n = stats["rows"]
    assert len(day1) == n
    assert stats["bytes_day1"] == pytest.approx(DUMP_SCALE * 512 * 2**20, rel=0.02)
    changed = [k for k in day1 if day1[k] != day2[k]]
    new = [k for k in day2 if k not in day1]
    inserted = [k for k in new if k[1] >= 9 * 10**9]
    appended = [k for k in new if k[1] < 9 * 10**9]
    assert len(changed) == stats["changed"] == pytest.approx(0.01 * n, rel=0.02)
    assert len(inserted) == stats["inserted"] == pytest.approx(0.005 * n, rel=0.03)
    assert len(appended) == stats["appended"] == round(0.01 * n)
    # changed rows keep their id and differ in their values; appended rows come last
    order = list(day2)
    assert order[-len(appended) :] == sorted(appended, key=lambda k: k[1])
    assert all(day1[k].split(b",")[:3] == day2[k].split(b",")[:3] for k in changed)
    # both come in runs of neighbouring rows, not one by one
    ids = sorted(k[1] for k in changed if k[0] == b"transactions")
    neighbours = sum(b - a == 1 for a, b in itertools.pairwise(ids))
    assert neighbours > 0.8 * len(ids)


def test_docs_day2_modifies_adds_and_deletes_the_stated_files(tmp_path: Path) -> None:
    stats = generate_docs(tmp_path / "corpus", DOCS_SCALE, 4)
    n = stats["files_day1"]
    live = tmp_path / "live"
    stage_day1(tmp_path / "corpus", live)
    before = digest(live)
    assert len(before) == n
    assert len({Path(p).parent for p in before}) <= stats["dirs"]
    sizes = [(live / p).stat().st_size for p in before]
    assert min(sizes) >= 1024
    assert max(sizes) <= 2**20 + 1024
    inodes = {p: (live / p).stat().st_ino for p in before}
    changes = apply_day2(tmp_path / "corpus", live)
    after = digest(live)
    deleted = before.keys() - after.keys()
    added = after.keys() - before.keys()
    modified = [p for p in before.keys() & after.keys() if before[p] != after[p]]
    assert len(deleted) == stats["deleted"] == round(0.01 * n)
    assert len(added) == stats["added"] == round(0.02 * n)
    assert len(modified) == stats["modified"] == round(0.03 * n)
    assert changes == {
        "deleted": len(deleted),
        "replaced": len(added) + len(modified),
        "patched_blocks": 0,
    }
    untouched = before.keys() - deleted - set(modified)
    assert all((live / p).stat().st_ino == inodes[p] for p in untouched)


def test_image_day2_rewrites_one_percent_of_blocks_in_place(tmp_path: Path) -> None:
    stats = generate_image(tmp_path / "corpus", IMAGE_SCALE, 5)
    live = tmp_path / "live"
    stage_day1(tmp_path / "corpus", live)
    img = live / "disk.img"
    inode = img.stat().st_ino
    old = img.read_bytes()
    assert len(old) == stats["blocks"] * BLOCK
    assert img.stat().st_blocks * 512 < len(old)  # sparse
    assert apply_day2(tmp_path / "corpus", live)["patched_blocks"] == stats["rewritten_blocks"]
    new = img.read_bytes()
    differ = sum(old[i : i + BLOCK] != new[i : i + BLOCK] for i in range(0, len(old), BLOCK))
    assert differ == stats["rewritten_blocks"] == round(0.01 * stats["blocks"])
    assert img.stat().st_ino == inode


def test_manifest_reuses_matching_corpus_and_regenerates_otherwise(tmp_path: Path) -> None:
    m1, made1 = ensure_dataset("image", tmp_path, IMAGE_SCALE, 1)
    m2, made2 = ensure_dataset("image", tmp_path, IMAGE_SCALE, 1)
    m3, made3 = ensure_dataset("image", tmp_path, IMAGE_SCALE, 2)
    assert (made1, made2, made3) == (True, False, True)
    assert m1 == m2 and m3["seed"] == 2
    assert dir_size(tmp_path / "day1") == IMAGE_SCALE * 2**30 // BLOCK * BLOCK


# ---------------------------------------------------------------------- harness arithmetic


def fake_result(wall: float, repo1: int, repo2: int, rss: int) -> dict:
    step = {"wall_s": wall, "cpu_s": 2 * wall, "peak_rss": rss, "sync_s": 0.0, "bytes": 10**9}
    return {
        "init": {**step, "bytes": 0},
        "backup1": step,
        "backup2": {**step, "wall_s": wall / 4},
        "restore": step,
        "repo_day1": repo1,
        "repo_day2": repo2,
    }


def test_metrics_and_ratios_compute_what_they_say() -> None:
    values = {
        "drvault": metrics_of(fake_result(2.0, 100 << 20, 110 << 20, 50 << 20)),
        "restic": metrics_of(fake_result(4.0, 200 << 20, 240 << 20, 100 << 20)),
    }
    d = values["drvault"]
    assert d["backup1_mb_s"] == pytest.approx(500.0)  # 1e9 bytes / 2 s, in 1e6 bytes/s
    assert d["backup2_s"] == pytest.approx(0.5)
    assert d["backup2_mb_s"] == pytest.approx(2000.0)
    assert d["growth_day2_mib"] == pytest.approx(10.0)
    assert d["backup1_rss_mib"] == pytest.approx(50.0)
    r = ratios(values)
    assert set(r) == {"drvault/restic"}  # borg not measured
    assert r["drvault/restic"]["backup1_s"] == pytest.approx(0.5)
    assert r["drvault/restic"]["backup1_mb_s"] == pytest.approx(2.0)
    assert r["drvault/restic"]["growth_day2_mib"] == pytest.approx(0.25)
    table = format_table(values)
    line = next(row for row in table.splitlines() if row.startswith("day-1 backup MB/s"))
    assert line.split()[-5:] == ["500.0", "250.0", "-", "2.00x", "-"]
    line = next(row for row in table.splitlines() if row.startswith("day-2 growth MiB"))
    assert line.split()[-5:] == ["10.0", "40.0", "-", "0.25x", "-"]


def test_verify_tree_names_a_difference(tmp_path: Path) -> None:
    for side in ("a", "b"):
        (tmp_path / side / "d").mkdir(parents=True)
        (tmp_path / side / "d" / "f").write_bytes(b"x" * 100)
    verify_tree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "d" / "f").write_bytes(b"x" * 99 + b"y")
    with pytest.raises(VerifyError, match="d/f"):
        verify_tree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "extra").write_bytes(b"")
    with pytest.raises(VerifyError, match="extra"):
        verify_tree(tmp_path / "a", tmp_path / "b")
