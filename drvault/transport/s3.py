"""Backend on S3 or an S3-compatible store (the only module that imports boto3 and botocore).

Object ``NAME`` lives at key ``PREFIX/NAME`` in one bucket. Uploads carry a CRC32 checksum the
server verifies; large ones go up as multipart uploads with a few parts in flight. A put with
``exclusive=True`` is a conditional write (``If-None-Match: *``), atomic on the server, also for
multipart uploads. The client makes one attempt per request: drvault's retry wrapper retries
what this module classifies as transient.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3.session
import botocore.exceptions as bce
import botocore.session
from botocore.config import Config

from drvault.errors import (
    AlreadyExistsError,
    ArchivedError,
    BackendError,
    NotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)
from drvault.transport.base import Capabilities, ObjectInfo, ShortReadError, kind_of
from drvault.transport.options import S3Options
from drvault.transport.url import S3Location

_CHECKSUM = "CRC32"
_PARTS_IN_FLIGHT = 4
_MAX_PARTS = 10_000
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_EXISTS = {"412", "PreconditionFailed", "ConditionalRequestConflict"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}
_BUSY = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}
_UNREACHABLE = (bce.ConnectionError, bce.HTTPClientError, bce.IncompleteReadError)


class _Reader(io.RawIOBase):
    """A seekable read-only file over a buffer, so boto3 can send a memoryview without a copy."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view.cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        stop = len(self._view) if size is None or size < 0 else self._pos + size
        chunk = bytes(self._view[self._pos : stop])
        self._pos += len(chunk)
        return chunk


def _body(data: bytes | memoryview) -> bytes | _Reader:
    return data if isinstance(data, bytes) else _Reader(memoryview(data))


def _code(exc: bce.ClientError) -> tuple[str, int]:
    """The S3 error code and HTTP status of a refused request."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(exc.response.get("Error", {}).get("Code", "")), int(status)


class S3Backend:
    def __init__(self, location: S3Location, options: S3Options) -> None:
        self._where = location
        self._options = options
        self._bucket = location.bucket
        self._prefix = f"{location.prefix}/" if location.prefix else ""
        self._region = (
            options.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        self._client = self._make_client()

    def _make_client(self) -> Any:
        options = self._options
        profile = options.profile
        if options.credentials_file:
            if not os.path.isfile(options.credentials_file):
                raise UsageError(f"{options.credentials_file}: credentials file not found")
            profile = profile or "default"  # an explicit profile: the file wins over AWS_* vars
        config = Config(
            s3={"addressing_style": "path" if options.path_style else "virtual"},
            retries={"total_max_attempts": 1},
            max_pool_connections=64,
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            request_checksum_calculation="when_required",
            tcp_keepalive=True,
        )
        try:
            core = botocore.session.Session(profile=profile)
            if options.credentials_file:
                core.set_config_variable("credentials_file", options.credentials_file)
            session = boto3.session.Session(botocore_session=core)
            return session.client(
                "s3", region_name=self._region, endpoint_url=self._where.endpoint, config=config
            )
        except bce.ProfileNotFound:
            where = options.credentials_file or "the AWS config and credentials files"
            raise UsageError(f"S3 profile {profile!r} not found in {where}") from None
        except (bce.BotoCoreError, ValueError) as exc:
            raise UsageError(f"{self.location}: cannot set up the S3 client: {exc}") from None

    @property
    def location(self) -> str:
        prefix = f"/{self._where.prefix}" if self._where.prefix else ""
        return f"s3:{self._where.endpoint}/{self._bucket}{prefix}"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(storage_classes=True, connections=16, atomic_create=True)

    def _key(self, name: str) -> str:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise PermanentError(f"{name}: invalid object name")
        return self._prefix + name

    def _translate(self, name: str, exc: Exception) -> BackendError:
        """drvault's error for a boto3/botocore exception raised while working on ``name``."""
        endpoint = self._where.endpoint
        if isinstance(exc, bce.ClientError):
            code, status = _code(exc)
            error = exc.response.get("Error", {})
            message = error.get("Message", "") or code
            if code == "NoSuchBucket":
                return NotFoundError(f"{name}: bucket {self._bucket} is missing at {endpoint}")
            if code == "InvalidObjectState":
                cls = error.get("StorageClass")
                where = f"storage class {cls}" if cls else "an archive storage class"
                return ArchivedError(f"{name}: in {where}; thaw (restore) it before reading")
            if code in _NOT_FOUND or status == 404:
                return NotFoundError(f"{name}: not found")
            if code in _EXISTS or status == 412:
                return AlreadyExistsError(f"{name}: already exists")
            if code in _DENIED or status == 403:
                return PermanentError(
                    f"{name}: access denied by {endpoint} ({code}: {message}); "
                    "check the credentials, profile and bucket policy"
                )
            if code in _BUSY or status >= 500 or status == 429:
                return TransientError(f"{name}: {endpoint} is busy or failing ({code}: {message})")
            return PermanentError(f"{name}: {endpoint} refused the request ({code}: {message})")
        if isinstance(exc, bce.SSLError) and "certificate" in str(exc).lower():
            return PermanentError(f"{name}: TLS certificate of {endpoint} not trusted: {exc}")
        if isinstance(exc, _UNREACHABLE):
            return TransientError(f"{name}: {endpoint} unreachable or connection lost: {exc}")
        if isinstance(exc, bce.FlexibleChecksumError):
            return TransientError(f"{name}: checksum mismatch in transfer: {exc}")
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            return PermanentError(
                f"{name}: no S3 credentials (set a profile, a credentials file or AWS_* variables)"
            )
        return PermanentError(f"{name}: S3 request failed: {exc}")

    @contextlib.contextmanager
    def _errors(self, name: str) -> Iterator[None]:
        """Raise drvault's error for any boto3/botocore exception of the block."""
        try:
            yield
        except (bce.ClientError, bce.BotoCoreError) as exc:
            raise self._translate(name, exc) from exc

    def _class_for(self, name: str, hint: str | None) -> dict[str, str]:
        if hint is None:
            o = self._options
            hint = o.storage_class_data if kind_of(name) == "data" else o.storage_class_metadata
        return {"StorageClass": hint} if hint else {}

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        key = self._key(name)
        extra = self._class_for(name, storage_class)
        if exclusive:
            extra["IfNoneMatch"] = "*"
        with self._errors(name):
            if memoryview(data).nbytes >= self._options.multipart_threshold:
                self._put_multipart(key, memoryview(data), extra)
            else:
                self._client.put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=_body(data),
                    ChecksumAlgorithm=_CHECKSUM,
                    **extra,
                )

    def _put_multipart(self, key: str, view: memoryview, extra: dict[str, str]) -> None:
        view = view.cast("B")
        size = len(view)
        part_size = max(self._options.part_size, -(-size // _MAX_PARTS))
        if_none_match = extra.pop("IfNoneMatch", None)
        upload_id = self._client.create_multipart_upload(
            Bucket=self._bucket, Key=key, ChecksumAlgorithm=_CHECKSUM, **extra
        )["UploadId"]

        def send(number: int, start: int) -> dict[str, Any]:
            answer = self._client.upload_part(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=_Reader(view[start : start + part_size]),
                ChecksumAlgorithm=_CHECKSUM,
            )
            part = {"PartNumber": number, "ETag": answer["ETag"]}
            if answer.get(f"Checksum{_CHECKSUM}"):
                part[f"Checksum{_CHECKSUM}"] = answer[f"Checksum{_CHECKSUM}"]
            return part

        try:
            with ThreadPoolExecutor(_PARTS_IN_FLIGHT, thread_name_prefix="s3-part") as pool:
                starts = range(0, size, part_size)
                futures = [pool.submit(send, n, s) for n, s in enumerate(starts, start=1)]
                try:
                    parts = [f.result() for f in futures]
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
            done = {"IfNoneMatch": if_none_match} if if_none_match else {}
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **done,
            )
        except BaseException:
            # If the abort fails too, a lifecycle rule for stale uploads is the backstop.
            with contextlib.suppress(bce.ClientError, bce.BotoCoreError):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id
                )
            raise

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        key = self._key(name)
        if length == 0:
            self.stat(name)  # a missing object is still an error
            return b""
        ranged: dict[str, str] = {}
        if length is not None:
            ranged["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            ranged["Range"] = f"bytes={offset}-"
        with self._errors(name):
            try:
                answer = self._client.get_object(Bucket=self._bucket, Key=key, **ranged)
                data: bytes = answer["Body"].read()
            except bce.ClientError as exc:
                code, status = _code(exc)
                if code != "InvalidRange" and status != 416:
                    raise
                if length is None:
                    return b""  # offset at or past the end, as a local file would answer
                raise ShortReadError(name, length, 0) from None
        if length is not None and len(data) != length:
            raise ShortReadError(name, length, len(data))
        return data

    def stat(self, name: str) -> ObjectInfo:
        key = self._key(name)
        with self._errors(name):
            head = self._client.head_object(Bucket=self._bucket, Key=key)
        return ObjectInfo(name, int(head["ContentLength"]), head.get("StorageClass", "STANDARD"))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose names start with ``prefix``; a missing bucket lists as empty."""
        cut = len(self._prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self._prefix + prefix
        )
        it = iter(pages)
        while True:
            try:
                page = next(it)
            except StopIteration:
                return
            except (bce.ClientError, bce.BotoCoreError) as exc:
                error = self._translate(prefix or "/", exc)
                if isinstance(error, NotFoundError):
                    return
                raise error from exc
            for obj in page.get("Contents", ()):
                storage_class = obj.get("StorageClass", "STANDARD")
                yield ObjectInfo(obj["Key"][cut:], int(obj["Size"]), storage_class)

    def delete(self, name: str) -> None:
        self.stat(name)  # DELETE of a missing key succeeds on S3; the protocol wants an error
        with self._errors(name):
            self._client.delete_object(Bucket=self._bucket, Key=self._key(name))

    def exists(self) -> bool:
        """Whether the bucket exists and answers; raises if it cannot be reached or is denied."""
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            error = self._translate(f"bucket {self._bucket}", exc)
            if isinstance(error, NotFoundError):
                return False
            raise error from exc
        return True

    def create(self) -> None:
        """Create the bucket if absent (S3 has no directories: the prefix needs nothing)."""
        if self.exists():
            return
        where = {}
        if self._region != "us-east-1":
            where["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        with self._errors(f"bucket {self._bucket}"):
            try:
                self._client.create_bucket(Bucket=self._bucket, **where)
            except bce.ClientError as exc:
                if _code(exc)[0] != "BucketAlreadyOwnedByYou":  # created meanwhile: fine
                    raise

    def thaw(self, name: str, days: int = 1, tier: str = "Standard") -> None:
        """Start restoring an archived object for ``days``; a restore in progress is fine."""
        request = {"Days": days, "GlacierJobParameters": {"Tier": tier}}
        key = self._key(name)
        with self._errors(name):
            try:
                self._client.restore_object(Bucket=self._bucket, Key=key, RestoreRequest=request)
            except bce.ClientError as exc:
                code = _code(exc)[0]
                if code == "InvalidObjectState":
                    raise PermanentError(f"{name}: not in an archive storage class") from exc
                if code != "RestoreAlreadyInProgress":
                    raise

    def set_storage_class(self, name: str, storage_class: str) -> None:
        """Move an object to another storage class by copying it onto itself (up to 5 GiB)."""
        key = self._key(name)
        with self._errors(name):
            self._client.copy_object(
                Bucket=self._bucket,
                Key=key,
                CopySource={"Bucket": self._bucket, "Key": key},
                StorageClass=storage_class,
                MetadataDirective="COPY",
                ChecksumAlgorithm=_CHECKSUM,
            )

    def close(self) -> None:
        self._client.close()
