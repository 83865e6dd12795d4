"""Storage backends: where repository objects live (local disk now; S3 and SFTP follow).

A backend moves named byte strings and knows nothing of packs, snapshots or keys.
"""

from drvault.transport.base import Backend, ObjectInfo
from drvault.transport.local import LocalBackend
from drvault.transport.url import open_backend

__all__ = ["Backend", "LocalBackend", "ObjectInfo", "open_backend"]
