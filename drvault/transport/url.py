"""Turn a repository URL into a backend."""

from __future__ import annotations

from urllib.parse import urlparse

from drvault.errors import UsageError
from drvault.transport.base import Backend
from drvault.transport.local import LocalBackend


def open_backend(url: str) -> Backend:
    """``/path``, ``./path`` or ``file:///path`` give a local backend."""
    if not url:
        raise UsageError("no repository given (argument or DRVAULT_REPOSITORY)")
    if url.startswith("file://"):
        return LocalBackend(urlparse(url).path)
    if "://" in url or url.startswith("s3:"):
        scheme = url.split(":", 1)[0]
        raise UsageError(f"{url}: repository scheme {scheme!r} is not supported by this build")
    return LocalBackend(url)
