"""From the policy configuration to storage: the repository of a backup set at a center.

Each backup set has its own repository at every center that holds it, at ``<center url>/<set
id>``: a set's crypto suite and chunker are properties of its repository, a replication or prune
of one set never waits for another's lock, and a center can drop one set without touching the
others. The backend of a center is the command line's transport options with the center's own
``options`` and bandwidth limits applied on top, wrapped in the usual retry/metrics stack.
"""

from __future__ import annotations

from dataclasses import replace

from drvault.policy.model import Center
from drvault.transport import Backend, open_backend
from drvault.transport.appendonly import AppendOnlyBackend
from drvault.transport.metrics import Metrics
from drvault.transport.options import TransportOptions, apply_option
from drvault.transport.stack import stack


def set_url(center: Center, set_id: str) -> str:
    """The URL of ``set_id``'s repository at ``center``."""
    return f"{center.url.rstrip('/')}/{set_id}"


def center_options(base: TransportOptions, center: Center) -> TransportOptions:
    """The command line's options with the center's own applied on top: its transport
    options, bandwidth limits, storage classes and Object Lock retention."""
    options = base
    for assignment in center.options:
        options = apply_option(options, assignment)
    s3 = options.s3
    if center.storage.data_class:
        s3 = replace(s3, storage_class_data=center.storage.data_class)
    if center.storage.metadata_class:
        s3 = replace(s3, storage_class_metadata=center.storage.metadata_class)
    lock = center.immutability
    if lock is not None and lock.mode != "append-only":
        s3 = replace(s3, lock_mode=lock.mode, lock_days=lock.days)
    options = replace(options, s3=s3)
    if center.limit_upload is not None:
        options = replace(options, limit_upload=center.limit_upload)
    if center.limit_download is not None:
        options = replace(options, limit_download=center.limit_download)
    return options


def open_center(
    center: Center, set_id: str, base: TransportOptions, metrics: Metrics | None = None
) -> Backend:
    """The wrapped backend of the set's repository at the center (nothing is contacted yet)."""
    options = center_options(base, center)
    backend = stack(open_backend(set_url(center, set_id), options), options, metrics or Metrics())
    if center.immutability is not None and center.immutability.mode == "append-only":
        return AppendOnlyBackend(backend)
    return backend
