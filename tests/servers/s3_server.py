"""moto in server mode on 127.0.0.1, as a subprocess, for the S3 tests.

``s3_server`` (session) starts ``python -m moto.server`` on a port the server picks itself (read
back from its log, so no race for a port), sets fake ``AWS_*`` credentials in ``os.environ`` for
the session (CLI subprocesses inherit them) and hides the user's AWS config and profile.
``s3_url`` (function) gives each test its own new bucket.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

ACCESS_KEY = "drvault-test-access-key"
SECRET_KEY = "drvault-test-secret-key"
REGION = "us-east-1"
_RUNNING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
_HIDDEN = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


class MotoServer:
    """One moto server process; ``stop()`` ends it."""

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "moto.log"
        self._names = itertools.count()
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        try:
            self.endpoint = f"http://127.0.0.1:{self._wait_for_port()}"
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def _wait_for_port(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _RUNNING.search(self.log.read_text(errors="replace"))
            if found:
                return int(found.group(1))
            if self._proc.poll() is not None:
                pytest.fail(f"moto server exited with {self._proc.returncode}:\n{self._log_tail()}")
            time.sleep(0.05)
        pytest.fail(f"moto server did not start in {timeout:.0f} s:\n{self._log_tail()}")

    def _wait_until_answering(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    return
            except (urllib.error.URLError, OSError) as exc:
                if time.monotonic() > deadline:
                    pytest.fail(f"moto server at {self.endpoint} does not answer: {exc}")
                time.sleep(0.05)

    def client(self, **credentials: str) -> Any:
        """A boto3 S3 client for assertions (the fake keys unless others are given)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=credentials.get("access_key", ACCESS_KEY),
            aws_secret_access_key=credentials.get("secret_key", SECRET_KEY),
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 3}),
        )

    def new_bucket(self, **credentials: str) -> str:
        """Create a bucket with a name no other test uses."""
        name = f"drvault-{next(self._names):04d}-{uuid.uuid4().hex[:12]}"
        self.client(**credentials).create_bucket(Bucket=name)
        return name

    def new_lock_bucket(self, mode: str | None = None, days: int | None = None) -> str:
        """A new bucket with Object Lock (and so versioning) on; with ``mode`` and ``days``, a
        default retention too."""
        name = f"drvault-lock-{next(self._names):04d}-{uuid.uuid4().hex[:12]}"
        client = self.client()
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        if mode:
            rule = {"DefaultRetention": {"Mode": mode, "Days": days or 1}}
            client.put_object_lock_configuration(
                Bucket=name, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": rule}
            )
        return name

    def set_restore_transition(self, transition: Mapping[str, Any] | None) -> None:
        """How moto's thaws progress (state-manager model ``s3::keyrestore``), for the whole
        server: e.g. ``{"progression": "time", "seconds": 3}``; None: immediate (the default).

        moto quirk: with ``time`` the clock runs from the object's creation, and a thaw reads as
        done until it first reads as under way; so an object must be older than ``seconds``
        when its thaw is requested, then the thaw is under way for ``seconds`` from the first
        HEAD after the request.
        """
        body = {
            "model_name": "s3::keyrestore",
            "transition": dict(transition or {"progression": "immediate"}),
        }
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/state-manager/set-transition",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status in (200, 201), answer.status

    @contextlib.contextmanager
    def slow_thaws(self, seconds: float) -> Iterator[None]:
        """Thaws stay under way ``seconds`` (see set_restore_transition); immediate again after."""
        self.set_restore_transition({"progression": "time", "seconds": seconds})
        try:
            yield
        finally:
            self.set_restore_transition(None)

    def url(self, bucket: str, prefix: str = "repo") -> str:
        tail = f"/{prefix}" if prefix else ""
        return f"s3:{self.endpoint}/{bucket}{tail}"

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()  # all state is in memory: nothing to shut down cleanly
            self._proc.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    workdir = tmp_path_factory.mktemp("moto")
    with pytest.MonkeyPatch.context() as mp:
        for name in _HIDDEN:
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        # No user config can leak in (profiles, regions, endpoints of a developer's machine).
        mp.setenv("AWS_CONFIG_FILE", str(workdir / "absent-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(workdir / "absent-credentials"))
        server = MotoServer(workdir)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def s3_url(s3_server: MotoServer) -> str:
    """``s3:http://127.0.0.1:PORT/BUCKET/repo`` on a new, empty bucket."""
    return s3_server.url(s3_server.new_bucket())
