"""Tree blobs: the canonical encoding of one directory's nodes.

A tree blob lists the entries of one directory. Equal directories encode to equal bytes, so an
unchanged directory is stored once. The encoding is part of the repository format (version 1):

* The blob is UTF-8 JSON text (RFC 8259) holding exactly one object,
  ``{"nodes":[NODE,...],"version":1}``.
* Canonical form (what writers produce; readers accept any valid JSON with the same meaning):
  object keys sorted by code point, no whitespace, separators ``,`` and ``:``, non-ASCII
  characters written literally as UTF-8, ``"`` and ``\\`` escaped as ``\\"`` and ``\\\\``,
  characters below U+0020 as ``\\b \\f \\n \\r \\t`` or ``\\u00xx`` (lowercase hex), nothing else
  escaped; integers in plain decimal. This is Python's
  ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.
* ``nodes`` is sorted by name, compared as unsigned bytes, strictly ascending (no duplicates).
* A byte string field ``K`` (node name, symlink target, xattr name) is stored as the JSON
  string ``"K"`` when its bytes decode as strict UTF-8, otherwise as ``"K_b64"``: standard
  base64 (RFC 4648, ``+/``, padded) of the raw bytes. Exactly one of the two keys is present.
* Fields at their default are omitted. NODE keys (default in brackets):

  - ``name`` / ``name_b64`` (required): the file name; not empty, ``.`` or ``..``; no ``/``
    and no NUL byte.
  - ``type`` (required): ``file``, ``dir``, ``symlink``, ``fifo``, ``chardev``, ``blockdev``
    or ``socket``.
  - ``mode`` [0]: permission bits, ``st_mode & 0o7777``, in 0 .. 0o7777.
  - ``uid``, ``gid`` [0]: owner ids, in 0 .. 2**32-1.
  - ``user``, ``group`` [absent]: owner names at backup time, informational.
  - ``mtime_ns``, ``atime_ns``, ``ctime_ns`` [0]: nanoseconds since the epoch, in
    -2**63 .. 2**63-1.
  - ``size`` [0]: file size in bytes; ``file`` only.
  - ``inode``, ``device`` [0]: ``st_ino`` and ``st_dev`` at backup time.
  - ``links`` [0]: ``st_nlink``. Non-directories of one snapshot with equal
    (``device``, ``inode``) and ``links`` > 1 are hard links to one file.
  - ``rdev`` [0]: device number; ``chardev`` and ``blockdev`` only.
  - ``target`` / ``target_b64`` [absent]: symlink target; required for ``symlink``, not
    allowed otherwise; not empty, no NUL byte.
  - ``xattrs`` [absent]: array of objects ``{"name"|"name_b64": ..., "value": BASE64}``,
    strictly sorted by name bytes; names not empty, no NUL byte; never an empty array.
  - ``content`` [absent]: array of the blob IDs of the file's chunks, in file order; ``file``
    only; never an empty array.
  - ``subtree`` [absent]: blob ID of the directory's tree; required for ``dir``, not allowed
    otherwise.

  ``size``, ``inode``, ``device``, ``links`` and ``rdev`` lie in 0 .. 2**64-1. A blob ID is
  written as 64 lowercase hexadecimal digits (32 bytes).

The decoder validates every rule above and rejects anything else (unknown keys, wrong JSON
types, booleans for integers, another version) with :class:`~drvault.errors.IntegrityError`;
an unsafe name raises :class:`~drvault.errors.UnsafePathError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import json.scanner
from collections.abc import Sequence
from operator import attrgetter, itemgetter
from typing import Any

from drvault.errors import IntegrityError
from drvault.snapshot.node import ID_SIZE, Node, NodeType, check_name, display_name

TREE_VERSION = 1

_U32 = 2**32 - 1
_U64 = 2**64 - 1
_I64 = (-(2**63), 2**63 - 1)
_INT_LIMITS: dict[str, tuple[int, int]] = {
    "mode": (0, 0o7777),
    "uid": (0, _U32),
    "gid": (0, _U32),
    "size": (0, _U64),
    "inode": (0, _U64),
    "device": (0, _U64),
    "links": (0, _U64),
    "rdev": (0, _U64),
    "mtime_ns": _I64,
    "atime_ns": _I64,
    "ctime_ns": _I64,
}
_INTS = attrgetter(*_INT_LIMITS)
_JUST_INT = {int}
_NODE_KEYS = frozenset(_INT_LIMITS) | {
    *("name", "name_b64", "type", "user", "group", "target", "target_b64"),
    *("xattrs", "content", "subtree"),
}
_XATTR_KEYS = frozenset({"name", "name_b64", "value"})
_TYPES: dict[str, NodeType] = {t.value: t for t in NodeType}
# Writers insert keys in sorted order (see _encode_node), so the encoder need not sort.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_FIRST = itemgetter(0)
# The canonical layout around the entries: what _ENCODER writes for {"nodes": [...], "version"}.
_HEAD = '{"nodes":['
_TAIL = f'],"version":{TREE_VERSION}}}'
# (text, start) -> (value, end): the scanner json.loads parses with (a decoder is its context)
_SCAN_ONE = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


class _Malformed(Exception):
    """A rule of the encoding is broken; turned into ``IntegrityError`` by :func:`decode_tree`."""


def encode_tree(
    nodes: Sequence[Node], parent: ParentTree | None = None, reused: Sequence[bytes] = ()
) -> bytes:
    """Encode one directory's nodes (in any order) as a canonical version-1 tree blob.

    Raises ``ValueError`` for nodes the decoder would refuse (duplicate names, an ID of the
    wrong length, a field that does not belong to the node's type, ...) and
    :class:`~drvault.errors.UnsafePathError` for an unsafe name, so no unreadable tree is
    ever written. Nodes that ``parent`` decoded passed the same checks then and are not
    checked again. ``reused`` names entries of ``parent`` carried over as they are stored
    there, without decoding them (see :meth:`ParentTree.stored`).
    """
    entries: list[tuple[bytes, Node | str]] = []
    for node in nodes:
        if parent is None or not parent.decoded(node):
            check_name(node.name)
            problem = _problem(node)
            if problem is not None:
                raise ValueError(f"cannot encode {display_name(node.name)!r}: {problem}")
        entries.append((node.name, node))
    if reused:
        assert parent is not None, "entries carried over need the tree they come from"
        entries.extend((name, parent.stored(name)) for name in reused)
    entries.sort(key=_FIRST)
    encoded: list[str] = []
    previous: bytes | None = None
    for name, entry in entries:
        if name == previous:
            raise ValueError(f"duplicate name in tree: {display_name(name)!r}")
        previous = name
        encoded.append(_ENCODER.encode(_encode_node(entry)) if isinstance(entry, Node) else entry)
    return (_HEAD + ",".join(encoded) + _TAIL).encode("utf-8")


def decode_tree(data: bytes, name: str = "tree") -> list[Node]:
    """Decode and fully validate a tree blob; ``name`` names the blob in errors.

    Returns the nodes in stored (name) order. Raises :class:`IntegrityError` for anything
    malformed and :class:`~drvault.errors.UnsafePathError` for a name that could escape a
    directory.
    """
    items = _parse(data, name)
    try:
        nodes: list[Node] = []
        previous = b""
        for index, item in enumerate(items):
            try:
                node = _decode_node(item)
            except _Malformed as error:
                raise _Malformed(f"node {index}: {error}") from None
            if node.name <= previous:
                raise _Malformed(f"node {index}: names not strictly sorted")
            previous = node.name
            nodes.append(node)
    except _Malformed as error:
        raise IntegrityError(name, str(error)) from None
    return nodes


def _scan(data: bytes) -> tuple[list[Any], list[str]] | None:
    """The entries of a tree blob in the canonical layout, parsed as ``json.loads`` would, each
    with its exact JSON text; None for anything else (another layout, invalid UTF-8 or JSON),
    which :func:`_parse` then takes whole (and names what is wrong)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.startswith(_HEAD):
        return None
    items: list[Any] = []
    texts: list[str] = []
    end = start = len(_HEAD)
    if not text.startswith("]", start):
        try:
            while True:
                item, end = _SCAN_ONE(text, start)
                items.append(item)
                texts.append(text[start:end])
                if not text.startswith(",", end):
                    break
                start = end + 1
        except (StopIteration, ValueError, RecursionError):
            return None
    if len(text) - end != len(_TAIL) or not text.endswith(_TAIL):
        return None
    return items, texts


def _parse(data: bytes, name: str) -> list[Any]:
    """The still undecoded entries of a tree blob, once its JSON and its top level (an object
    of exactly "nodes", an array, and "version", 1) are checked; ``IntegrityError`` if not."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise IntegrityError(name, f"tree is not UTF-8 JSON: {error}") from None
    if type(document) is not dict or document.keys() != {"nodes", "version"}:
        problem = 'tree must be an object with exactly "nodes" and "version"'
    elif type(document["version"]) is not int or document["version"] != TREE_VERSION:
        problem = f"unsupported tree version {document['version']!r}"
    elif type(document["nodes"]) is not list:
        problem = '"nodes" must be an array'
    else:
        return document["nodes"]  # type: ignore[no-any-return]
    raise IntegrityError(name, problem)


class ParentTree:
    """A tree blob's entries by name, for a backup comparing a directory with its parent
    snapshot: parsed as JSON once, each entry decoded into a validated :class:`Node` only
    when asked for (:meth:`node`, the same object every time).

    Most entries of a nightly backup are unchanged files, which :meth:`unchanged_file`
    compares with an ``lstat`` on the parsed entry directly; a directory whose entries are all
    unchanged keeps the parent's tree blob, and none of its entries becomes a ``Node``. On
    1,000,000 unchanged files that decoding was most of the cost, about 25 µs a file. A
    directory with anything new gets a new tree, into which its unchanged files' entries are
    carried over as stored (:meth:`stored`); every other entry is a node, decoded (and so
    validated) here or checked by the encoder.
    """

    __slots__ = ("_items", "_label", "_nodes", "_texts")

    def __init__(self, data: bytes | None, label: str = "tree") -> None:
        self._label = label
        self._items: dict[bytes, dict[str, Any]] = {}  # parsed (as stored), by name
        self._texts: dict[bytes, str] = {}  # their JSON text, when laid out canonically
        self._nodes: dict[bytes, Node | None] = {}  # decoded (None: no such entry)
        if data is None:
            return
        scanned = _scan(data)
        items, texts = scanned if scanned is not None else (_parse(data, label), None)
        for index, item in enumerate(items):
            name = item.get("name") if type(item) is dict else None
            if type(name) is not str:
                break
            try:
                key = name.encode("utf-8")
            except UnicodeError:
                break
            self._items[key] = item
            if texts is not None:
                self._texts[key] = texts[index]
        else:
            if len(self._items) == len(items):
                return
        # a name in base64 or repeated, or an entry that is not an object: the decoder takes
        # the tree whole (or raises the exact error), and its nodes give the parsed entries
        nodes = decode_tree(data, label)
        self._nodes = {node.name: node for node in nodes}
        self._items = {node.name: _encode_node(node) for node in nodes}
        self._texts = {}

    def __len__(self) -> int:
        return len(self._items)

    def node(self, name: bytes) -> Node | None:
        """The entry called ``name``, decoded and validated, or None."""
        try:
            return self._nodes[name]
        except KeyError:
            pass
        item = self._items.get(name)
        node = None
        if item is not None:
            try:
                node = _decode_node(item)
            except _Malformed as error:
                raise IntegrityError(self._label, f"node {display_name(name)!r}: {error}") from None
        self._nodes[name] = node
        return node

    def stored(self, name: bytes) -> str:
        """The JSON text of the entry called ``name`` as stored (not decoded), to carry it
        over into a new tree of the same directory as it is: the very text of the parent's
        blob when that is laid out canonically (as every writer lays it out), else the parsed
        entry encoded again.

        Copying an entry verbatim is what keeping the parent's whole tree blob does for an
        unchanged directory: the bytes come from a tree the repository holds and
        authenticated, and ``check`` validates every tree. On the benchmark's next-day documents
        backup most directories change, and decoding and encoding again their unchanged
        entries took about 0.2 s of 1.2 s. The content list of a file compared with
        :meth:`unchanged_file` has been checked. Taking the text as it is, rather than
        encoding the parsed entry again, saves most of what is left of encoding such a tree."""
        text = self._texts.get(name)
        return text if text is not None else _ENCODER.encode(self._items[name])

    def decoded(self, node: Node) -> bool:
        """Whether ``node`` is this tree's own, decoded (and so validated) by :meth:`node`."""
        return self._nodes.get(node.name) is node

    def unchanged_file(
        self, name: bytes, size: int, mtime_ns: int, ctime_ns: int, inode: int, device: int
    ) -> tuple[bytes, ...] | None:
        """The content of the regular file ``name`` if the parent recorded exactly this size,
        mtime, ctime, inode and device for it; None otherwise."""
        item = self._items.get(name)
        if item is None:
            return None
        get = item.get
        if (
            get("type") != "file"
            or get("size", 0) != size
            or get("mtime_ns", 0) != mtime_ns
            or get("ctime_ns", 0) != ctime_ns
            or get("inode", 0) != inode
            or get("device", 0) != device
        ):
            return None
        content = get("content")
        if content is None:
            return ()  # an empty file
        try:
            ids = tuple([bytes.fromhex(blob_id) for blob_id in content])
        except (TypeError, ValueError):
            ids = ()
        if type(content) is list and ids and all(len(blob_id) == ID_SIZE for blob_id in ids):
            return ids
        node = self.node(name)  # malformed: raises IntegrityError
        return node.content if node is not None else None


def _encode_node(node: Node) -> dict[str, Any]:
    # Keys are inserted in sorted order: that order is the canonical form.
    out: dict[str, Any] = {}
    if node.atime_ns:
        out["atime_ns"] = node.atime_ns
    if node.content:
        out["content"] = [blob_id.hex() for blob_id in node.content]
    if node.ctime_ns:
        out["ctime_ns"] = node.ctime_ns
    if node.device:
        out["device"] = node.device
    if node.gid:
        out["gid"] = node.gid
    if node.group is not None:
        out["group"] = node.group
    if node.inode:
        out["inode"] = node.inode
    if node.links:
        out["links"] = node.links
    if node.mode:
        out["mode"] = node.mode
    if node.mtime_ns:
        out["mtime_ns"] = node.mtime_ns
    _put_bytes(out, "name", node.name)
    if node.rdev:
        out["rdev"] = node.rdev
    if node.size:
        out["size"] = node.size
    if node.subtree is not None:
        out["subtree"] = node.subtree.hex()
    if node.link_target is not None:
        _put_bytes(out, "target", node.link_target)
    out["type"] = node.type.value
    if node.uid:
        out["uid"] = node.uid
    if node.user is not None:
        out["user"] = node.user
    if node.xattrs:
        xattrs = []
        for xname, xvalue in node.xattrs:
            entry: dict[str, str] = {}
            _put_bytes(entry, "name", xname)
            entry["value"] = base64.b64encode(xvalue).decode("ascii")
            xattrs.append(entry)
        out["xattrs"] = xattrs
    return out


def _put_bytes(out: dict[str, Any], key: str, value: bytes) -> None:
    try:
        out[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        out[key + "_b64"] = base64.b64encode(value).decode("ascii")


def _decode_node(item: object) -> Node:
    if type(item) is not dict:
        raise _Malformed("not an object")
    if not item.keys() <= _NODE_KEYS:
        raise _Malformed(f"unknown keys {sorted(item.keys() - _NODE_KEYS)}")
    name = _get_bytes(item, "name", "name_b64")
    if name is None:
        raise _Malformed("no name")
    check_name(name)
    type_name = item.get("type")
    node_type = _TYPES.get(type_name) if type(type_name) is str else None
    if node_type is None:
        raise _Malformed(f"bad type {type_name!r}")
    # What is left after taking out name and type are Node fields of the same names.
    fields = item.copy()
    del fields["type"]
    fields.pop("name", None)
    fields.pop("name_b64", None)
    if "content" in fields:
        content = fields["content"]
        if type(content) is not list:
            raise _Malformed("content is not an array")
        fields["content"] = tuple([_decode_id(blob_id, "content") for blob_id in content])
    if "subtree" in fields:
        fields["subtree"] = _decode_id(fields["subtree"], "subtree")
    if "target" in fields or "target_b64" in fields:
        fields["link_target"] = _get_bytes(item, "target", "target_b64")
        fields.pop("target", None)
        fields.pop("target_b64", None)
    if "xattrs" in fields:
        fields["xattrs"] = _decode_xattrs(fields["xattrs"])
    node = Node(name=name, type=node_type, **fields)
    problem = _problem(node)
    if problem is not None:
        raise _Malformed(f"{display_name(name)!r}: {problem}")
    return node


def _decode_xattrs(value: object) -> tuple[tuple[bytes, bytes], ...]:
    if type(value) is not list:
        raise _Malformed("xattrs is not an array")
    xattrs = []
    for entry in value:
        if type(entry) is not dict or not entry.keys() <= _XATTR_KEYS:
            raise _Malformed("xattr is not an object of name and value")
        xname = _get_bytes(entry, "name", "name_b64")
        if xname is None:
            raise _Malformed("xattr without name")
        xattrs.append((xname, _decode_b64(entry.get("value"), "xattr value")))
    return tuple(xattrs)


def _get_bytes(item: dict[str, Any], key: str, b64_key: str) -> bytes | None:
    if key in item:
        if b64_key in item:
            raise _Malformed(f"both {key} and {b64_key}")
        text = item[key]
        if type(text) is not str:
            raise _Malformed(f"{key} is not a string")
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise _Malformed(f"{key} is not valid Unicode") from None
    if b64_key in item:
        return _decode_b64(item[b64_key], b64_key)
    return None


def _decode_b64(value: object, what: str) -> bytes:
    if type(value) is not str:
        raise _Malformed(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed(f"{what} is not valid base64") from None


def _decode_id(value: object, what: str) -> bytes:
    if type(value) is not str or len(value) != 2 * ID_SIZE:
        raise _Malformed(f"{what} is not a {2 * ID_SIZE}-digit hex blob ID")
    try:
        blob_id = bytes.fromhex(value)
    except ValueError:
        raise _Malformed(f"{what} is not a hex blob ID") from None
    if len(blob_id) != ID_SIZE:
        raise _Malformed(f"{what} is not a hex blob ID")
    return blob_id


def _problem(node: Node) -> str | None:
    """The first rule of the encoding that ``node`` breaks (names excepted), or ``None``."""
    if not _ints_ok(_INTS(node)):
        for key, (low, high) in _INT_LIMITS.items():
            value = getattr(node, key)
            if type(value) is not int or not low <= value <= high:
                return f"{key} must be an integer in {low}..{high}, not {value!r}"
    for owner in (node.user, node.group):
        if owner is not None:
            if type(owner) is not str:
                return "user or group is not a string"
            try:
                owner.encode("utf-8")
            except UnicodeEncodeError:
                return "user or group is not valid Unicode"
    kind = node.type
    if kind.__class__ is not NodeType:
        return f"unknown type {kind!r}"
    content = node.content
    if content:
        if kind is not NodeType.FILE:
            return "content on a non-file"
        if type(content) is not tuple or set(map(len, content)) != {ID_SIZE}:
            return "content must be a tuple of 32-byte blob IDs"
        if set(map(type, content)) != {bytes}:
            return "content must be a tuple of 32-byte blob IDs"
    subtree = node.subtree
    if subtree is None:
        if kind is NodeType.DIR:
            return "directory without subtree"
    elif kind is not NodeType.DIR:
        return "subtree on a non-dir"
    elif type(subtree) is not bytes or len(subtree) != ID_SIZE:
        return "subtree must be a 32-byte blob ID"
    if node.size and kind is not NodeType.FILE:
        return "size on a non-file"
    if node.rdev and kind is not NodeType.CHARDEV and kind is not NodeType.BLOCKDEV:
        return "rdev on a non-device"
    target = node.link_target
    if target is None:
        if kind is NodeType.SYMLINK:
            return "symlink without target"
    elif kind is not NodeType.SYMLINK:
        return "target on a non-symlink"
    elif type(target) is not bytes or not target or b"\0" in target:
        return "symlink target must be non-empty bytes without NUL"
    if node.xattrs:
        return _xattrs_problem(node.xattrs)
    return None


def _ints_ok(values: tuple[int, ...]) -> bool:
    # Fast path over the values in _INT_LIMITS order; _problem then names the culprit.
    if set(map(type, values)) != _JUST_INT:  # bool and float are not int
        return False
    mode, uid, gid, size, inode, device, links, rdev, mtime, atime, ctime = values
    low, high = _I64
    return (
        0 <= mode <= 0o7777
        and 0 <= uid <= _U32
        and 0 <= gid <= _U32
        and 0 <= size <= _U64
        and 0 <= inode <= _U64
        and 0 <= device <= _U64
        and 0 <= links <= _U64
        and 0 <= rdev <= _U64
        and low <= mtime <= high
        and low <= atime <= high
        and low <= ctime <= high
    )


def _xattrs_problem(xattrs: tuple[tuple[bytes, bytes], ...]) -> str | None:
    if type(xattrs) is not tuple:
        return "xattrs must be a tuple"
    previous = b""
    for xname, xvalue in xattrs:
        if type(xname) is not bytes or type(xvalue) is not bytes:
            return "xattr name or value is not bytes"
        if not xname or b"\0" in xname:
            return "xattr name empty or containing NUL"
        if xname <= previous:
            return "xattrs not strictly sorted by name"
        previous = xname
    return None
