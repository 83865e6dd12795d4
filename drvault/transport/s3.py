"""Backend on S3 or an S3-compatible store (the only module that imports boto3 and botocore).

Object ``NAME`` lives at key ``PREFIX/NAME`` in one bucket. Uploads carry a CRC32 checksum the
server verifies; large ones go up as multipart uploads with a few parts in flight. A put with
``exclusive=True`` is a conditional write (``If-None-Match: *``), atomic on the server, also for
multipart uploads. The client makes one attempt per request: drvault's retry wrapper retries
what this module classifies as transient.

Beyond the ``Backend`` protocol the backend is ``ColdStorage``: archive classes (GLACIER,
DEEP_ARCHIVE) are read after a thaw (RestoreObject, requested once: a HEAD shows a thaw under
way), and Object Lock is honoured. With ``S3Options.lock_mode`` every write (put, multipart put,
class change) carries a retention of ``lock_days``; ``purge`` deletes every version of an object
only when none is locked, and never asks to bypass a GOVERNANCE retention.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import math
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
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
    ObjectLockedError,
    PermanentError,
    TransientError,
    UsageError,
)
from drvault.transport.base import (
    Capabilities,
    LockMode,
    ObjectInfo,
    ObjectState,
    RestoreStatus,
    ShortReadError,
    kind_of,
)
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
_ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})  # a GET needs a restore first
_ARCHIVE_TIERS = frozenset({"ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"})  # Intelligent-Tiering's
_THAW_TIERS = ("Expedited", "Standard", "Bulk")
_ONGOING = re.compile(r'ongoing-request\s*=\s*"(true|false)"', re.IGNORECASE)
_EXPIRY = re.compile(r'expiry-date\s*=\s*"([^"]+)"', re.IGNORECASE)
_DAY = 86_400
_Ids = list[str]  # (``S3Backend.list`` shadows the builtin inside the class)


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


def _utc(when: float) -> datetime:
    """A retain-until date: ``when`` rounded up to the second (never earlier than asked)."""
    return datetime.fromtimestamp(math.ceil(when), UTC)


def _seconds(value: object) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _restore_of(header: str | None) -> tuple[RestoreStatus, float | None]:
    """Thaw progress and expiry (unix seconds) from ``x-amz-restore``."""
    if not header:
        return "none", None
    ongoing = _ONGOING.search(header)
    if ongoing and ongoing.group(1).lower() == "true":
        return "ongoing", None
    found = _EXPIRY.search(header)
    try:
        expiry = parsedate_to_datetime(found.group(1)).timestamp() if found else None
    except (TypeError, ValueError):
        expiry = None
    return "done", expiry


def _lock_mode(value: object) -> LockMode | None:
    mode = str(value or "").upper()
    if mode == "COMPLIANCE":
        return "COMPLIANCE"
    if mode == "GOVERNANCE":
        return "GOVERNANCE"
    return None


def _state_of(name: str, head: dict[str, Any]) -> ObjectState:
    """The ``ObjectState`` of a HeadObject answer."""
    storage_class = str(head.get("StorageClass") or "STANDARD")
    restore, expiry = _restore_of(head.get("Restore"))
    return ObjectState(
        name=name,
        size=int(head.get("ContentLength", 0)),
        storage_class=storage_class,
        archived=storage_class in _ARCHIVE_CLASSES or head.get("ArchiveStatus") in _ARCHIVE_TIERS,
        restore=restore,
        restore_expiry=expiry if restore == "done" else None,
        lock_mode=_lock_mode(head.get("ObjectLockMode")),
        retain_until=_seconds(head.get("ObjectLockRetainUntilDate")),
        legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
        mtime=_seconds(head.get("LastModified")),
    )


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
        self._lock: tuple[str, int | None] | None = None
        self._lock_known = False
        # A lock bucket refuses a write without Content-MD5 or an SDK checksum header. CopyObject
        # has no body and its ChecksumAlgorithm only names the new object's checksum, so a copy
        # into a lock bucket carries the MD5 of its (empty) body.
        self._client.meta.events.register("before-call.s3.CopyObject", self._copy_md5)

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
            if code == "ObjectNotInActiveTierError":
                return ArchivedError(
                    f"{name}: in an archive storage class; thaw (restore) it before copying"
                )
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

    def _copy_md5(self, params: dict[str, Any], **_: Any) -> None:
        headers = params["headers"]
        body = params.get("body") or b""
        locking = "x-amz-object-lock-mode" in headers or self._lock is not None
        if locking and "Content-MD5" not in headers and isinstance(body, bytes):
            digest = hashlib.md5(body, usedforsecurity=False).digest()
            headers["Content-MD5"] = base64.b64encode(digest).decode()

    def _lock_args(self, now: float) -> dict[str, Any]:
        """The Object Lock parameters of a write, from the options (none if no lock_mode)."""
        mode = self._options.lock_mode
        if not mode:
            return {}
        return {
            "ObjectLockMode": mode.upper(),
            "ObjectLockRetainUntilDate": _utc(now + self._options.lock_days * _DAY),
        }

    def _class_for(self, name: str, hint: str | None) -> dict[str, Any]:
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
        if not name.startswith("locks/"):  # lock objects coordinate writers: never retained
            extra |= self._lock_args(time.time())
        if exclusive:
            extra["IfNoneMatch"] = "*"
        with self._errors(name):
            if memoryview(data).nbytes >= self._options.multipart_threshold:
                version = self._put_multipart(key, memoryview(data), extra)
                if "ObjectLockMode" in extra:
                    self._ensure_retention(
                        key, version, extra["ObjectLockMode"], extra["ObjectLockRetainUntilDate"]
                    )
            else:
                self._client.put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=_body(data),
                    ChecksumAlgorithm=_CHECKSUM,
                    **extra,
                )

    def _put_multipart(self, key: str, view: memoryview, extra: dict[str, Any]) -> str | None:
        """Upload in parts; the version id of the new object (None on an unversioned bucket)."""
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
            answer = self._client.complete_multipart_upload(
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
        version = answer.get("VersionId")
        return str(version) if version and version != "null" else None

    def _ensure_retention(self, key: str, version: str | None, mode: str, until: datetime) -> None:
        """Make sure a completed multipart upload carries its retention: S3 takes it from
        CreateMultipartUpload, but a store that ignores it there (moto does) gets it set now."""
        which = {"VersionId": version} if version else {}
        head = self._client.head_object(Bucket=self._bucket, Key=key, **which)
        held = _seconds(head.get("ObjectLockRetainUntilDate"))
        if head.get("ObjectLockMode") == mode and held is not None and held >= until.timestamp():
            return
        self._client.put_object_retention(
            Bucket=self._bucket,
            Key=key,
            Retention={"Mode": mode, "RetainUntilDate": until},
            **which,
        )

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
        storage_class = head.get("StorageClass", "STANDARD")
        return ObjectInfo(
            name, int(head["ContentLength"]), storage_class, _seconds(head.get("LastModified"))
        )

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
                mtime = _seconds(obj.get("LastModified"))
                yield ObjectInfo(obj["Key"][cut:], int(obj["Size"]), storage_class, mtime)

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

    # ------------------------------------------------------------------ ColdStorage

    def _head(self, name: str, version: str | None = None) -> dict[str, Any]:
        which = {"VersionId": version} if version else {}
        with self._errors(name):
            head: dict[str, Any] = self._client.head_object(
                Bucket=self._bucket, Key=self._key(name), **which
            )
        return head

    def object_state(self, name: str) -> ObjectState:
        """Storage class, thaw progress and Object Lock of the current version (one HEAD)."""
        return _state_of(name, self._head(name))

    def thaw(self, name: str, days: int, tier: str) -> bool:
        """Ask for a readable copy of an archived object for ``days``; True if a RestoreObject
        was sent, False if a thaw is already under way or done (the HEAD shows it, and S3's
        RestoreAlreadyInProgress or 200 "already restored" answers count the same)."""
        if tier not in _THAW_TIERS:
            raise UsageError(f"thaw tier {tier!r}: expected one of {', '.join(_THAW_TIERS)}")
        if days < 1:
            raise UsageError(f"thaw of {name}: days must be 1 or more, not {days}")
        state = self.object_state(name)
        if not state.archived:
            raise PermanentError(
                f"{name}: not in an archive storage class ({state.storage_class}): nothing to thaw"
            )
        if state.restore != "none":
            return False
        if tier == "Expedited" and state.storage_class == "DEEP_ARCHIVE":
            raise PermanentError(f"{name}: DEEP_ARCHIVE has no Expedited thaw (Standard, Bulk)")
        request: dict[str, Any] = {"GlacierJobParameters": {"Tier": tier}}
        if state.storage_class != "INTELLIGENT_TIERING":  # its archive tiers take no Days
            request["Days"] = days
        with self._errors(name):
            try:
                answer = self._client.restore_object(
                    Bucket=self._bucket, Key=self._key(name), RestoreRequest=request
                )
            except bce.ClientError as exc:
                code = _code(exc)[0]
                if code == "RestoreAlreadyInProgress":
                    return False
                if code == "InvalidObjectState":
                    raise PermanentError(f"{name}: not in an archive storage class") from exc
                raise
        return int(answer.get("ResponseMetadata", {}).get("HTTPStatusCode", 202)) == 202

    def set_storage_class(self, name: str, storage_class: str) -> None:
        """Move an object to another storage class by copying it onto itself (up to 5 GiB).

        In an Object Lock bucket the copy is a new version: it gets the strongest of the
        options' retention and the current version's retention in force (COMPLIANCE if either
        is), so a class change never weakens the protection of the current version. A legal
        hold stays on the old version, which ``purge`` still respects.
        """
        key = self._key(name)
        lock = self._copy_lock(name)
        with self._errors(name):
            self._client.copy_object(
                Bucket=self._bucket,
                Key=key,
                CopySource={"Bucket": self._bucket, "Key": key},
                StorageClass=storage_class,
                MetadataDirective="COPY",
                ChecksumAlgorithm=_CHECKSUM,
                **lock,
            )

    def _copy_lock(self, name: str) -> dict[str, Any]:
        now = time.time()
        asked = self._lock_args(now)
        if self.object_lock() is None:
            return asked  # on a bucket without Object Lock the server refuses a lock_mode
        wanted: list[tuple[str, float]] = []
        if asked:
            wanted.append((asked["ObjectLockMode"], asked["ObjectLockRetainUntilDate"].timestamp()))
        state = self.object_state(name)
        if state.lock_mode and state.retain_until is not None and state.retain_until > now:
            wanted.append((state.lock_mode, state.retain_until))
        if not wanted:
            return {}  # the bucket's default retention, if any, applies
        mode = "COMPLIANCE" if any(m == "COMPLIANCE" for m, _ in wanted) else "GOVERNANCE"
        until = max(u for _, u in wanted)
        return {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": _utc(until)}

    def object_lock(self) -> tuple[str, int | None] | None:
        """The bucket's Object Lock: None if not enabled, else (default mode or "NONE", default
        retention in days or None; a year counts 365 days). Asked once per backend."""
        if self._lock_known:
            return self._lock
        where = f"bucket {self._bucket}"
        with self._errors(where):
            try:
                answer = self._client.get_object_lock_configuration(Bucket=self._bucket)
            except bce.ClientError as exc:
                if _code(exc)[0] != "ObjectLockConfigurationNotFoundError":
                    raise
                answer = {}
        config = answer.get("ObjectLockConfiguration", {})
        lock: tuple[str, int | None] | None = None
        if config.get("ObjectLockEnabled") == "Enabled":
            rule = config.get("Rule", {}).get("DefaultRetention", {})
            days = int(rule.get("Days") or 0) + 365 * int(rule.get("Years") or 0)
            lock = (str(rule.get("Mode") or "NONE"), days or None)
        self._lock, self._lock_known = lock, True
        return lock

    def extend_retention(self, name: str, until: float) -> bool:
        """Make the current version's retain-until at least ``until`` (unix seconds, rounded up
        to the second); never shortens. True if the retention was changed.

        The mode is the version's own (COMPLIANCE cannot change; GOVERNANCE stays GOVERNANCE so
        no bypass permission is needed), else the options' ``lock_mode``, else GOVERNANCE:
        COMPLIANCE is irreversible and never chosen without being asked for.
        """
        head = self._head(name)
        state = _state_of(name, head)
        if state.retain_until is not None and state.retain_until >= until:
            return False
        mode = state.lock_mode or (self._options.lock_mode or "governance").upper()
        version = head.get("VersionId")
        which = {"VersionId": version} if version and version != "null" else {}
        with self._errors(name):
            self._client.put_object_retention(
                Bucket=self._bucket,
                Key=self._key(name),
                Retention={"Mode": mode, "RetainUntilDate": _utc(until)},
                **which,
            )
        return True

    def _versions(self, name: str) -> tuple[_Ids, _Ids]:
        """Version ids and delete-marker ids of exactly this object's key."""
        key = self._key(name)
        versions: _Ids = []
        markers: _Ids = []
        pages = self._client.get_paginator("list_object_versions").paginate(
            Bucket=self._bucket, Prefix=key
        )
        with self._errors(name):
            for page in pages:
                entries = [(e, versions) for e in page.get("Versions", ())]
                entries += [(e, markers) for e in page.get("DeleteMarkers", ())]
                for entry, into in entries:
                    if entry["Key"] == key:
                        into.append(str(entry["VersionId"]))
                if any(entry["Key"] != key for entry, _ in entries):
                    break  # the key sorts before every longer key it prefixes: all seen
        return versions, markers

    def purge(self, name: str) -> None:
        """Delete every version and delete marker of the object, reclaiming its space.

        Every version is checked first (one HEAD each): if any is locked (retention in force or
        legal hold) ``ObjectLockedError`` names the longest protection and nothing is deleted.
        The governance bypass is never sent. On an unversioned bucket this is a plain delete.
        """
        key = self._key(name)
        versions, markers = self._versions(name)
        if not versions and not markers:
            raise NotFoundError(f"{name}: not found")
        if versions == ["null"] and not markers:  # unversioned: no lock is possible
            with self._errors(name):
                self._client.delete_object(Bucket=self._bucket, Key=key)
            return
        now = time.time()
        locked: list[ObjectState] = []
        for version in versions:
            try:
                state = _state_of(name, self._head(name, version))
            except NotFoundError:
                continue  # deleted meanwhile
            if state.locked(now):
                locked.append(state)
        if locked:
            worst = max(locked, key=lambda s: (s.retain_until or 0.0, s.legal_hold))
            in_force = worst.lock_mode is not None and (worst.retain_until or 0.0) > now
            raise ObjectLockedError(
                name,
                worst.lock_mode if in_force else None,
                worst.retain_until if in_force else None,
                any(s.legal_hold for s in locked),
            )
        with self._errors(name):
            for version in versions + markers:
                self._client.delete_object(Bucket=self._bucket, Key=key, VersionId=version)

    def close(self) -> None:
        self._client.close()
