"""User-facing errors and the exit codes they map to.

Every failure an operator can cause or meet (bad input, a damaged repository, an unreachable
center) is one of these classes. The CLI prints ``str(error)`` as one line and exits with
``error.exit_code``; anything else is a bug and exits with ``EXIT_INTERNAL``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_NONCOMPLIANT = 4
EXIT_NO_REPOSITORY = 10
EXIT_BAD_PASSWORD = 11
EXIT_LOCKED = 12
EXIT_INTEGRITY = 13
EXIT_UNSAFE = 14
EXIT_BACKEND = 15
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug: rerun with --debug and report it)",
    EXIT_USAGE: "usage error: bad arguments, options or configuration",
    EXIT_PARTIAL: "backup saved, but some files changed while being read or could not be read",
    EXIT_NONCOMPLIANT: "a backup set is out of compliance (status, policy check)",
    EXIT_NO_REPOSITORY: "repository missing, not a drvault repository, or already exists",
    EXIT_BAD_PASSWORD: "wrong password: no key slot opens with it",
    EXIT_LOCKED: "repository is locked by another process",
    EXIT_INTEGRITY: "integrity error: a corrupt, truncated or missing object (named)",
    EXIT_UNSAFE: "unsafe snapshot content refused (path escaping the target)",
    EXIT_BACKEND: "storage backend unreachable or refused the operation",
    EXIT_INTERRUPTED: "interrupted",
}


class DrvaultError(Exception):
    """Base of all errors meant for the operator: one line, one exit code."""

    exit_code: int = EXIT_INTERNAL


class UsageError(DrvaultError):
    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Malformed configuration file or option value."""


class RepositoryNotFoundError(DrvaultError):
    exit_code = EXIT_NO_REPOSITORY


class RepositoryExistsError(DrvaultError):
    exit_code = EXIT_NO_REPOSITORY


class WrongPasswordError(DrvaultError):
    exit_code = EXIT_BAD_PASSWORD


class LockedError(DrvaultError):
    exit_code = EXIT_LOCKED


class IntegrityError(DrvaultError):
    """An object failed verification. ``name`` is the repository path of the object."""

    exit_code = EXIT_INTEGRITY

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class UnsafePathError(DrvaultError):
    exit_code = EXIT_UNSAFE


class BackendError(DrvaultError):
    """Base of storage errors; transports raise one of the three subclasses."""

    exit_code = EXIT_BACKEND


class PermanentError(BackendError):
    """Retrying cannot help: access denied, bad request, and the like."""


class NotFoundError(PermanentError):
    """The object does not exist."""


class AlreadyExistsError(PermanentError):
    """A create-if-absent found the object already there."""


class TransientError(BackendError):
    """Connection lost, throttled, timed out: a retry may succeed."""


class ArchivedError(BackendError):
    """The object sits in a cold storage class and must be thawed before it can be read."""
