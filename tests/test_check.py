"""Corruption is detected and named: by ``check`` always, by ``restore`` wherever it reads.

One small repository (2 snapshots, several data packs, tree packs, 2 index files, 1 key slot,
the config) is built once. Every object file gets one byte flipped at several positions (first,
last, seeded random middle), one flip at a time, the original put back in between; truncated
packs, index files and snapshots too. The Python API carries the full matrix; the CLI path is
exercised for one object of each kind.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    CHEAP_KDF,
    PASSWORD,
    SMALL_CHUNKS,
    MakeRepo,
    RunCli,
    assert_one_error_line,
)
from trees import describe, write

from drvault.backup import BackupRequest, backup
from drvault.check import check
from drvault.errors import EXIT_INTEGRITY, DrvaultError, IntegrityError
from drvault.repository import layout
from drvault.repository.pack import BLOB_DATA, COMP_NONE
from drvault.repository.repository import Repository
from drvault.repository.suite import Suite
from drvault.restore import restore
from drvault.snapshot import NodeType
from drvault.snapshot.document import Snapshot
from drvault.snapshots import resolve, walk
from tests.sites import Site

KINDS = ("config", "keys", "data", "tree", "index", "snapshots")


@dataclass
class Corpus:
    site: Site  # the repository is "repo" on it
    src: bytes
    snapshots: list[Snapshot]  # oldest first
    golden: dict[str, Path]  # snapshot ID -> a restore from the undamaged repository
    # snapshot ID -> pack path -> (offset, length) of every blob record its restore needs
    needs: dict[str, dict[str, set[tuple[int, int]]]]

    def objects(self, kind: str) -> list[str]:
        names = self.site.objects("repo")
        return [n for n in names if n == kind or n.startswith(kind + "/")]

    def size(self, name: str) -> int:
        return self.site.size(name, "repo")

    @property
    def url(self) -> str:
        return self.site.url("repo")


def _needed_records(repo: Repository, snap: Snapshot) -> dict[str, set[tuple[int, int]]]:
    out: dict[str, set[tuple[int, int]]] = {}

    def note(blob_id: bytes) -> None:
        entry = repo.index.get(blob_id)
        assert entry is not None
        path = layout.pack_path(entry.pack.kind, entry.pack.name)
        out.setdefault(path, set()).add((entry.offset, entry.length))

    note(snap.tree)
    for e in walk(repo, snap.tree):
        if e.node.type == NodeType.DIR and e.node.subtree is not None:
            note(e.node.subtree)
        for blob_id in e.node.content:
            note(blob_id)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, module_site: Site) -> Corpus:
    base = tmp_path_factory.mktemp("corpus")
    src = os.fsencode(base / "src")
    rnd = random.Random(7)
    os.makedirs(os.path.join(src, b"docs"))
    write(os.path.join(src, b"a.bin"), rnd.randbytes(40_000))
    write(os.path.join(src, b"b.bin"), rnd.randbytes(30_000))
    write(os.path.join(src, b"docs", b"c.txt"), b"small text\n" * 50)
    write(os.path.join(src, b"docs", b"d.bin"), rnd.randbytes(9_000))
    repo = Repository.init(
        module_site.backend("repo"),
        PASSWORD,
        suite=Suite.choose("intl"),
        chunker=SMALL_CHUNKS,
        kdf=CHEAP_KDF,
        pack_size=16 * 1024,
    )
    first = backup(repo, BackupRequest(paths=(src,))).snapshot
    write(os.path.join(src, b"b.bin"), rnd.randbytes(25_000))
    write(os.path.join(src, b"docs", b"e.bin"), rnd.randbytes(20_000))
    second = backup(module_site.open("repo"), BackupRequest(paths=(src,))).snapshot
    repo = module_site.open("repo")
    golden: dict[str, Path] = {}
    needs: dict[str, dict[str, set[tuple[int, int]]]] = {}
    for snap in (first, second):
        golden[snap.id.hex()] = base / f"golden-{snap.id.hex()[:8]}"
        restore(repo, snap, os.fsencode(golden[snap.id.hex()]))
        needs[snap.id.hex()] = _needed_records(repo, snap)
    return Corpus(module_site, src, [first, second], golden, needs)


def test_corpus_has_every_kind_of_object(corpus: Corpus) -> None:
    counts = {kind: len(corpus.objects(kind)) for kind in KINDS}
    assert counts["config"] == 1
    assert counts["keys"] == 1
    assert counts["snapshots"] == 2
    assert counts["index"] == 2
    assert counts["data"] >= 5
    assert counts["tree"] >= 2
    result = check(corpus.site.open("repo"), read_data=True)
    assert result.ok, result.errors
    assert result.stats.snapshots == 2


# ----------------------------------------------------------------------------- helpers


def _positions(name: str, size: int) -> list[int]:
    """First byte, last byte, one seeded random byte in between."""
    return sorted({0, size - 1, random.Random(name).randrange(1, size - 1)})


@contextmanager
def _flipped(corpus: Corpus, name: str, position: int) -> Iterator[None]:
    original = corpus.site.flip(name, position, name="repo")
    try:
        yield
    finally:
        corpus.site.write(name, original, "repo")


@contextmanager
def _truncated(corpus: Corpus, name: str) -> Iterator[int]:
    cut = corpus.size(name) // 2
    original = corpus.site.truncate(name, cut, "repo")
    try:
        yield cut
    finally:
        corpus.site.write(name, original, "repo")


def _api_check(corpus: Corpus) -> tuple[int, list[str]]:
    """What ``drvault check`` would do: (exit code, error messages)."""
    try:
        repo = Repository.open(corpus.site.backend("repo"), PASSWORD, load_index=False)
    except DrvaultError as exc:
        return exc.exit_code, [str(exc)]
    result = check(repo)
    return (EXIT_INTEGRITY if result.errors else 0), result.errors


def _api_restore(corpus: Corpus, ref: str, target: Path) -> DrvaultError | None:
    """What ``drvault restore`` would do; the error, or None after a clean restore."""
    shutil.rmtree(target, ignore_errors=True)
    try:
        repo = Repository.open(corpus.site.backend("repo"), PASSWORD)
        restore(repo, resolve(repo, ref), os.fsencode(target))
    except DrvaultError as exc:
        return exc
    return None


def _assert_names(error: DrvaultError | None, name: str) -> None:
    assert isinstance(error, IntegrityError), (name, error)
    assert error.name == name, (name, str(error))
    assert name in str(error)


def _needing_snapshot(corpus: Corpus, pack: str) -> str:
    """The newest snapshot whose restore reads ``pack``."""
    for snap in reversed(corpus.snapshots):
        if pack in corpus.needs[snap.id.hex()]:
            return snap.id.hex()
    raise AssertionError(f"{pack} is needed by no snapshot")


def _restored(target: Path) -> tuple[object, ...]:
    """Everything restored below ``target`` (the target directory itself is not restored)."""
    entries, links = describe(os.fsencode(target))
    del entries[b"."]
    return entries, links


def _same_as_golden(corpus: Corpus, snap_id: str, target: Path) -> bool:
    return _restored(target) == _restored(corpus.golden[snap_id])


# ------------------------------------------------------------------------------- check


@pytest.mark.parametrize("kind", KINDS)
def test_check_names_every_flipped_byte(corpus: Corpus, kind: str) -> None:
    flips = 0
    for name in corpus.objects(kind):
        for position in _positions(name, corpus.size(name)):
            with _flipped(corpus, name, position):
                code, messages = _api_check(corpus)
            assert code == EXIT_INTEGRITY, (name, position, messages)
            assert any(name in m for m in messages), (name, position, messages)
            flips += 1
    assert flips >= 3
    assert _api_check(corpus) == (0, [])


@pytest.mark.parametrize("kind", ("data", "tree", "index", "snapshots"))
def test_check_names_every_truncated_object(corpus: Corpus, kind: str) -> None:
    for name in corpus.objects(kind):
        with _truncated(corpus, name):
            code, messages = _api_check(corpus)
        assert code == EXIT_INTEGRITY, (name, messages)
        assert any(name in m for m in messages), (name, messages)


def test_check_names_a_missing_pack(corpus: Corpus) -> None:
    name = corpus.objects("data")[0]
    original = corpus.site.read(name, "repo")
    corpus.site.remove(name, "repo")
    try:
        code, messages = _api_check(corpus)
    finally:
        corpus.site.write(name, original, "repo")
    assert code == EXIT_INTEGRITY
    assert any(name in m and "missing" in m for m in messages), messages


# ----------------------------------------------------------------------------- restore


def test_every_pack_is_needed_by_a_snapshot(corpus: Corpus) -> None:
    for name in corpus.objects("data") + corpus.objects("tree"):
        _needing_snapshot(corpus, name)


@pytest.mark.parametrize("kind", ("data", "tree"))
def test_restore_names_a_flipped_byte_in_any_blob_it_needs(
    corpus: Corpus, kind: str, tmp_path: Path
) -> None:
    """First byte of the first needed record, last byte of the last, a random one between."""
    for name in corpus.objects(kind):
        snap_id = _needing_snapshot(corpus, name)
        records = sorted(corpus.needs[snap_id][name])
        rnd = random.Random(name)
        offset, length = rnd.choice(records)
        positions = {
            records[0][0],
            records[-1][0] + records[-1][1] - 1,
            offset + rnd.randrange(length),
        }
        for position in sorted(positions):
            with _flipped(corpus, name, position):
                error = _api_restore(corpus, snap_id, tmp_path / "out")
            _assert_names(error, name)


@pytest.mark.parametrize("kind", ("data", "tree"))
def test_restore_names_any_flipped_byte_of_a_pack_it_needs(
    corpus: Corpus, kind: str, tmp_path: Path
) -> None:
    """A full restore reads every pack it needs whole and checks it against its name, so a
    flipped byte anywhere in such a pack (header, unused blob, blob table) fails the restore."""
    for name in corpus.objects(kind):
        snap_id = _needing_snapshot(corpus, name)
        for position in _positions(name, corpus.size(name)):
            with _flipped(corpus, name, position):
                error = _api_restore(corpus, snap_id, tmp_path / "out")
            _assert_names(error, name)


@pytest.mark.parametrize("kind", ("data", "tree"))
def test_restore_names_a_truncated_pack(corpus: Corpus, kind: str, tmp_path: Path) -> None:
    for name in corpus.objects(kind):
        snap_id = _needing_snapshot(corpus, name)
        with _truncated(corpus, name):
            error = _api_restore(corpus, snap_id, tmp_path / "out")
        _assert_names(error, name)  # whole packs are read and checked against their names


@pytest.mark.parametrize("kind", ("config", "keys", "index", "snapshots"))
def test_restore_names_a_flipped_byte_in_metadata(
    corpus: Corpus, kind: str, tmp_path: Path
) -> None:
    for name in corpus.objects(kind):
        ref = name.rsplit("/", 1)[-1] if kind == "snapshots" else "latest"
        for position in _positions(name, corpus.size(name)):
            with _flipped(corpus, name, position):
                error = _api_restore(corpus, ref, tmp_path / "out")
            _assert_names(error, name)


@pytest.mark.parametrize("kind", ("index", "snapshots"))
def test_restore_names_a_truncated_index_or_snapshot(
    corpus: Corpus, kind: str, tmp_path: Path
) -> None:
    for name in corpus.objects(kind):
        ref = name.rsplit("/", 1)[-1] if kind == "snapshots" else "latest"
        with _truncated(corpus, name):
            error = _api_restore(corpus, ref, tmp_path / "out")
        _assert_names(error, name)


def test_restore_of_an_intact_snapshot_ignores_another_damaged_one(
    corpus: Corpus, tmp_path: Path
) -> None:
    old, new = (s.id.hex() for s in corpus.snapshots)
    with _flipped(corpus, f"snapshots/{new}", 10):
        assert _api_restore(corpus, old, tmp_path / "out") is None
    assert _same_as_golden(corpus, old, tmp_path / "out")


# --------------------------------------------------------------------------------- CLI


def _cli_position(corpus: Corpus, kind: str, name: str) -> tuple[int, str]:
    """A byte to flip (inside a needed record for packs) and the snapshot to restore."""
    if kind in ("data", "tree"):
        snap_id = _needing_snapshot(corpus, name)
        offset, length = sorted(corpus.needs[snap_id][name])[0]
        return offset + length // 2, snap_id[:10]
    size = corpus.size(name)
    ref = name.rsplit("/", 1)[-1][:12] if kind == "snapshots" else "latest"
    return size // 2, ref


@pytest.mark.parametrize("kind", KINDS)
def test_cli_check_and_restore_name_a_flipped_byte(
    corpus: Corpus, kind: str, run_cli: RunCli, tmp_path: Path
) -> None:
    name = corpus.objects(kind)[-1]
    position, ref = _cli_position(corpus, kind, name)
    with _flipped(corpus, name, position):
        checked = run_cli("check", corpus.url)
        restored = run_cli("restore", corpus.url, ref, "--target", tmp_path / "out")
    assert checked.code == EXIT_INTEGRITY, checked
    assert name in checked.err, checked
    assert "Traceback" not in checked.err
    assert_one_error_line(restored, EXIT_INTEGRITY, name)


@pytest.mark.parametrize("kind", ("data", "index", "snapshots"))
def test_cli_check_and_restore_name_a_truncated_object(
    corpus: Corpus, kind: str, run_cli: RunCli, tmp_path: Path
) -> None:
    if kind == "data":  # a pack whose second half holds a blob the restore needs
        name = next(
            n
            for n in corpus.objects("data")
            if any(
                o + ln > corpus.size(n) // 2
                for o, ln in corpus.needs[_needing_snapshot(corpus, n)][n]
            )
        )
        ref = _needing_snapshot(corpus, name)
    else:
        name = corpus.objects(kind)[0]
        ref = name.rsplit("/", 1)[-1] if kind == "snapshots" else "latest"
    with _truncated(corpus, name):
        checked = run_cli("--json", "check", corpus.url)
        restored = run_cli("restore", corpus.url, ref, "--target", tmp_path / "out")
    assert checked.code == EXIT_INTEGRITY
    doc = checked.json()
    assert doc["ok"] is False
    assert any(name in e for e in doc["errors"]), doc
    assert_one_error_line(restored, EXIT_INTEGRITY, name)


def test_cli_check_passes_on_the_intact_corpus(corpus: Corpus, run_cli: RunCli) -> None:
    result = run_cli("check", "--read-data", corpus.url)
    assert result.code == 0, result
    assert "no errors" in result.out


# ---------------------------------------------------------------------------- read-data


def test_read_data_finds_a_blob_that_does_not_match_its_id(make_repo: MakeRepo, site: Site) -> None:
    """Only decrypting and hashing every blob can find this: the pack's SHA-256 is right."""
    repo = make_repo()
    good_id, _ = repo.put_blob(BLOB_DATA, b"good blob " * 100)
    repo.put_sealed_input(BLOB_DATA, bytes(32), b"not what the ID says", COMP_NONE, 20)
    repo.flush()
    pack = layout.pack_path("data", repo.index.pack_of(good_id))
    fresh = site.open("repo")
    assert check(fresh).ok
    full = check(site.open("repo"), read_data=True)
    assert not full.ok
    assert any(pack in e and "does not match its ID" in e for e in full.errors), full.errors
    by_subset = [check(site.open("repo"), subset=(n, 2)).ok for n in (1, 2)]
    assert sorted(by_subset) == [False, True]
