"""The file system side of backup and restore: nodes from entries, entries from nodes.

``capture`` lists directories and describes entries as :class:`~drvault.snapshot.Node`;
``apply`` re-creates special entries and restores metadata; ``sparse`` writes restored files
with holes and finds the holes of files being backed up; ``warm`` walks a backup's paths
ahead to warm the kernel's inode cache while the key is derived; ``prefetch`` has the kernel
read small files ahead of the backup's workers. No repository access here.
"""

from drvault.filesystem.apply import apply_metadata, create_entry
from drvault.filesystem.capture import capture, group_name, read_xattrs, scan_dir, user_name
from drvault.filesystem.sparse import SparseWriter, data_regions

__all__ = [
    "SparseWriter",
    "apply_metadata",
    "capture",
    "create_entry",
    "data_regions",
    "group_name",
    "read_xattrs",
    "scan_dir",
    "user_name",
]
