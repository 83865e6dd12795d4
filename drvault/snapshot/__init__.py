"""Snapshot model: directory entries (:class:`Node`) and the tree blobs that list them.

Pure: nothing here touches the file system or the repository. ``drvault.filesystem`` turns
nodes into file-system entries and back; the repository stores tree blobs like any other blob.
"""

from drvault.snapshot.node import ID_SIZE, Node, NodeType, check_name, display_name
from drvault.snapshot.tree import TREE_VERSION, ParentTree, decode_tree, encode_tree

__all__ = [
    "ID_SIZE",
    "TREE_VERSION",
    "Node",
    "NodeType",
    "ParentTree",
    "check_name",
    "decode_tree",
    "display_name",
    "encode_tree",
]
