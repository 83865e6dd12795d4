"""S3-specific behaviour of the S3 backend against a real moto server.

The promises every backend keeps are checked by the conformance suite; this module covers what
only S3 has: URLs, multipart uploads, conditional puts, storage classes, checksums, credentials,
pagination and the translation of S3 and connection errors.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from drvault.errors import (
    AlreadyExistsError,
    ArchivedError,
    NotFoundError,
    PermanentError,
    TransientError,
    UsageError,
)
from drvault.transport import open_backend
from drvault.transport.base import ShortReadError
from drvault.transport.options import S3Options, TransportOptions
from drvault.transport.s3 import S3Backend
from drvault.transport.url import parse_s3
from tests.servers.s3_server import MotoServer

MiB = 1 << 20


def s3(url: str, **options: object) -> S3Backend:
    backend = open_backend(url, TransportOptions(s3=S3Options(**options)))  # type: ignore[arg-type]
    assert isinstance(backend, S3Backend)
    return backend


@pytest.fixture
def backend(s3_url: str) -> Iterator[S3Backend]:
    b = s3(s3_url)
    yield b
    b.close()


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_open_backend_parses_s3_urls(s3_server: MotoServer) -> None:
    bucket = s3_server.new_bucket()
    url = s3_server.url(bucket, "team/repo")
    b = s3(url)
    assert b.location == url
    assert b.capabilities.storage_classes and b.capabilities.atomic_create
    assert b.capabilities.connections == 16
    assert s3(s3_server.url(bucket, "")).location == f"s3:{s3_server.endpoint}/{bucket}"
    assert s3(f"{url}/").location == url
    for bad in (
        "s3:bucket/prefix",
        "s3:ftp://host/bucket",
        "s3:http://host",
        "s3:http://host/",
        "s3:http:///bucket",
        f"{url}?versionId=1",
    ):
        with pytest.raises(UsageError):
            open_backend(bad)
    with pytest.raises(UsageError, match="no credentials in S3 URLs") as info:
        open_backend(f"s3:http://KEY:SECRET@{s3_server.endpoint[7:]}/{bucket}")
    assert "SECRET" not in str(info.value)


def test_objects_live_under_the_prefix(s3_server: MotoServer) -> None:
    bucket = s3_server.new_bucket()
    nested, flat = s3(s3_server.url(bucket, "a/b")), s3(s3_server.url(bucket, ""))
    nested.put("data/00/x", b"pack")
    nested.put("config", b"cfg")
    flat.put("config", b"top")
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"a/b/data/00/x", "a/b/config", "config"}
    assert sorted(i.name for i in nested.list("")) == ["config", "data/00/x"]
    assert [i.name for i in nested.list("data/")] == ["data/00/x"]
    assert nested.get("config") == b"cfg" and flat.get("config") == b"top"


def test_multipart_round_trip_and_ranges_across_parts(s3_server: MotoServer) -> None:
    bucket = s3_server.new_bucket()
    b = s3(s3_server.url(bucket), multipart_threshold=8 * MiB, part_size=5 * MiB)
    data = bytes(range(256)) * (20 * MiB // 256) + b"tail"
    b.put("data/big", memoryview(bytearray(data)))  # a memoryview goes up without a copy
    head = s3_server.client().head_object(Bucket=bucket, Key="repo/data/big")
    assert head["ETag"].strip('"').endswith("-5")  # 4 parts of 5 MiB and a 4-byte last part
    assert b.stat("data/big").size == len(data)
    assert b.get("data/big") == data
    for offset, length in ((5 * MiB - 7, 14), (10 * MiB - 1, 5 * MiB + 2), (20 * MiB - 2, 6)):
        assert b.get("data/big", offset, length) == data[offset : offset + length]
    assert b.get("data/big", 20 * MiB) == b"tail"
    with pytest.raises(ShortReadError):
        b.get("data/big", 20 * MiB, 5)
    b.put("data/small", data[: 8 * MiB - 1])  # just under the threshold: one PUT
    head = s3_server.client().head_object(Bucket=bucket, Key="repo/data/small")
    assert "-" not in head["ETag"]


def test_failed_multipart_upload_is_aborted(s3_server: MotoServer) -> None:
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    # Parts under 5 MiB: the server refuses to complete the upload.
    b = s3(s3_server.url(bucket), multipart_threshold=MiB, part_size=MiB)
    with pytest.raises(PermanentError, match="EntityTooSmall"):
        b.put("data/x", bytes(3 * MiB))
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with pytest.raises(NotFoundError):
        b.stat("data/x")


def test_exclusive_put_refuses_an_existing_object(s3_server: MotoServer) -> None:
    bucket = s3_server.new_bucket()
    b = s3(s3_server.url(bucket), multipart_threshold=6 * MiB, part_size=5 * MiB)
    b.put("locks/one", b"first", exclusive=True)
    with pytest.raises(AlreadyExistsError, match="locks/one: already exists"):
        b.put("locks/one", b"second", exclusive=True)
    with pytest.raises(AlreadyExistsError):  # multipart: the condition is on the completion
        b.put("locks/one", bytes(7 * MiB), exclusive=True)
    assert b.get("locks/one") == b"first"
    assert not s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    b.put("keys/big", bytes(7 * MiB), exclusive=True)  # absent: created
    assert b.stat("keys/big").size == 7 * MiB
    b.put("locks/one", b"third")  # a plain put replaces
    assert b.get("locks/one") == b"third"


def test_storage_class_by_kind_and_hint(s3_server: MotoServer) -> None:
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    b = s3(
        s3_server.url(bucket),
        storage_class_data="STANDARD_IA",
        storage_class_metadata="ONEZONE_IA",
        multipart_threshold=5 * MiB,
        part_size=5 * MiB,
    )
    b.put("data/00/pack", b"pack")
    b.put("data/01/big", bytes(6 * MiB))  # multipart too
    b.put("index/abc", b"index")
    b.put("snapshots/s1", b"snap", storage_class="GLACIER_IR")  # the hint wins

    def head_class(name: str) -> str | None:
        return client.head_object(Bucket=bucket, Key=f"repo/{name}").get("StorageClass")

    assert head_class("data/00/pack") == "STANDARD_IA"
    assert head_class("data/01/big") == "STANDARD_IA"
    assert head_class("index/abc") == "ONEZONE_IA"
    assert head_class("snapshots/s1") == "GLACIER_IR"
    assert b.get("snapshots/s1") == b"snap"  # instant-retrieval class: readable directly
    info = b.stat("index/abc")
    assert (info.name, info.size, info.storage_class) == ("index/abc", 5, "ONEZONE_IA")
    assert {(i.name, i.storage_class) for i in b.list("data/")} == {
        ("data/00/pack", "STANDARD_IA"),
        ("data/01/big", "STANDARD_IA"),
    }
    plain = s3(s3_server.url(bucket, "plain"))
    plain.put("data/00/pack", b"pack")
    assert "StorageClass" not in client.head_object(Bucket=bucket, Key="plain/data/00/pack")
    assert plain.stat("data/00/pack").storage_class == "STANDARD"
    assert [i.storage_class for i in plain.list("")] == ["STANDARD"]


def test_archived_objects_need_a_thaw(backend: S3Backend) -> None:
    backend.put("data/cold", b"frozen", storage_class="GLACIER")
    with pytest.raises(ArchivedError, match=r"data/cold: in storage class GLACIER; thaw"):
        backend.get("data/cold")
    with pytest.raises(ArchivedError):
        backend.get("data/cold", 1, 2)
    assert backend.stat("data/cold").storage_class == "GLACIER"
    assert backend.thaw("data/cold", days=2, tier="Bulk")  # moto completes a restore at once
    assert not backend.thaw("data/cold", 1, "Standard")  # already thawed: nothing requested
    assert backend.get("data/cold") == b"frozen"

    backend.put("data/warm", b"deep")
    with pytest.raises(PermanentError, match="not in an archive storage class"):
        backend.thaw("data/warm", 1, "Standard")
    backend.set_storage_class("data/warm", "DEEP_ARCHIVE")
    assert backend.stat("data/warm").storage_class == "DEEP_ARCHIVE"
    with pytest.raises(ArchivedError, match="DEEP_ARCHIVE"):
        backend.get("data/warm")
    with pytest.raises(NotFoundError):
        backend.set_storage_class("data/none", "STANDARD_IA")


def test_uploads_carry_a_checksum(s3_server: MotoServer) -> None:
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    b = s3(s3_server.url(bucket), multipart_threshold=5 * MiB, part_size=5 * MiB)
    b.put("config", b"checked")
    b.put("index/view", memoryview(b"a view of bytes")[2:])
    b.put("data/big", bytes(6 * MiB))
    heads = {
        name: client.head_object(Bucket=bucket, Key=f"repo/{name}", ChecksumMode="ENABLED")
        for name in ("config", "index/view", "data/big")
    }
    assert heads["config"]["ChecksumCRC32"] == crc32(b"checked")
    assert heads["index/view"]["ChecksumCRC32"] == crc32(b"view of bytes")
    assert heads["data/big"].get("ChecksumCRC32")
    assert b.get("index/view") == b"view of bytes"


@pytest.fixture(scope="module")
def auth_server(
    s3_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MotoServer]:
    """A second moto server that checks credentials after the first three requests."""
    server = MotoServer(tmp_path_factory.mktemp("moto-auth"), {"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    yield server
    server.stop()


def test_credentials_come_from_the_credentials_file(
    auth_server: MotoServer, tmp_path: Path
) -> None:
    import boto3

    iam = boto3.client("iam", endpoint_url=auth_server.endpoint, region_name="us-east-1")
    iam.create_user(UserName="backup")
    key = iam.create_access_key(UserName="backup")["AccessKey"]
    allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    policy = {"Version": "2012-10-17", "Statement": [allow]}
    iam.put_user_policy(UserName="backup", PolicyName="s3", PolicyDocument=json.dumps(policy))
    good, secret = key["AccessKeyId"], key["SecretAccessKey"]
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[drvault]\naws_access_key_id = {good}\naws_secret_access_key = {secret}\n"
        f"[unknown]\naws_access_key_id = AKIAUNKNOWN\naws_secret_access_key = {secret}\n"
        f"[badsecret]\naws_access_key_id = {good}\naws_secret_access_key = nope\n"
    )
    url = auth_server.url("drvault-auth")

    b = s3(url, credentials_file=str(creds), profile="drvault")
    b.create()
    b.put("config", b"signed")
    assert b.get("config") == b"signed"
    # The session's fake AWS_* keys are unknown to this server: the file must have won.
    with pytest.raises(PermanentError, match="access denied"):
        s3(url).get("config")
    with pytest.raises(PermanentError, match="InvalidAccessKeyId"):
        s3(url, credentials_file=str(creds), profile="unknown").get("config")
    with pytest.raises(PermanentError, match="SignatureDoesNotMatch"):
        s3(url, credentials_file=str(creds), profile="badsecret").put("config", b"x")
    with pytest.raises(PermanentError, match="access denied"):
        s3(url, credentials_file=str(creds), profile="badsecret").exists()
    with pytest.raises(UsageError, match="'other' not found"):
        s3(url, credentials_file=str(creds), profile="other")
    with pytest.raises(UsageError, match="credentials file not found"):
        s3(url, credentials_file=str(tmp_path / "absent"))


@pytest.fixture
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for tests that need no server (requests fail before any check)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unused")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unused")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_unreachable_endpoint_is_transient_and_fast(fake_keys: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    b = s3(f"s3:http://127.0.0.1:{port}/bucket/repo", connect_timeout=1.0, read_timeout=1.0)
    start = time.monotonic()
    for op in (lambda: b.get("config"), b.exists, lambda: b.put("config", b"x")):
        with pytest.raises(TransientError, match=rf"127\.0\.0\.1:{port} unreachable"):
            op()
    with pytest.raises(TransientError):
        list(b.list(""))
    assert time.monotonic() - start < 5


def test_silent_endpoint_times_out_as_transient(fake_keys: None) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        b = s3(f"s3:http://127.0.0.1:{port}/bucket/repo", connect_timeout=1.0, read_timeout=0.3)
        start = time.monotonic()
        with pytest.raises(TransientError, match="Read timeout"):
            b.stat("config")
        assert time.monotonic() - start < 3


def test_list_paginates_past_1000_objects(backend: S3Backend) -> None:
    names = [f"index/{n:04d}" for n in range(1001)] + ["snapshots/one"]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: backend.put(n, b"i"), names))
    listed = [i.name for i in backend.list("")]
    assert len(listed) == len(names) and set(listed) == set(names)
    assert [i.name for i in backend.list("snap")] == ["snapshots/one"]
    assert len(list(backend.list("index/09"))) == 100


def test_missing_credentials_are_a_permanent_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    b = s3("s3:http://127.0.0.1:9/bucket/repo")
    with pytest.raises(PermanentError, match="no S3 credentials"):
        b.get("config")


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../outside", "data/../../x", "a/../b"])
def test_invalid_names_are_refused(backend: S3Backend, name: str) -> None:
    for op in (
        lambda: backend.put(name, b"x"),
        lambda: backend.get(name),
        lambda: backend.stat(name),
        lambda: backend.delete(name),
    ):
        with pytest.raises(PermanentError, match="invalid object name"):
            op()
    assert list(backend.list("")) == []


def test_delete(backend: S3Backend) -> None:
    with pytest.raises(NotFoundError, match="nope: not found"):
        backend.delete("nope")
    backend.put("locks/l", b"x")
    backend.delete("locks/l")
    with pytest.raises(NotFoundError):
        backend.delete("locks/l")
    with pytest.raises(NotFoundError):
        backend.get("locks/l")


def test_ranges_and_short_reads(backend: S3Backend) -> None:
    backend.put("obj", b"0123456789")
    assert backend.get("obj", 3, 4) == b"3456"
    assert backend.get("obj", 7) == b"789"
    assert backend.get("obj", 10) == b""  # at the end: nothing left, as with a file
    assert backend.get("obj", 4, 0) == b""
    with pytest.raises(ShortReadError, match=r"3 of 5 bytes"):
        backend.get("obj", 7, 5)
    with pytest.raises(ShortReadError, match=r"0 of 1 bytes"):  # HTTP 416
        backend.get("obj", 10, 1)
    with pytest.raises(NotFoundError):
        backend.get("missing", 0, 0)


def test_exists_and_create_on_a_new_bucket(s3_server: MotoServer) -> None:
    url = s3_server.url(f"drvault-new-{time.monotonic_ns()}")
    b = s3(url)
    assert not b.exists()
    assert list(b.list("")) == []
    with pytest.raises(NotFoundError, match=r"bucket drvault-new-\d+ is missing"):
        b.get("config")
    b.create()
    assert b.exists()  # empty, and yet it exists
    b.create()  # idempotent
    b.put("config", b"c")
    assert b.get("config") == b"c"

    bucket = f"drvault-eu-{time.monotonic_ns()}"
    eu = s3(s3_server.url(bucket), region="eu-west-1")
    eu.create()
    eu.create()
    location = s3_server.client().get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert location == "eu-west-1"


def _client_error(code: str, status: int, **error: str) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "msg", **error},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "expected", "needle"),
    [
        (_client_error("NoSuchKey", 404), NotFoundError, "x: not found"),
        (_client_error("NoSuchBucket", 404), NotFoundError, "bucket b is missing"),
        (_client_error("PreconditionFailed", 412), AlreadyExistsError, "already exists"),
        (_client_error("ConditionalRequestConflict", 409), AlreadyExistsError, "already exists"),
        (_client_error("AccessDenied", 403), PermanentError, "access denied"),
        (_client_error("SlowDown", 503), TransientError, "busy"),
        (_client_error("InternalError", 500), TransientError, "busy"),
        (_client_error("RequestTimeout", 400), TransientError, "RequestTimeout"),
        (
            _client_error("InvalidObjectState", 403, StorageClass="DEEP_ARCHIVE"),
            ArchivedError,
            "DEEP_ARCHIVE",
        ),
        (_client_error("InvalidArgument", 400), PermanentError, "refused"),
        (ConnectionClosedError(endpoint_url="http://h"), TransientError, "unreachable"),
        (ReadTimeoutError(endpoint_url="http://h"), TransientError, "unreachable"),
    ],
)
def test_error_translation(exc: Exception, expected: type[Exception], needle: str) -> None:
    b = S3Backend(parse_s3("s3:http://127.0.0.1:9/b/repo"), S3Options())
    error = b._translate("x", exc)
    assert type(error) is expected
    assert needle in str(error)
