"""From a center in the configuration to its backend: the set's URL, the center's own transport
options and bandwidth limits on top of the command line's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from drvault.centers import center_options, open_center, set_url
from drvault.policy.model import Center, Site, Where
from drvault.transport import LocalBackend
from drvault.transport.options import TransportOptions
from drvault.transport.ratelimit import RateLimitedBackend
from drvault.transport.stack import unwrap

CENTER = Center(
    id="zixing-djh",
    role="remote_dr",
    site=Site("Zixing", "Hunan"),
    url="sftp://drvault@djh.example/srv/drvault/",
    where=Where("drvault.yaml", 3),
)


def test_each_set_has_its_own_repository_below_the_center() -> None:
    assert set_url(CENTER, "core-ledger") == "sftp://drvault@djh.example/srv/drvault/core-ledger"
    s3 = replace(CENTER, url="s3:https://oss.example/bucket")
    assert set_url(s3, "docs") == "s3:https://oss.example/bucket/docs"


def test_center_options_and_limits_override_the_command_line() -> None:
    base = TransportOptions(limit_upload=100 << 20, connections=8)
    center = replace(
        CENTER,
        options=("sftp.key=/etc/drvault/id_ed25519", "connections=2"),
        limit_upload=12 << 20,
    )
    options = center_options(base, center)
    assert options.sftp.key == "/etc/drvault/id_ed25519"
    assert options.connections == 2
    assert options.limit_upload == 12 << 20
    assert options.limit_download is None
    assert center_options(base, CENTER) == base


def test_open_center_stacks_the_rate_limit(tmp_path: Path) -> None:
    local = replace(CENTER, url=str(tmp_path), limit_upload=1 << 20)
    backend = open_center(local, "ledger", TransportOptions())
    limited = []
    layer = backend
    while hasattr(layer, "inner"):
        if isinstance(layer, RateLimitedBackend):
            limited.append(layer)
        layer = layer.inner
    assert len(limited) == 1
    assert limited[0].upload is not None and limited[0].upload.rate == 1 << 20
    assert limited[0].download is None
    raw = unwrap(backend)
    assert isinstance(raw, LocalBackend)
    assert raw.location.endswith("/ledger")
