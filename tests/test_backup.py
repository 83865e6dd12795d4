"""Backup: incremental runs read only what changed, changes during a read are reported,
excludes and path checks work."""

from __future__ import annotations

import builtins
import os
import stat
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CHEAP_KDF, PASSWORD, RunCli, assert_one_error_line

from drvault.backup import BackupRequest, backup
from drvault.check import check
from drvault.chunker import Chunker
from drvault.errors import EXIT_PARTIAL, EXIT_USAGE, UsageError
from drvault.repository.repository import Repository
from drvault.repository.suite import Suite
from drvault.snapshot import NodeType
from drvault.snapshots import find, resolve, walk
from tests.sites import Site

FILES = 10_000


@dataclass
class Big:
    site: Site  # the repository is "repo" on it
    src: bytes
    files: list[bytes]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory, module_site: Site) -> Big:
    """10,000 small files in 100 directories, backed up once."""
    base = tmp_path_factory.mktemp("big")
    src = os.fsencode(base / "src")
    files = []
    for d in range(100):
        directory = os.path.join(src, b"d%02d" % d)
        os.makedirs(directory)
        for f in range(FILES // 100):
            path = os.path.join(directory, b"f%03d" % f)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"file %d/%d\n" % (d, f))
            os.close(fd)
            files.append(path)
    repo = Repository.init(
        module_site.backend("repo"), PASSWORD, suite=Suite.choose("intl"), kdf=CHEAP_KDF
    )
    first = backup(repo, BackupRequest(paths=(src,)))
    assert first.stats.files_new == FILES
    return Big(module_site, src, files)


@pytest.fixture
def opened_files(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every regular file opened through os.open or open() while the test runs."""
    seen: list[bytes] = []
    real_os_open, real_open = os.open, builtins.open

    def note(path: object) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            p = os.fsencode(path)
            try:
                if stat.S_ISREG(os.stat(p).st_mode):
                    seen.append(p)
            except OSError:
                pass

    def os_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        note(path)
        return real_os_open(path, *args, **kwargs)

    def open_(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        note(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    yield seen


def test_unchanged_tree_reads_no_file_content(big: Big, opened_files: list[bytes]) -> None:
    result = backup(big.site.open("repo"), BackupRequest(paths=(big.src,)))
    assert result.stats.bytes_read == 0
    assert result.stats.files_unmodified == FILES
    assert result.stats.files_new == result.stats.files_changed == 0
    assert not result.warnings
    assert [p for p in opened_files if p.startswith(big.src)] == []
    assert result.snapshot.parent is not None
    # 100 directories, more than wait at once for their trees: every tree is the parent's.
    # The source's ancestors (/tmp and below) are shared with whatever else runs on the
    # machine, the other test stages among them: their times may change between the two
    # backups, and with them the trees above the source, one a level at most.
    repo = big.site.open("repo")
    again = backup(repo, BackupRequest(paths=(big.src,)))
    before, after = (find(repo, r.snapshot.tree, big.src) for r in (result, again))
    assert before is not None and after is not None
    assert after.node.subtree == before.node.subtree
    assert repo.stats.blobs_new <= len(Path(os.fsdecode(big.src)).parts) - 1


def test_a_changed_file_is_the_only_one_read(big: Big, opened_files: list[bytes]) -> None:
    target = big.files[4321]
    st = os.stat(target)
    with open(target, "wb") as f:
        f.write(b"new content, same directory")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    opened_files.clear()
    result = backup(big.site.open("repo"), BackupRequest(paths=(big.src,)))
    # opened by the worker that reads it, and maybe first by the read-ahead (filesystem.prefetch)
    assert {p for p in opened_files if p.startswith(big.src)} == {target}
    assert result.stats.files_changed == 1
    assert result.stats.files_unmodified == FILES - 1
    assert result.stats.bytes_read == len(b"new content, same directory")
    repo = big.site.open("repo")
    entry = find(repo, result.snapshot.tree, target)
    assert entry is not None
    assert b"".join(repo.get_blob(b) for b in entry.node.content) == b"new content, same directory"
    assert check(repo).ok


def test_a_changed_directory_takes_over_its_other_entries_exactly(
    repo: Repository, tmp_path: Path
) -> None:
    """Unchanged entries of a directory that gets a new tree are the parent's nodes, decoded
    from its tree only then; everything else keeps the parent's tree blob."""
    src = tmp_path / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "other").mkdir()
    for i in range(20):
        (src / "d" / f"f{i:02d}").write_bytes(b"file %d" % i)
    (src / "d" / "sub" / "g").write_bytes(b"g")
    (src / "other" / "h").write_bytes(b"h")
    (src / "d" / "link").symlink_to("f00")
    os.mkfifo(src / "d" / "pipe")
    first = backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    target = src / "d" / "f07"
    mtime = target.stat().st_mtime_ns
    target.write_bytes(b"changed")
    os.utime(target, ns=(mtime, mtime + 1_000_000_000))
    second = backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    assert second.stats.files_changed == 1 and second.stats.files_unmodified == 21
    old = {e.path: e.node for e in walk(repo, first.snapshot.tree)}
    new = {e.path: e.node for e in walk(repo, second.snapshot.tree)}
    assert new.keys() == old.keys()
    changed = os.fsencode(target).lstrip(b"/")
    differ = {path for path in new if new[path] != old[path]}
    # the file, and the directories above it (new tree IDs); nothing else
    assert differ == {p for p in new if changed == p or changed.startswith(p + b"/")}
    assert b"".join(repo.get_blob(b) for b in new[changed].content) == b"changed"
    assert check(repo).ok


def test_a_file_whose_blobs_left_the_index_is_read_again(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(name.encode() * 1000)
    backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    entry = find(repo, resolve(repo, "latest").tree, os.fsencode(src / "b"))
    assert entry is not None
    lost = set(entry.node.content)
    index_type = type(repo.index)
    packs_of = index_type.packs_of

    def forgetful(index: object, ids: list[bytes]) -> list[bytes | None]:
        found = packs_of(index, ids)  # type: ignore[arg-type]
        return [None if i in lost else p for i, p in zip(ids, found, strict=True)]

    monkeypatch.setattr(index_type, "packs_of", forgetful)
    again = backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    assert again.stats.files_unmodified == 2
    assert again.stats.files_new == 1 and again.stats.bytes_read == 1000
    monkeypatch.undo()
    assert check(repo).ok
    restored = find(repo, again.snapshot.tree, os.fsencode(src / "b"))
    assert restored is not None
    assert b"".join(repo.get_blob(b) for b in restored.node.content) == b"b" * 1000


def _grow_while_reading(monkeypatch: pytest.MonkeyPatch, victim: bytes) -> None:
    real = Chunker.chunk_file

    def chunk_file(self, f, *, buffer_size=None):  # type: ignore[no-untyped-def]
        for n, chunk in enumerate(real(self, f, buffer_size=buffer_size)):
            if n == 0 and os.path.samefile(f"/proc/self/fd/{f.fileno()}", victim):
                with open(victim, "ab") as out:
                    out.write(b"appended while the backup read the file")
            yield chunk

    monkeypatch.setattr(Chunker, "chunk_file", chunk_file)


def test_a_file_changed_while_read_is_a_warning_and_the_snapshot_is_saved(
    repo: Repository, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "steady").write_bytes(b"steady")
    victim = src / "growing.log"
    victim.write_bytes(os.urandom(300_000))
    _grow_while_reading(monkeypatch, os.fsencode(victim))
    result = backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    assert result.partial
    assert result.stats.errors == 1
    assert len(result.warnings) == 1
    assert "growing.log" in result.warnings[0]
    assert "changed while being read" in result.warnings[0]
    reopened = site.open("repo")
    assert resolve(reopened, "latest").id == result.snapshot.id
    entry = find(reopened, result.snapshot.tree, os.fsencode(victim))
    assert entry is not None and entry.node.content


GROW_AND_RUN = textwrap.dedent(
    """
    import os, sys
    from drvault.chunker import Chunker
    real, real_buffer = Chunker.chunk_file, Chunker.chunk_buffer
    victim = os.environ["VICTIM"]
    def grow():
        with open(victim, "ab") as out:
            out.write(b"more")
    def chunk_file(self, f, *, buffer_size=None):  # large files: streamed
        for n, chunk in enumerate(real(self, f, buffer_size=buffer_size)):
            if n == 0 and os.path.samefile(f"/proc/self/fd/{f.fileno()}", victim):
                grow()
            yield chunk
    def chunk_buffer(self, buf):  # small files: read whole (the tree holds only the victim)
        for n, chunk in enumerate(real_buffer(self, buf)):
            if n == 0:
                grow()
            yield chunk
    Chunker.chunk_file = chunk_file
    Chunker.chunk_buffer = chunk_buffer
    from drvault.cli import main
    main(sys.argv[1:])
    """
)


@pytest.mark.parametrize("size", [200_000, 2_000_000])  # read whole / streamed
def test_cli_exit_code_3_when_a_file_changed_while_read(
    repo: Repository, site: Site, tmp_path: Path, run_cli: RunCli, size: int
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    victim = src / "growing.log"
    victim.write_bytes(os.urandom(size))
    result = run_cli(
        "backup", site.url("repo"), src, code=GROW_AND_RUN, env={"VICTIM": str(victim)}
    )
    assert result.code == EXIT_PARTIAL, result
    assert "warning:" in result.err and "changed while being read" in result.err
    assert "Traceback" not in result.err
    assert "snapshot" in result.out and "saved" in result.out
    listed = run_cli("--json", "snapshots", site.url("repo"))
    assert listed.code == 0
    assert len(listed.json()) == 1


def test_backup_of_a_missing_path_is_a_usage_error(
    repo: Repository, site: Site, tmp_path: Path, run_cli: RunCli
) -> None:
    with pytest.raises(UsageError, match="no such file or directory"):
        backup(repo, BackupRequest(paths=(os.fsencode(tmp_path / "missing"),)))
    assert repo.snapshot_ids() == []
    result = run_cli("backup", site.url("repo"), tmp_path / "missing")
    assert_one_error_line(result, EXIT_USAGE, "missing", "no such file or directory")
    assert site.objects("repo", "snapshots/") == []


def test_excludes_by_name_and_by_path(repo: Repository, site: Site, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d in ("keep", "cache", "keep/cache", "other"):
        (src / d).mkdir(parents=True)
    for f in ("a.txt", "a.tmp", "keep/b.tmp", "keep/b.txt", "cache/c", "keep/cache/d", "other/e"):
        (src / f).write_bytes(f.encode())
    excludes = ("*.tmp", f"{src}/cache/*", f"{src}/other")
    result = backup(repo, BackupRequest(paths=(os.fsencode(src),), excludes=excludes))
    rel = os.fsencode(src).lstrip(b"/")
    kept = sorted(
        e.path[len(rel) + 1 :].decode()
        for e in walk(site.open("repo"), result.snapshot.tree)
        if e.path.startswith(rel + b"/")
    )
    assert kept == ["a.txt", "cache", "keep", "keep/b.txt", "keep/cache", "keep/cache/d"]
    assert result.snapshot.excludes == excludes


def test_duplicate_content_is_stored_once(repo: Repository, site: Site, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(500_000)
    for name in ("one", "two", "three"):
        (src / name).write_bytes(data)
    result = backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    assert result.stats.bytes_read == 3 * len(data)
    assert len(data) <= result.snapshot.summary["bytes_stored_new"] < 1.1 * len(data)
    reopened = site.open("repo")
    contents = {
        find(reopened, result.snapshot.tree, os.fsencode(src / n)).node.content  # type: ignore[union-attr]
        for n in ("one", "two", "three")
    }
    assert len(contents) == 1


def test_unreadable_small_files_in_a_batch_are_warnings_and_the_rest_are_stored(
    repo: Repository, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small files are stored in batches (one worker task each); a file of a batch that cannot
    be opened is a warning of its own and leaves its batch's other files stored."""
    src = tmp_path / "src"
    src.mkdir()
    contents = {f"f{i:04d}": os.urandom(100 + i) for i in range(600)}  # several batches
    for name, data in contents.items():
        (src / name).write_bytes(data)
    (src / "big").write_bytes(os.urandom(1_500_000))  # streamed by the walker, between batches
    denied = {os.fsencode(src / n) for n in ("f0007", "f0300", "f0599")}
    real_open = os.open

    def os_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if path in denied:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    result = backup(repo, BackupRequest(paths=(os.fsencode(src),)))
    monkeypatch.undo()
    assert result.partial and result.stats.errors == 3
    assert sorted(w.split(":")[0] for w in result.warnings) == sorted(
        str(src / n) for n in ("f0007", "f0300", "f0599")
    )
    assert all("cannot read: Permission denied" in w for w in result.warnings)
    assert result.stats.files_new == 601 - 3
    reopened = site.open("repo")
    for name, data in contents.items():
        entry = find(reopened, result.snapshot.tree, os.fsencode(src / name))
        if os.fsencode(src / name) in denied:
            assert entry is None
            continue
        assert entry is not None
        assert b"".join(reopened.get_blob(b) for b in entry.node.content) == data
    assert check(reopened).ok


def test_parent_selection_and_force(repo: Repository, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "f").write_bytes(b"x" * 100)
    first = backup(repo, BackupRequest(paths=(os.fsencode(a),)))
    other = backup(repo, BackupRequest(paths=(os.fsencode(b),)))
    assert other.snapshot.parent is None  # other paths: no parent
    assert other.stats.files_new == 1
    again = backup(repo, BackupRequest(paths=(os.fsencode(a),)))
    assert again.snapshot.parent == first.snapshot.id
    assert again.stats.files_unmodified == 1 and again.stats.bytes_read == 0
    forced = backup(repo, BackupRequest(paths=(os.fsencode(a),), force_read=True))
    assert forced.stats.files_changed == 1 and forced.stats.bytes_read == 100
    other_host = backup(repo, BackupRequest(paths=(os.fsencode(a),), hostname="elsewhere"))
    assert other_host.snapshot.parent is None and other_host.stats.bytes_read == 100
    explicit = backup(repo, BackupRequest(paths=(os.fsencode(a),), parent=other.snapshot.id))
    assert explicit.snapshot.parent == other.snapshot.id
    assert explicit.stats.files_new == 1  # b's tree has no a/f


def test_nested_and_repeated_paths_are_backed_up_once(
    repo: Repository, site: Site, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(b"f")
    paths = (os.fsencode(src / "sub"), os.fsencode(src), os.fsencode(src) + b"/./")
    result = backup(repo, BackupRequest(paths=paths))
    assert result.snapshot.paths == (os.fsencode(src),)
    assert result.stats.files_new == 1
    entry = find(site.open("repo"), result.snapshot.tree, os.fsencode(src / "sub"))
    assert entry is not None and entry.node.type == NodeType.DIR


def test_pack_list_names_only_what_the_snapshot_reaches(tmp_path: Path, repo: Repository) -> None:
    """Two backups through one Repository object: the second snapshot's keyless pack list (what
    replication copies and what a DR center keeps) holds no pack only the first one needs."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "a.bin").write_bytes(os.urandom(256 << 10))
    (second / "b.bin").write_bytes(os.urandom(256 << 10))
    one = backup(repo, BackupRequest(paths=(bytes(first),))).snapshot
    two = backup(repo, BackupRequest(paths=(bytes(second),))).snapshot
    only_first = set(one.packs) - set(two.packs)
    assert only_first, "the first snapshot's data packs are its own"
    reopened = Repository.open(repo.backend, PASSWORD)
    assert set(resolve(reopened, two.id.hex()).packs) == set(two.packs)
