"""Settings of the transports and their wrappers, as frozen values.

They come from command-line flags (``--limit-upload``, ``-o s3.path-style=true``), the
environment and, later, the YAML configuration. Nothing here holds a secret: credentials and keys
are referenced by file or profile name, never inline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from drvault.errors import UsageError
from drvault.sizes import parse_rate

LOCK_MODES = ("compliance", "governance")


@dataclass(frozen=True, slots=True)
class S3Options:
    path_style: bool = True  # S3-compatible stores (Ceph, MinIO) usually want path style
    region: str | None = None
    profile: str | None = None  # a profile of the AWS shared config / credentials files
    credentials_file: str | None = None  # path of a credentials file (never the keys inline)
    storage_class_data: str | None = None  # e.g. STANDARD_IA for data packs
    storage_class_metadata: str | None = None  # e.g. STANDARD for trees, index, snapshots
    multipart_threshold: int = 8 << 20
    part_size: int = 8 << 20
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # S3 Object Lock on every write (the bucket must have Object Lock enabled): "compliance" or
    # "governance", retained for lock_days from the write. None: the bucket's default applies.
    lock_mode: str | None = None
    lock_days: int = 0

    def __post_init__(self) -> None:
        if self.lock_mode is not None:
            mode = self.lock_mode.strip().lower()
            if mode not in LOCK_MODES:
                raise UsageError(
                    f"s3.lock-mode={self.lock_mode}: expected one of {', '.join(LOCK_MODES)}"
                )
            object.__setattr__(self, "lock_mode", mode)
        if self.lock_days < 0:
            raise UsageError(f"s3.lock-days={self.lock_days}: expected 0 or more days")


@dataclass(frozen=True, slots=True)
class SftpOptions:
    known_hosts: str | None = None  # default: DRVAULT_SFTP_KNOWN_HOSTS, then ~/.ssh/known_hosts
    key: str | None = None  # default: DRVAULT_SFTP_KEY, then the agent and ~/.ssh/id_*
    connect_timeout: float = 15.0
    link_timeout: float = 15.0  # a silent link fails with "link lost" after about this long


@dataclass(frozen=True, slots=True)
class TransportOptions:
    limit_upload: int | None = None  # bytes per second
    limit_download: int | None = None  # bytes per second
    connections: int | None = None  # concurrency cap; None: the backend's own default
    retry_deadline: float = 300.0  # seconds a request may keep retrying transient errors
    retry_base: float = 0.5  # first backoff, doubled each attempt, with jitter
    retry_max: float = 30.0  # longest single backoff
    s3: S3Options = field(default_factory=S3Options)
    sftp: SftpOptions = field(default_factory=SftpOptions)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(key: str, current: object, text: str) -> object:
    if isinstance(current, bool):
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise UsageError(f"-o {key}={text}: expected true or false")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"-o {key}={text}: expected an integer") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"-o {key}={text}: expected a number") from None
    return text


def _set(obj: object, key: str, name: str, text: str) -> object:
    attr = name.replace("-", "_")
    known = {f.name for f in fields(obj)}  # type: ignore[arg-type]
    if attr not in known:
        choices = ", ".join(sorted(n.replace("_", "-") for n in known))
        raise UsageError(f"-o {key}: unknown option (known: {choices})")
    current = getattr(obj, attr)
    return replace(obj, **{attr: _convert(key, current, text)})  # type: ignore[type-var]


def apply_option(options: TransportOptions, assignment: str) -> TransportOptions:
    """Apply one ``-o`` assignment such as ``s3.path-style=false`` or ``connections=8``."""
    key, sep, value = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"-o {assignment}: expected KEY=VALUE")
    group, dot, name = key.partition(".")
    if dot and group in ("s3", "sftp"):
        inner = _set(getattr(options, group), key, name, value)
        return replace(options, **{group: inner})  # type: ignore[arg-type]
    name = key
    if name in ("limit-upload", "limit-download"):
        return replace(options, **{name.replace("-", "_"): parse_rate(value)})  # type: ignore[arg-type]
    if name == "connections":
        if not value.isdigit() or int(value) < 1:
            raise UsageError(f"-o {key}={value}: expected a positive integer")
        return replace(options, connections=int(value))
    if name not in ("retry-deadline", "retry-base", "retry-max"):
        raise UsageError(
            f"-o {key}: unknown option (known: connections, limit-upload, limit-download, "
            "retry-deadline, retry-base, retry-max, s3.*, sftp.*)"
        )
    return _set(options, key, name, value)  # type: ignore[return-value]


def from_environment(options: TransportOptions | None = None) -> TransportOptions:
    """Fill the SFTP key and known_hosts from ``DRVAULT_SFTP_KEY``/``DRVAULT_SFTP_KNOWN_HOSTS``."""
    options = options or TransportOptions()
    sftp = options.sftp
    if sftp.known_hosts is None and os.environ.get("DRVAULT_SFTP_KNOWN_HOSTS"):
        sftp = replace(sftp, known_hosts=os.environ["DRVAULT_SFTP_KNOWN_HOSTS"])
    if sftp.key is None and os.environ.get("DRVAULT_SFTP_KEY"):
        sftp = replace(sftp, key=os.environ["DRVAULT_SFTP_KEY"])
    return replace(options, sftp=sftp)


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"
