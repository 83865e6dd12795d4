"""Where a password comes from: a file, the environment, or the terminal.

Order: ``--password-file`` / ``DRVAULT_PASSWORD_FILE``, then ``DRVAULT_PASSWORD``, then a prompt
when standard input is a terminal. A cron job without any of them fails with one clear line
instead of hanging on a prompt nobody sees.
"""

from __future__ import annotations

import getpass
import os
import sys

from drvault.errors import UsageError


def read_password_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read password file: {exc.strerror}") from None
    password = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not password:
        raise UsageError(f"{path}: password file is empty")
    return password


def get_password(
    password_file: str | None, *, confirm: bool = False, prompt: str = "Password"
) -> bytes:
    path = password_file or os.environ.get("DRVAULT_PASSWORD_FILE")
    if path:
        return read_password_file(path)
    env = os.environ.get("DRVAULT_PASSWORD")
    if env:
        return env.encode()
    if not sys.stdin.isatty():
        raise UsageError(
            "no password: set DRVAULT_PASSWORD_FILE or DRVAULT_PASSWORD, or run on a terminal"
        )
    return _prompt(prompt, confirm=confirm)


def get_new_password(password_file: str | None) -> bytes:
    """A password for a new key slot: from ``password_file``, else asked twice on a terminal
    (never from the environment, which holds the password that opened the repository)."""
    if password_file:
        return read_password_file(password_file)
    if not sys.stdin.isatty():
        raise UsageError("no new password: use --new-password-file")
    return _prompt("New password", confirm=True)


def _prompt(prompt: str, *, confirm: bool) -> bytes:
    first = getpass.getpass(f"{prompt}: ").encode()
    if not first:
        raise UsageError("empty password refused")
    if confirm and getpass.getpass(f"{prompt} (again): ").encode() != first:
        raise UsageError("passwords do not match")
    return first
