"""The write path under concurrency: claims, compression probes, zero chunks, failures."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import MakeRepo, open_repo

from drvault.backup import BackupRequest, backup
from drvault.errors import PermanentError
from drvault.repository import layout
from drvault.repository.pack import BLOB_DATA, COMP_NONE, COMP_ZSTD
from drvault.repository.repository import ProbeHint, Repository
from drvault.restore import restore
from drvault.snapshots import resolve
from drvault.transport import LocalBackend


def test_many_threads_store_each_blob_exactly_once(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo(pack_size=256 << 10)
    blobs = [os.urandom(20_000) for _ in range(200)]
    work = blobs * 4  # every blob offered four times, concurrently
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda b: repo.put_blob(BLOB_DATA, b), work))
    repo.flush()
    assert sum(new for _, new in results) == len(blobs)
    assert repo.stats.blobs_new == len(blobs)
    reopened = open_repo(tmp_path / "repo")
    assert len(reopened.index) == len(blobs)
    for blob in blobs:
        assert reopened.get_blob(repo.blob_id(blob)) == blob
    stored = sum(1 for _ in LocalBackend(tmp_path / "repo").list("data/"))
    assert stored == repo.stats.packs_written > 1


def test_incompressible_blobs_are_stored_raw_and_text_compressed(repo: Repository) -> None:
    noise = os.urandom(64 << 10)
    text = b"INSERT INTO ledger VALUES (1, 'acct', 100);\n" * 1500
    assert repo.compress(noise)[1] == COMP_NONE
    assert repo.compress(text)[1] == COMP_ZSTD
    half = bytes(32 << 10) + os.urandom(32 << 10)  # one probe compresses: compress the blob
    stored, code = repo.compress(half)
    assert code == COMP_ZSTD and len(stored) < len(half)


def test_a_hint_skips_the_probe_after_a_compressed_blob_and_resumes_after_a_raw_one(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes: list[int] = []
    real = repo._probe_compressor

    def counting() -> object:
        probes.append(1)
        return real()

    monkeypatch.setattr(repo, "_probe_compressor", counting)
    text = b"INSERT INTO ledger VALUES (1, 'acct', 100);\n" * 1500
    noise = os.urandom(64 << 10)
    hint = ProbeHint()
    assert repo.compress(text, hint)[1] == COMP_ZSTD and hint.compressed  # probed first
    assert len(probes) == 1
    assert repo.compress(text, hint)[1] == COMP_ZSTD and len(probes) == 1  # no probe
    stored, code = repo.compress(noise, hint)  # no probe: compressed in full, kept raw
    assert code == COMP_NONE and stored == noise and not hint.compressed and len(probes) == 1
    assert repo.compress(noise, hint)[1] == COMP_NONE and len(probes) == 2  # probing again
    assert repo.compress(noise)[1] == COMP_NONE and len(probes) == 3  # no hint: always


def test_zero_chunks_get_their_true_id(repo: Repository) -> None:
    zeros = bytes(100_000)
    first, new = repo.put_blob(BLOB_DATA, zeros)
    second, again = repo.put_blob(BLOB_DATA, bytes(100_000))
    assert new and not again and first == second == repo.blob_id(zeros)
    repo.flush()
    assert repo.get_blob(first) == zeros


def test_worker_count_does_not_change_the_snapshot(make_repo: MakeRepo, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i}").write_bytes(os.urandom(1000 * i) + bytes(50_000))
    for workers in (1, 4):
        repo = make_repo(f"repo{workers}")
        result = backup(repo, BackupRequest(paths=(bytes(src),), workers=workers))
        assert result.stats.files_new == 30
    for workers in (1, 4):
        repo = open_repo(tmp_path / f"repo{workers}")
        out = tmp_path / f"out{workers}"
        restore(repo, resolve(repo, "latest"), bytes(out))
        for i in range(30):
            restored = out / src.relative_to("/") / f"f{i}"
            assert restored.read_bytes() == (src / f"f{i}").read_bytes()


def test_a_failing_upload_fails_the_backup_without_a_hang(
    make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(3 << 20))
    repo = make_repo(pack_size=256 << 10)
    original = LocalBackend.put

    def failing_put(self: LocalBackend, name: str, data: bytes, *, exclusive: bool = False) -> None:
        if name.startswith("data/"):
            raise PermanentError(f"{name}: disk full")
        original(self, name, data, exclusive=exclusive)

    monkeypatch.setattr(LocalBackend, "put", failing_put)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            backup(repo, BackupRequest(paths=(bytes(src),), workers=2))
        except BaseException as exc:  # collected for the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "backup hung after a failed upload"
    assert len(outcome) == 1 and isinstance(outcome[0], PermanentError)
    assert "disk full" in str(outcome[0])
    monkeypatch.undo()
    assert not list(LocalBackend(tmp_path / "repo").list(layout.SNAPSHOTS))
