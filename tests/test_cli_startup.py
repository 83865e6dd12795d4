"""What the command line imports at start-up: the centers, drills, retention and repair commands
register when first used (``LAZY_COMMANDS``), and that table names every one of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from drvault.cli import LAZY_COMMANDS, cli

LAZY_MODULES = sorted(set(LAZY_COMMANDS.values()))

# In a fresh interpreter: the command modules loaded by ``import drvault.cli``, then every
# command the lazy modules add to the group, with the module that defines it.
PROBE = """
import importlib, json, sys
import drvault.cli as c
loaded = sorted(m for m in sys.modules if m in {modules!r})
before = set(c.cli.commands)
for name in {modules!r}:
    importlib.import_module(name)
added = {{n: c.cli.commands[n].callback.__module__ for n in set(c.cli.commands) - before}}
print(json.dumps({{"loaded": loaded, "added": added}}))
"""


def _probe() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=LAZY_MODULES)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    doc: dict[str, object] = json.loads(out)
    return doc


def test_command_modules_are_not_imported_at_start_up() -> None:
    assert _probe()["loaded"] == []


def test_the_table_names_exactly_the_commands_each_module_registers() -> None:
    assert _probe()["added"] == LAZY_COMMANDS


def test_help_lists_and_runs_every_lazy_command() -> None:
    runner = CliRunner()
    listing = runner.invoke(cli, ["--help"])
    assert listing.exit_code == 0, listing.output
    lines = listing.output.split("Commands:", 1)[1].splitlines()
    commands = {line.split()[0] for line in lines if line.startswith("  ") and line.split()}
    for name in LAZY_COMMANDS:
        assert name in commands
        shown = runner.invoke(cli, [name, "--help"])
        assert shown.exit_code == 0, shown.output
        assert f"Usage: cli {name}" in shown.output


def test_an_unknown_command_is_still_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def _backup_and_restore(tmp_path: Path, template: str) -> str:
    """Run ``template`` in a fresh interpreter with the init, backup and restore arguments of
    a one-file tree filled in; check the restored file; the program's output."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"data" * 1000)
    repo, src, dst = (str(tmp_path / n) for n in ("repo", "src", "dst"))
    code = template.format(
        init=["init", repo, "--kdf", "n=1024,r=8,p=1"],
        backup=["backup", repo, src],
        restore=["restore", repo, "latest", "--target", dst],
    )
    env = {**os.environ, "DRVAULT_PASSWORD": "pw"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, text=True, env=env
    ).stdout
    restored = tmp_path / "dst" / str(tmp_path / "src" / "f").lstrip("/")  # absolute paths kept
    assert restored.read_bytes() == b"data" * 1000
    return out


# A backup and a restore in one fresh interpreter, then the third-party packages they loaded.
RUN = """
import sys
from drvault.cli import main
for args in ({init!r}, {backup!r}, {restore!r}):
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def test_backup_and_restore_load_no_numpy(tmp_path: Path) -> None:
    # numpy (once the index's arrays) held 11 MiB of resident memory in every command.
    modules = _backup_and_restore(tmp_path, RUN).split()
    assert "drvault" in modules and "zstandard" in modules  # the probe sees the imports
    assert "numpy" not in modules


# After init and a backup, a restore whose scrypt waits until the restore module's import has
# begun: that happens only if the key is derived beside the imports, not before them.
OVERLAP = """
import sys, threading, time
from drvault.cli import main
for args in ({init!r}, {backup!r}):
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
assert "drvault.restore" not in sys.modules
import drvault.repository.keys as keys
real, seen = keys.scrypt, []
def scrypt(*args, **kwargs):
    deadline = time.monotonic() + 20
    while "drvault.restore" not in sys.modules and time.monotonic() < deadline:
        time.sleep(0.002)
    seen.append([threading.current_thread() is threading.main_thread(),
                 "drvault.restore" in sys.modules])
    return real(*args, **kwargs)
keys.scrypt = scrypt
try:
    main({restore!r})
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print(seen)
"""


def test_the_key_is_derived_while_the_command_imports(tmp_path: Path) -> None:
    out = _backup_and_restore(tmp_path, OVERLAP)
    assert out.splitlines()[-1] == "[[False, True]]"  # one derivation, in a thread, beside imports


def test_the_command_line_imports_no_crypto_or_repository_code() -> None:
    code = (
        "import sys, drvault.cli\n"
        "print(sorted(m for m in ('cryptography', 'zstandard', 'blake3', 'nacl', 'drvault.chunker',"
        " 'drvault.repository.repository', 'drvault.repository.crypto') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    assert out.stdout.strip() == "[]"
