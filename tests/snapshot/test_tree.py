from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drvault.errors import IntegrityError, UnsafePathError
from drvault.snapshot import TREE_VERSION, Node, NodeType, ParentTree, decode_tree, encode_tree

GBK_NAME = "测试文件.txt".encode("gbk")
ID_A = bytes(range(32))
ID_B = bytes(range(32, 64))


def _safe(name: bytes) -> bool:
    return name not in (b".", b"..") and b"/" not in name and b"\0" not in name


raw_bytes = st.binary(min_size=1, max_size=24)
utf8_bytes = st.text(min_size=1, max_size=12).map(lambda t: t.encode("utf-8", "replace"))
names = (raw_bytes | utf8_bytes | st.just(GBK_NAME)).filter(_safe)
targets = (raw_bytes | utf8_bytes).filter(lambda t: b"\0" not in t)
blob_ids = st.binary(min_size=32, max_size=32)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
times = st.integers(-(2**63), 2**63 - 1)
owner_names = st.none() | st.text(st.characters(blacklist_categories=["Cs"]), max_size=10)
xattr_lists = st.dictionaries(
    st.binary(min_size=1, max_size=16).filter(lambda b: b"\0" not in b),
    st.binary(max_size=40),
    max_size=3,
).map(lambda d: tuple(sorted(d.items())))


@st.composite
def nodes(draw: st.DrawFn, name: bytes | None = None) -> Node:
    node_type = draw(st.sampled_from(list(NodeType)))
    is_file = node_type is NodeType.FILE
    is_device = node_type in (NodeType.CHARDEV, NodeType.BLOCKDEV)
    return Node(
        name=draw(names) if name is None else name,
        type=node_type,
        mode=draw(st.integers(0, 0o7777)),
        uid=draw(u32),
        gid=draw(u32),
        user=draw(owner_names),
        group=draw(owner_names),
        mtime_ns=draw(times),
        atime_ns=draw(times),
        ctime_ns=draw(times),
        size=draw(u64) if is_file else 0,
        inode=draw(u64),
        device=draw(u64),
        links=draw(u64),
        rdev=draw(u64) if is_device else 0,
        link_target=draw(targets) if node_type is NodeType.SYMLINK else None,
        xattrs=draw(xattr_lists),
        content=tuple(draw(st.lists(blob_ids, max_size=4))) if is_file else (),
        subtree=draw(blob_ids) if node_type is NodeType.DIR else None,
    )


directories = st.lists(nodes(), max_size=8, unique_by=lambda n: n.name)


@settings(max_examples=150)
@given(directories)
def test_round_trip(entries: list[Node]) -> None:
    decoded = decode_tree(encode_tree(entries))
    assert decoded == sorted(entries, key=lambda n: n.name)


@given(directories, st.randoms(use_true_random=False))
def test_encoding_is_canonical_whatever_the_order(entries: list[Node], rnd: Any) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    blob = encode_tree(entries)
    assert encode_tree(shuffled) == blob
    assert encode_tree(decode_tree(blob)) == blob


@given(directories)
def test_canonical_form_is_sorted_compact_json(entries: list[Node]) -> None:
    blob = encode_tree(entries)
    document = json.loads(blob)
    again = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert blob == again.encode("utf-8")
    for item in document["nodes"]:  # fields at their default are omitted
        assert all(value not in (0, None, []) for value in item.values())


def test_encoding_format_is_as_documented() -> None:
    nodes_ = [
        Node(name=b"b", type=NodeType.FILE, mode=0o644, size=5, content=(ID_A,)),
        Node(name=GBK_NAME, type=NodeType.SYMLINK, link_target=b"\xff/x"),
        Node(name="é".encode(), type=NodeType.DIR, subtree=ID_B, xattrs=((b"user.k", b"\0v"),)),
    ]
    blob = encode_tree(nodes_)
    gbk = base64.b64encode(GBK_NAME).decode()
    target = base64.b64encode(b"\xff/x").decode()
    expected = (
        '{"nodes":['
        f'{{"content":["{ID_A.hex()}"],"mode":420,"name":"b","size":5,"type":"file"}},'
        f'{{"name_b64":"{gbk}","target_b64":"{target}","type":"symlink"}},'
        f'{{"name":"é","subtree":"{ID_B.hex()}","type":"dir",'
        '"xattrs":[{"name":"user.k","value":"AHY="}]}'
        f'],"version":{TREE_VERSION}}}'
    )
    assert blob == expected.encode("utf-8")


def test_empty_directory() -> None:
    assert encode_tree([]) == b'{"nodes":[],"version":1}'
    assert decode_tree(b'{"nodes":[],"version":1}') == []


def test_non_utf8_names_round_trip_byte_exactly() -> None:
    entries = [
        Node(name=GBK_NAME, type=NodeType.FILE),
        Node(name=b"\xed\xa0\x80", type=NodeType.FILE),  # an encoded surrogate: not UTF-8
        Node(name=b"caf\xe9", type=NodeType.SYMLINK, link_target="目标".encode("gbk")),
    ]
    assert decode_tree(encode_tree(entries)) == sorted(entries, key=lambda n: n.name)


def test_decoder_accepts_non_canonical_but_valid_json() -> None:
    text = '{ "version": 1, "nodes": [ {"type": "fifo", "name_b64": "YQ=="} ] }'
    assert decode_tree(text.encode()) == [Node(name=b"a", type=NodeType.FIFO)]


def test_encode_refuses_nodes_the_decoder_would_refuse() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        encode_tree([Node(name=b"a", type=NodeType.FIFO), Node(name=b"a", type=NodeType.FILE)])
    with pytest.raises(ValueError, match="subtree"):
        encode_tree([Node(name=b"d", type=NodeType.DIR)])
    with pytest.raises(ValueError, match="32-byte"):
        encode_tree([Node(name=b"f", type=NodeType.FILE, content=(b"short",))])
    with pytest.raises(UnsafePathError):
        encode_tree([Node(name=b"..", type=NodeType.FIFO)])


# -- malformed input ---------------------------------------------------------------------


def _blob(*nodes_: dict[str, Any], version: Any = 1) -> bytes:
    return json.dumps({"nodes": list(nodes_), "version": version}).encode()


FILE = {"name": "f", "type": "file"}
DIR = {"name": "d", "type": "dir", "subtree": ID_A.hex()}
LINK = {"name": "l", "type": "symlink", "target": "t"}

MALFORMED: dict[str, bytes] = {
    "not utf-8": b'{"nodes":[],"version":1}\xff',
    "not json": b'{"nodes":[',
    "empty": b"",
    "top level array": b"[]",
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "missing version": b'{"nodes":[]}',
    "extra top key": b'{"nodes":[],"version":1,"x":0}',
    "other version": _blob(version=2),
    "version as bool": _blob(version=True),
    "version as string": _blob(version="1"),
    "nodes not a list": b'{"nodes":{},"version":1}',
    "node not an object": _blob("f"),  # type: ignore[arg-type]
    "no name": _blob({"type": "file"}),
    "name not a string": _blob({"name": 5, "type": "file"}),
    "name null": _blob({"name": None, "type": "file"}),
    "name lone surrogate": b'{"nodes":[{"name":"\\ud800","type":"file"}],"version":1}',
    "name and name_b64": _blob({"name": "f", "name_b64": "Zg==", "type": "file"}),
    "bad base64 name": _blob({"name_b64": "!!", "type": "file"}),
    "no type": _blob({"name": "f"}),
    "unknown type": _blob({"name": "f", "type": "door"}),
    "type not a string": _blob({"name": "f", "type": 1}),
    "unknown key": _blob({**FILE, "color": "red"}),
    "mode as string": _blob({**FILE, "mode": "0644"}),
    "mode as float": _blob({**FILE, "mode": 420.0}),
    "mode as bool": _blob({**FILE, "mode": True}),
    "mode too large": _blob({**FILE, "mode": 0o10000}),
    "negative uid": _blob({**FILE, "uid": -1}),
    "uid too large": _blob({**FILE, "uid": 2**32}),
    "size too large": _blob({**FILE, "size": 2**64}),
    "time too large": _blob({**FILE, "mtime_ns": 2**63}),
    "NaN time": b'{"nodes":[{"name":"f","type":"file","mtime_ns":NaN}],"version":1}',
    "huge integer": b'{"nodes":[{"name":"f","type":"file","size":'
    + b"9" * 5000
    + b'}],"version":1}',
    "user not a string": _blob({**FILE, "user": 0}),
    "dir without subtree": _blob({"name": "d", "type": "dir"}),
    "subtree on a file": _blob({**FILE, "subtree": ID_A.hex()}),
    "short subtree": _blob({**DIR, "subtree": "ab" * 31}),
    "long subtree": _blob({**DIR, "subtree": "ab" * 33}),
    "subtree not hex": _blob({**DIR, "subtree": "zz" * 32}),
    "subtree with spaces": _blob({**DIR, "subtree": "ab " * 21 + "a"}),
    "subtree not a string": _blob({**DIR, "subtree": list(ID_A)}),
    "content not a list": _blob({**FILE, "content": ID_A.hex()}),
    "content id short": _blob({**FILE, "content": [ID_A.hex()[:-2]]}),
    "content on a dir": _blob({**DIR, "content": [ID_B.hex()]}),
    "size on a dir": _blob({**DIR, "size": 4096}),
    "rdev on a file": _blob({**FILE, "rdev": 259}),
    "symlink without target": _blob({"name": "l", "type": "symlink"}),
    "empty symlink target": _blob({**LINK, "target": ""}),
    "NUL in symlink target": _blob({**LINK, "target": "a\0b"}),
    "target on a file": _blob({**FILE, "target": "t"}),
    "xattrs not a list": _blob({**FILE, "xattrs": {"user.a": ""}}),
    "xattr not an object": _blob({**FILE, "xattrs": [["user.a", ""]]}),
    "xattr without name": _blob({**FILE, "xattrs": [{"value": ""}]}),
    "xattr without value": _blob({**FILE, "xattrs": [{"name": "user.a"}]}),
    "xattr extra key": _blob({**FILE, "xattrs": [{"name": "a", "value": "", "x": 1}]}),
    "xattr value not base64": _blob({**FILE, "xattrs": [{"name": "a", "value": "***"}]}),
    "xattr empty name": _blob({**FILE, "xattrs": [{"name": "", "value": ""}]}),
    "xattr NUL name": _blob({**FILE, "xattrs": [{"name": "a\0", "value": ""}]}),
    "xattrs unsorted": _blob(
        {**FILE, "xattrs": [{"name": "b", "value": ""}, {"name": "a", "value": ""}]}
    ),
    "xattrs duplicated": _blob(
        {**FILE, "xattrs": [{"name": "a", "value": ""}, {"name": "a", "value": ""}]}
    ),
    "nodes unsorted": _blob({**FILE, "name": "b"}, {**FILE, "name": "a"}),
    "nodes duplicated": _blob(FILE, {**DIR, "name": "f"}),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_decode_rejects_malformed_trees(data: bytes) -> None:
    with pytest.raises(IntegrityError) as info:
        decode_tree(data, "trees/abc")
    assert info.value.name == "trees/abc"


def test_sorting_is_by_bytes_not_by_text() -> None:
    # "é" (c3 a9) sorts after "z" as bytes; "\ue000" (ee 80 80) after both.
    entries = [Node(name=n, type=NodeType.FIFO) for n in ("\ue000".encode(), b"z", "é".encode())]
    names_ = [n.name for n in decode_tree(encode_tree(entries))]
    assert names_ == [b"z", "é".encode(), "\ue000".encode()]
    unsorted = _blob({"name": "é", "type": "fifo"}, {"name": "z", "type": "fifo"})
    with pytest.raises(IntegrityError, match="sorted"):
        decode_tree(unsorted)


HOSTILE = [b"..", b".", b"", b"a/b", b"x\0y", b"/etc", b"../../etc/passwd"]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("encoding", ["text", "b64"])
def test_decode_rejects_hostile_names(name: bytes, encoding: str) -> None:
    if encoding == "text":
        node = {"name": name.decode(), "type": "file"}
    else:
        node = {"name_b64": base64.b64encode(name).decode(), "type": "file"}
    with pytest.raises(UnsafePathError):
        decode_tree(_blob(node))


@given(st.binary(max_size=200))
def test_decode_never_leaks_raw_exceptions(data: bytes) -> None:
    with contextlib.suppress(IntegrityError, UnsafePathError):
        decode_tree(data)


def _corrupted(entries: list[Node], data: st.DataObject) -> bytes:
    """A tree of ``entries`` with one key of each node set to a value of any JSON type."""
    document = json.loads(encode_tree(entries))
    for item in document["nodes"]:
        key = data.draw(st.sampled_from(sorted(item)))
        item[key] = data.draw(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats()
            | st.text(max_size=5)
            | st.lists(st.integers(), max_size=2)
            | st.dictionaries(st.text(max_size=3), st.none())
        )
    return json.dumps(document).encode()


@given(directories, st.data())
def test_decode_survives_corrupted_documents(entries: list[Node], data: st.DataObject) -> None:
    with contextlib.suppress(IntegrityError, UnsafePathError):
        decode_tree(_corrupted(entries, data))


def test_replace_keeps_a_node_encodable() -> None:
    # The backup service fills content/subtree with dataclasses.replace after capture.
    node = Node(name=b"f", type=NodeType.FILE, size=3)
    filled = dataclasses.replace(node, content=(ID_A, ID_B))
    assert decode_tree(encode_tree([filled])) == [filled]


# -- ParentTree: the parent snapshot's directory, decoded entry by entry ----------------------


def _stat_of(node: Node) -> tuple[int, int, int, int, int]:
    return (node.size, node.mtime_ns, node.ctime_ns, node.inode, node.device)


@settings(max_examples=150)
@given(directories)
def test_parent_tree_gives_the_decoders_nodes(entries: list[Node]) -> None:
    parent = ParentTree(encode_tree(entries))
    assert len(parent) == len(entries)
    for entry in entries:
        node = parent.node(entry.name)
        assert node == entry
        assert parent.node(entry.name) is node  # decoded once: identity marks "taken over"
        found = parent.unchanged_file(entry.name, *_stat_of(entry))
        assert found == (entry.content if entry.type is NodeType.FILE else None)
        size, mtime, ctime, inode, device = _stat_of(entry)
        for changed in (
            (size + 1, mtime, ctime, inode, device),
            (size, mtime + 1, ctime, inode, device),
            (size, mtime, ctime - 1, inode, device),
            (size, mtime, ctime, inode + 1, device),
            (size, mtime, ctime, inode, device + 1),
        ):
            assert parent.unchanged_file(entry.name, *changed) is None
    missing = b"\xff" * 30  # never a drawn name: names are at most 24 bytes
    assert parent.node(missing) is None
    assert parent.unchanged_file(missing, 0, 0, 0, 0, 0) is None


def test_parent_tree_of_a_new_directory_is_empty() -> None:
    parent = ParentTree(None)
    assert len(parent) == 0
    assert parent.node(b"f") is None
    assert parent.unchanged_file(b"f", 0, 0, 0, 0, 0) is None
    assert len(parent) == 0  # looking up names adds none


def test_parent_tree_with_non_utf8_names_and_empty_files() -> None:
    gbk = Node(name=GBK_NAME, type=NodeType.FILE, size=3, mtime_ns=7, content=(ID_A,))
    empty = Node(name=b"empty", type=NodeType.FILE, mtime_ns=9)
    parent = ParentTree(encode_tree([gbk, empty]))
    assert len(parent) == 2
    assert parent.node(GBK_NAME) == gbk
    assert parent.unchanged_file(GBK_NAME, 3, 7, 0, 0, 0) == (ID_A,)
    assert parent.unchanged_file(b"empty", 0, 9, 0, 0, 0) == ()


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_parent_tree_never_hands_out_a_node_the_decoder_refuses(data: bytes) -> None:
    """Only the order of entries goes unchecked: a backup looks them up by name."""
    try:
        parent = ParentTree(data, "trees/abc")
        names_ = [n["name"].encode() for n in json.loads(data)["nodes"]]
        problems = 0
        for name in names_:
            try:
                parent.node(name)
            except (IntegrityError, UnsafePathError):
                problems += 1
    except IntegrityError as error:
        assert error.name == "trees/abc"
        return
    except UnsafePathError:
        return
    if data != MALFORMED["nodes unsorted"]:
        assert problems


@pytest.mark.parametrize(
    "content", [ID_A.hex()[:-2], "zz" * 32, ID_A.hex(), [ID_A.hex()[:-2]], [7], [None]]
)
def test_parent_tree_refuses_a_malformed_content_list_of_an_unchanged_file(
    content: object,
) -> None:
    parent = ParentTree(_blob({**FILE, "size": 3, "content": content}), "trees/abc")
    with pytest.raises(IntegrityError, match="content"):
        parent.unchanged_file(b"f", 3, 0, 0, 0, 0)


@given(st.binary(max_size=200))
def test_parent_tree_never_leaks_raw_exceptions(data: bytes) -> None:
    with contextlib.suppress(IntegrityError, UnsafePathError):
        ParentTree(data)


@given(directories, st.data())
def test_parent_tree_survives_corrupted_documents(entries: list[Node], data: st.DataObject) -> None:
    with contextlib.suppress(IntegrityError, UnsafePathError):
        parent = ParentTree(_corrupted(entries, data))
        for entry in entries:
            with contextlib.suppress(IntegrityError, UnsafePathError):
                parent.node(entry.name)
            with contextlib.suppress(IntegrityError, UnsafePathError):
                parent.unchanged_file(entry.name, *_stat_of(entry))


@settings(max_examples=100)
@given(directories)
def test_encoding_with_the_parent_gives_the_same_blob(entries: list[Node]) -> None:
    blob = encode_tree(entries)
    parent = ParentTree(blob)
    taken = [parent.node(entry.name) for entry in entries]
    assert all(parent.decoded(node) for node in taken if node is not None)
    assert encode_tree([n for n in taken if n is not None], parent) == blob


@settings(max_examples=100)
@given(directories, st.data())
def test_entries_carried_over_as_stored_give_the_same_blob(
    entries: list[Node], data: st.DataObject
) -> None:
    """Any split of a directory into nodes and entries carried over from the parent as
    stored (base64 names included) encodes to the parent's blob; a renamed node among
    carried-over entries sorts into place."""
    blob = encode_tree(entries)
    parent = ParentTree(blob)
    carried = data.draw(
        st.sets(st.sampled_from([e.name for e in entries])) if entries else st.just(set())
    )
    kept = [e for e in entries if e.name not in carried]
    assert encode_tree(kept, parent, sorted(carried, reverse=True)) == blob
    if kept and len(kept[0].name) < 200:
        renamed = dataclasses.replace(kept[0], name=kept[0].name + b"~")
        if renamed.name not in {e.name for e in entries}:
            expected = encode_tree([renamed, *kept[1:], *(e for e in entries if e.name in carried)])
            assert encode_tree([renamed, *kept[1:]], parent, list(carried)) == expected


TRICKY_NAMES = [
    b'a},{"name":"b","type":"file"}',  # looks like an entry boundary
    b'],"version":1}',  # looks like the end of the tree
    'qu"ote\\back\tslash \u00e9\u6d4b'.encode(),
    b"\xff\xfe not utf-8",  # stored as name_b64
]


def test_carried_over_entries_are_the_parents_text_even_with_tricky_names() -> None:
    entries = [
        Node(name=name, type=NodeType.FILE, size=7, content=(ID_A,), mtime_ns=i + 1)
        for i, name in enumerate(TRICKY_NAMES)
    ]
    blob = encode_tree(entries)
    parent = ParentTree(blob)
    text = blob.decode()
    for entry in entries:
        stored = parent.stored(entry.name)
        assert stored in text and json.loads(stored)["mtime_ns"] == entry.mtime_ns
    new = Node(name=b"b", type=NodeType.FIFO)
    assert encode_tree([new], parent, TRICKY_NAMES) == encode_tree([new, *entries])


def test_an_entry_is_carried_over_as_the_parent_stored_it() -> None:
    """A valid tree in the canonical layout whose entry is not itself canonical (keys out of
    order, spaces, its name escaped): the entry's text goes over unchanged, and decodes to the
    same node."""
    blob = (
        b'{"nodes":[{"type": "file", "size":3, "name":"\\u0066","content":["%s"]}],"version":1}'
        % (ID_A.hex().encode())
    )
    parent = ParentTree(blob)
    assert parent.stored(b"f") == blob.decode()[len('{"nodes":[') : -len('],"version":1}')]
    new = Node(name=b"g", type=NodeType.FIFO)
    out = encode_tree([new], parent, [b"f"])
    assert decode_tree(out) == [*decode_tree(blob), new]
    assert out != encode_tree(decode_tree(out))  # verbatim, not encoded again


@pytest.mark.parametrize(
    "layout",
    [
        '{"nodes": [%s], "version": 1}',  # whitespace
        '{"version":1,"nodes":[%s]}',  # keys in another order
        '{"nodes":[%s],"version":1}\n',  # a trailing newline
        ' {"nodes":[%s],"version":1}',
    ],
)
def test_another_layout_is_parsed_whole_and_its_entries_encoded_again(layout: str) -> None:
    entries = [
        Node(name=b"f", type=NodeType.FILE, size=3, content=(ID_A,)),
        Node(name=b"h", type=NodeType.FILE, size=4, content=(ID_B,)),
    ]
    canonical = encode_tree(entries)
    inner = canonical.decode()[len('{"nodes":[') : -len('],"version":1}')]
    blob = (layout % inner.replace(",{", ", {")).encode()
    parent = ParentTree(blob)
    assert decode_tree(blob) == entries
    new = Node(name=b"g", type=NodeType.FIFO)
    assert encode_tree([new], parent, [b"f", b"h"]) == encode_tree([*entries, new])


def test_a_carried_over_entry_may_not_repeat_a_name() -> None:
    node = Node(name=b"f", type=NodeType.FILE, size=1, content=(ID_A,))
    parent = ParentTree(encode_tree([node]))
    with pytest.raises(ValueError, match="duplicate"):
        encode_tree([node], parent, [b"f"])
    with pytest.raises(KeyError):
        encode_tree([], parent, [b"missing"])


def test_only_the_parents_own_nodes_skip_the_checks() -> None:
    good = Node(name=b"f", type=NodeType.FILE, size=1, content=(ID_A,))
    parent = ParentTree(encode_tree([good]))
    assert parent.node(b"f") is not None
    forged = Node(name=b"f", type=NodeType.FILE, content=(b"short",))  # same name, not its own
    assert not parent.decoded(forged)
    with pytest.raises(ValueError, match="32-byte"):
        encode_tree([forged], parent)
    with pytest.raises(UnsafePathError):
        encode_tree([Node(name=b"..", type=NodeType.FIFO)], parent)
