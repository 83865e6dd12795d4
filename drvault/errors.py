"""User-facing errors and the exit codes they map to.

Every failure an operator can cause or meet (bad input, a damaged repository, an unreachable
center) is one of these classes. The CLI prints ``str(error)`` as one line and exits with
``error.exit_code``; anything else is a bug and exits with ``EXIT_INTERNAL``.
"""

from __future__ import annotations

import time

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
EXIT_THAWING = 16
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
    EXIT_THAWING: "archived packs are still thawing: rerun later (nothing is requested twice)",
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


class ObjectLockedError(PermanentError):
    """S3 Object Lock protects a version of the object: retention not yet passed, or a legal hold.

    ``until`` is in unix seconds; ``mode`` is ``COMPLIANCE`` or ``GOVERNANCE`` (or ``None`` when
    only a legal hold protects it).
    """

    def __init__(
        self, name: str, mode: str | None, until: float | None, legal_hold: bool = False
    ) -> None:
        reasons = []
        if mode and until is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
            reasons.append(f"Object Lock ({mode}) until {stamp}")
        if legal_hold:
            reasons.append("an Object Lock legal hold")
        super().__init__(f"{name}: protected by {' and by '.join(reasons) or 'Object Lock'}")
        self.name = name
        self.mode = mode
        self.until = until
        self.legal_hold = legal_hold


class TransientError(BackendError):
    """Connection lost, throttled, timed out: a retry may succeed."""


class ArchivedError(BackendError):
    """The object sits in a cold storage class and must be thawed before it can be read."""


class ThawPendingError(DrvaultError):
    """A restore needs archived packs whose thaw is requested but not finished (no waiting)."""

    exit_code = EXIT_THAWING
