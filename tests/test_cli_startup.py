"""What the command line imports at start-up: the centers, drills, retention and repair commands
register when first used (``LAZY_COMMANDS``), and that table names every one of them."""

from __future__ import annotations

import json
import subprocess
import sys

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
