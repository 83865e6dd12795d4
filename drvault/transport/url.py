"""Turn a repository URL into a backend.

```
/path, ./path, file:///path                 local disk
s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]    S3 or an S3-compatible store
sftp://[USER@]HOST[:PORT]/PATH              SFTP
```

The S3 and SFTP modules are imported only when such a URL is opened, so local runs never pay
for boto3 or paramiko.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from drvault.errors import UsageError
from drvault.transport.base import Backend
from drvault.transport.local import LocalBackend
from drvault.transport.options import TransportOptions


@dataclass(frozen=True, slots=True)
class S3Location:
    endpoint: str  # scheme://host[:port]
    bucket: str
    prefix: str  # "" or "a/b" (no leading or trailing slash)


@dataclass(frozen=True, slots=True)
class SftpLocation:
    user: str | None
    host: str
    port: int
    path: str  # absolute path of the repository on the server


def parse_s3(url: str) -> S3Location:
    rest = url.removeprefix("s3:")
    parts = urlsplit(rest)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{url}: expected s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]")
    if "@" in parts.netloc:  # the message must not echo the URL: it may hold a secret
        raise UsageError("no credentials in S3 URLs; use a profile or a credentials file")
    bucket, _, prefix = parts.path.strip("/").partition("/")
    if not bucket:
        raise UsageError(f"{url}: no bucket (expected s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX])")
    if parts.query or parts.fragment:
        raise UsageError(f"{url}: a repository URL takes no query or fragment")
    return S3Location(f"{parts.scheme}://{parts.netloc}", bucket, prefix.strip("/"))


def parse_sftp(url: str) -> SftpLocation:
    parts = urlsplit(url)
    if not parts.hostname:
        raise UsageError(f"{url}: expected sftp://[USER@]HOST[:PORT]/PATH")
    if parts.password is not None:
        raise UsageError(f"{url}: no passwords in URLs; use a key (--option sftp.key=FILE)")
    try:
        port = parts.port or 22
    except ValueError:
        raise UsageError(f"{url}: bad port") from None
    path = unquote(parts.path)
    if not path or path == "/":
        raise UsageError(f"{url}: no repository path on the server")
    user = unquote(parts.username) if parts.username else None
    return SftpLocation(user, parts.hostname, port, path.rstrip("/"))


def open_backend(url: str, options: TransportOptions | None = None) -> Backend:
    """The raw backend for ``url``; wrap it with :func:`drvault.transport.stack.stack`."""
    options = options or TransportOptions()
    if not url:
        raise UsageError("no repository given (argument or DRVAULT_REPOSITORY)")
    if url.startswith("s3:"):
        s3_location = parse_s3(url)  # a bad URL is a usage error even where the SDK is missing
        from drvault.transport.s3 import S3Backend

        return S3Backend(s3_location, options.s3)
    if url.startswith("sftp://"):
        sftp_location = parse_sftp(url)
        from drvault.transport.sftp import SftpBackend

        return SftpBackend(sftp_location, options.sftp)
    if url.startswith("file://"):
        return LocalBackend(unquote(urlsplit(url).path))
    if "://" in url:
        scheme = url.split(":", 1)[0]
        raise UsageError(
            f"{url}: unknown repository scheme {scheme!r} (known: a path, file://, s3:, sftp://)"
        )
    return LocalBackend(url)
