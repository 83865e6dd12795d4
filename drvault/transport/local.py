"""Backend on a local (or mounted) file system.

Writes go to a temporary name in the target directory, are fsynced, renamed into place, and the
directory is fsynced, so a crash leaves either the old state or the whole object.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from drvault.directio import write_direct
from drvault.errors import (
    AlreadyExistsError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from drvault.transport.base import Capabilities, ObjectInfo, ShortReadError

_TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _translate(name: str, exc: OSError) -> Exception:
    if exc.errno == errno.ENOENT:
        return NotFoundError(f"{name}: not found")
    if exc.errno == errno.EEXIST:
        return AlreadyExistsError(f"{name}: already exists")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EISDIR):
        return PermanentError(f"{name}: {exc.strerror}")
    return TransientError(f"{name}: {exc.strerror or exc}")


class LocalBackend:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise PermanentError(f"{name}: invalid object name")
        return self.root / name

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(storage_classes=False, connections=2, atomic_create=True)

    def close(self) -> None:
        pass

    def exists(self) -> bool:
        return self.root.is_dir()

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                write_direct(fd, data)  # an aligned buffer's whole blocks bypass the page cache
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                if exclusive:
                    os.link(tmp, path)  # fails with EEXIST: atomic create-if-absent
                    os.unlink(tmp)
                else:
                    os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
        except OSError as exc:
            raise _translate(name, exc) from exc

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        try:
            with open(path, "rb") as f:
                if offset:
                    f.seek(offset)
                data = f.read() if length is None else f.read(length)
        except OSError as exc:
            raise _translate(name, exc) from exc
        if length is not None and len(data) != length:
            raise ShortReadError(name, length, len(data))
        return data

    def stat(self, name: str) -> ObjectInfo:
        try:
            st = self._path(name).stat()
        except OSError as exc:
            raise _translate(name, exc) from exc
        return ObjectInfo(name, st.st_size, mtime=st.st_mtime)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose names start with ``prefix`` (a plain string prefix, as on S3)."""
        directory, _, _ = prefix.rpartition("/")
        base = self._path(directory) if directory else self.root
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            for f in files:
                if f.startswith(_TMP_PREFIX):
                    continue
                name = (f if rel == "." else f"{rel}/{f}").replace(os.sep, "/")
                if not name.startswith(prefix):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, f))
                except FileNotFoundError:
                    continue
                yield ObjectInfo(name, st.st_size, mtime=st.st_mtime)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except OSError as exc:
            raise _translate(name, exc) from exc
