"""bench.ceiling and the harness's share of it, on a few MiB: what is measured and how it is
reported, never how fast it is."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from bench import ceiling, harness
from drvault.chunker import Chunker, ChunkerParams


def _data(size: int = 3 << 20) -> bytes:
    rng = random.Random(5)
    text = b"INSERT INTO accounts VALUES (%d, 'branch', 1200.50);\n"
    half = b"".join(text % rng.randrange(10**6) for _ in range(size // 2 // len(text) + 1))
    return half[: size // 2] + rng.randbytes(size - size // 2)


def test_measures_every_stage_over_the_chunks_a_backup_would_cut() -> None:
    data = _data()
    result = ceiling.measure(data, 32 << 10, 1, "chacha20-poly1305", "hmac-sha256", repeats=1)
    params = ChunkerParams.for_average(32 << 10)
    assert result.chunks == len(Chunker.canonical(params).cut_points(data))
    assert result.bytes == len(data)
    assert (result.chunk_avg, result.level, result.cores) == (32 << 10, 1, os.cpu_count())
    rates = (
        result.chunk_copy_mb_s,
        result.blob_id_mb_s,
        result.zstd_mb_s,
        result.aead_mb_s,
        result.one_core_mb_s,
    )
    assert all(r > 0 for r in rates)
    assert result.ceiling_mb_s == pytest.approx(result.one_core_mb_s * result.cores)
    doc = result.doc()
    assert doc["ceiling_mb_s"] == round(result.ceiling_mb_s, 1)
    assert (result.cipher, result.id_hash) == ("chacha20-poly1305", "hmac-sha256")
    text = ceiling.describe(result)
    assert "zstd 1" in text and "chacha20-poly1305" in text and "hmac-sha256" in text


def test_command_line_prints_the_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dump.sql"
    path.write_bytes(_data(1 << 20))
    args = ["--chunk-avg", "64K", "--level", "3", "--repeats", "1", "--json"]
    assert ceiling.main([str(path), *args]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["bytes"], doc["chunk_avg"], doc["level"]) == (1 << 20, 64 << 10, 3)
    assert (doc["cipher"], doc["id_hash"]) == ("aes-256-gcm", "blake3")


def test_harness_uses_the_repository_settings_and_reports_the_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "day1").mkdir()
    (tmp_path / "day1" / "bank.sql").write_bytes(b"dump")
    asked: list[tuple[bytes, int, int, str, str]] = []
    made = ceiling.Ceiling(
        4, 1, 2, 32 << 10, 1, "sm4-gcm", "hmac-sm3", 800.0, 2000.0, 300.0, 5000.0, 200.0
    )

    def fake(
        data: bytes, avg: int, level: int, cipher: str, id_hash: str, repeats: int = 3
    ) -> ceiling.Ceiling:
        asked.append((data, avg, level, cipher, id_hash))
        return made

    monkeypatch.setattr(ceiling, "measure", fake)
    lines: list[str] = []
    config: dict[str, Any] = {
        "chunker": {"avg_size": 32 << 10},
        "compression_level": 1,
        "cipher": "sm4-gcm",
        "id_hash": "hmac-sm3",
    }
    doc = harness.share_of_ceiling(tmp_path, config, 240.0, lines.append)
    assert asked == [(b"dump", 32 << 10, 1, "sm4-gcm", "hmac-sm3")]
    assert doc["ceiling_mb_s"] == 400.0 and doc["drvault_share"] == 0.6
    assert lines[-1] == "drvault's first backup of the dump: 240 MB/s, 60% of the ceiling"
    assert harness.share_of_ceiling(tmp_path, {}, 240.0, lines.append) == {}
    assert "not measured" in lines[-1] and len(asked) == 1
