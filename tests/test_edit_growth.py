"""Issue acceptance: a day's edits to a 512 MiB text file add under 5% of its size.

1% of the file rewritten in place as 50 edits, 0.5% inserted at 50 random positions; default
chunk sizes. (restic 0.14 grows by ~33% on the same edit: see docs/benchmarks.md.)
"""

from __future__ import annotations

from pathlib import Path

from bench.corpus import dir_size, edit_text_file, write_text_file
from drvault.backup import BackupRequest, backup
from drvault.repository.keys import KdfParams
from drvault.repository.repository import Repository
from drvault.repository.suite import Suite
from drvault.restore import restore
from drvault.snapshots import resolve
from drvault.transport import LocalBackend

SIZE = 512 << 20


def test_day_of_edits_adds_under_five_percent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    target = data / "dump.txt"
    write_text_file(target, SIZE, seed=11)
    day2 = tmp_path / "day2.txt"
    edit = edit_text_file(target, day2, seed=12)
    assert (
        edit["changed_bytes"] >= SIZE // 100 - 100 and edit["inserted_bytes"] >= SIZE // 200 - 100
    )

    repo_dir = tmp_path / "repo"
    repo = Repository.init(
        LocalBackend(repo_dir), b"pw", suite=Suite.choose("intl"), kdf=KdfParams(n=1024)
    )
    backup(repo, BackupRequest(paths=(bytes(data),)))
    size1 = dir_size(repo_dir)

    day2.replace(target)
    repo = Repository.open(LocalBackend(repo_dir), b"pw")
    result = backup(repo, BackupRequest(paths=(bytes(data),)))
    growth = dir_size(repo_dir) - size1
    assert result.stats.files_changed == 1
    assert growth < 0.05 * SIZE, f"grew by {growth / SIZE:.2%}"

    out = tmp_path / "out"
    restore(repo, resolve(repo, "latest"), bytes(out))
    restored = out / target.relative_to("/")
    assert restored.stat().st_size == target.stat().st_size
    with open(restored, "rb") as a, open(target, "rb") as b:
        while True:
            x, y = a.read(1 << 24), b.read(1 << 24)
            assert x == y
            if not x:
                break
