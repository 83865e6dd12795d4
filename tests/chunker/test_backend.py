"""Implementation selection by DRVAULT_CHUNKER (each case in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drvault.chunker import IMPLEMENTATION

ROOT = Path(__file__).resolve().parents[2]
BLOCK_EXTENSION = "import sys; sys.modules['drvault.chunker._fastcdc'] = None; "
PRINT = "import drvault.chunker as c; c.selftest(); print(c.IMPLEMENTATION)"


def run(code: str, setting: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DRVAULT_CHUNKER"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if setting is not None:
        env["DRVAULT_CHUNKER"] = setting
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_native_loaded() -> None:
    """Fails when the C extension is not the one loaded, unless the fallback was asked for.

    The suite runs once as is (must load "native") and once with DRVAULT_CHUNKER=python.
    """
    expected = os.environ.get("DRVAULT_CHUNKER") or "native"
    assert expected == IMPLEMENTATION


@pytest.mark.parametrize(
    ("setting", "expected"), [(None, "native"), ("native", "native"), ("python", "python")]
)
def test_selection(setting: str | None, expected: str) -> None:
    result = run(PRINT, setting)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_missing_extension_falls_back_only_when_unset() -> None:
    result = run(BLOCK_EXTENSION + PRINT, None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python"
    result = run(BLOCK_EXTENSION + PRINT, "native")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "DRVAULT_CHUNKER=native" in result.stderr


def test_unknown_setting_is_an_import_error() -> None:
    result = run(PRINT, "rust")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "native, python" in result.stderr
