"""static-ct-api tiles and the leaf_index SCT extension."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctstatus.ct import DecodeError, EncodeError
from ctstatus.ct.extensions import (
    CtExtension,
    decode_ct_extensions,
    encode_ct_extensions,
    leaf_index_extensions,
    leaf_index_from_extensions,
)
from ctstatus.ct.merkle import leaf_hash, node_root, root
from ctstatus.ct.structures import MerkleTreeLeaf, TimestampedEntry
from ctstatus.ct.tiles import (
    DATA_LEVEL,
    TileId,
    TileLeaf,
    data_tile_path,
    decode_data_tile,
    decode_hash_tile,
    encode_data_tile,
    encode_hash_tile,
    index_path,
    level_shape,
    parse_tile_path,
    partial_width,
    tile_path,
)
from ctstatus.ct.tls import Reader

# --- leaf_index ---------------------------------------------------------------------------


def test_leaf_index_extension_is_8_bytes() -> None:
    assert leaf_index_extensions(0) == bytes.fromhex("0000050000000000")
    assert leaf_index_extensions(0x0102030405) == bytes.fromhex("0000050102030405")
    assert leaf_index_extensions((1 << 40) - 1) == bytes.fromhex("000005ffffffffff")
    for index in (0, 1, 255, 70000, (1 << 40) - 1):
        assert len(leaf_index_extensions(index)) == 8
        assert leaf_index_from_extensions(leaf_index_extensions(index)) == index
    for bad in (-1, 1 << 40, True):
        with pytest.raises(EncodeError):
            leaf_index_extensions(bad)


def test_ct_extensions_parsing() -> None:
    assert leaf_index_from_extensions(b"") is None
    assert decode_ct_extensions(b"") == ()
    other_then_index = encode_ct_extensions(
        [CtExtension(7, b"abc"), CtExtension(0, (9).to_bytes(5, "big"))]
    )
    assert leaf_index_from_extensions(other_then_index) == 9
    assert leaf_index_from_extensions(encode_ct_extensions([CtExtension(1, b"")])) is None
    with pytest.raises(DecodeError, match="duplicate"):
        decode_ct_extensions(bytes.fromhex("000000000000"))
    with pytest.raises(DecodeError, match="trailing"):
        leaf_index_from_extensions(bytes.fromhex("000006000000000000"))
    with pytest.raises(DecodeError, match="truncated"):
        leaf_index_from_extensions(bytes.fromhex("00000400000000"))
    with pytest.raises(DecodeError, match="truncated"):
        decode_ct_extensions(bytes.fromhex("000005"))
    with pytest.raises(EncodeError, match="duplicate"):
        encode_ct_extensions([CtExtension(0, b""), CtExtension(0, b"")])


# --- paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "path"),
    [
        (0, "000"),
        (5, "005"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (1_000_000_000, "x001/x000/x000/000"),
    ],
)
def test_index_paths(index: int, path: str) -> None:
    assert index_path(index) == path
    assert parse_tile_path(f"tile/0/{path}") == TileId(0, index)


def test_tile_paths() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(1, 1234067, 8) == "tile/1/x001/x234/067.p/8"
    assert data_tile_path(1234067) == "tile/data/x001/x234/067"
    assert data_tile_path(5, 255) == "tile/data/005.p/255"
    assert parse_tile_path("tile/data/005.p/255") == TileId(DATA_LEVEL, 5, 255)
    assert parse_tile_path("tile/5/x001/000.p/1") == TileId(5, 1000, 1)
    assert TileId(DATA_LEVEL, 3).is_data
    assert TileId(0, 3, 255).is_partial
    with pytest.raises(EncodeError):
        tile_path(6, 0)
    with pytest.raises(EncodeError):
        tile_path(0, 0, 0)
    with pytest.raises(EncodeError):
        tile_path(0, -1)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/5",
        "tile/0/0005",
        "tile/0/x000/005",  # non-canonical leading group
        "tile/0/x1/005",
        "tile/0/001/005",  # missing x
        "tile/6/000",  # level out of range for static-ct-api
        "tile/01/000",  # leading zero level
        "tile/-1/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",  # a full tile has no .p
        "tile/0/000.p/08",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/",
        "tile/0",
        "tiles/0/000",
        "/tile/0/000",
        "tile/entries/000",
        "tile/0/\u0660\u0660\u0660",
        "tile/0/" + "x001/" * 100 + "000",
    ],
)
def test_malformed_tile_paths(path: str) -> None:
    with pytest.raises(DecodeError):
        parse_tile_path(path)


@settings(max_examples=100)
@given(
    st.sampled_from([DATA_LEVEL, 0, 1, 2, 3, 4, 5]),
    st.integers(0, 1 << 40),
    st.integers(1, 256),
)
def test_tile_path_round_trip(level: int, index: int, width: int) -> None:
    tile = TileId(level, index, width)
    assert parse_tile_path(tile.path()) == tile


def test_partial_widths_of_the_spec_examples() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1."
    assert level_shape(70000, 0) == (273, 112)
    assert level_shape(70000, 1) == (1, 17)
    assert level_shape(70000, 2) == (0, 1)
    assert level_shape(70000, 3) == (0, 0)
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile
    # of width 1."
    assert level_shape(256, 0) == (1, 0)
    assert level_shape(256, 1) == (0, 1)
    for size in (0, 1, 255, 256, 257, 65535, 65536, 1234567):
        for level in range(4):
            assert partial_width(size, level) == (size // 256**level) % 256


# --- hash tiles ---------------------------------------------------------------------------


def test_hash_tiles_round_trip_and_are_strict() -> None:
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(256)]
    body = encode_hash_tile(hashes)
    assert len(body) == 8192
    assert decode_hash_tile(body) == tuple(hashes)
    assert decode_hash_tile(body[: 32 * 7], 7) == tuple(hashes[:7])
    for bad, width in [(body[:-1], 256), (body + b"\x00", 256), (body[:64], 3), (b"", 1)]:
        with pytest.raises(DecodeError, match="hash tile"):
            decode_hash_tile(bad, width)
    with pytest.raises(DecodeError, match="width"):
        decode_hash_tile(b"", 0)
    with pytest.raises(EncodeError):
        encode_hash_tile([])
    with pytest.raises(EncodeError):
        encode_hash_tile([b"short"])


def test_level_one_tile_hashes_are_subtree_roots() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(256 * 2 + 3)]
    level1 = [root(leaves[0:256]), root(leaves[256:512])]
    assert node_root(level1) == root(leaves[:512])


# --- data tiles ---------------------------------------------------------------------------


def x509_leaf(index: int) -> TileLeaf:
    entry = TimestampedEntry.x509_entry(
        1700000000000 + index, b"CERT%d" % index, leaf_index_extensions(index)
    )
    return TileLeaf(entry, None, (hashlib.sha256(b"issuer").digest(),))


def precert_leaf(index: int) -> TileLeaf:
    entry = TimestampedEntry.precert_entry(
        1700000000000 + index, b"\x11" * 32, b"TBS%d" % index, leaf_index_extensions(index)
    )
    chain = (hashlib.sha256(b"issuer").digest(), hashlib.sha256(b"root").digest())
    return TileLeaf(entry, b"PRECERT%d" % index, chain)


def test_tile_leaf_layouts() -> None:
    leaf = x509_leaf(3)
    assert leaf.encode() == (
        (1700000000003).to_bytes(8, "big")
        + b"\x00\x00"
        + b"\x00\x00\x05CERT3"
        + b"\x00\x08"
        + leaf_index_extensions(3)
        + b"\x00\x20"
        + hashlib.sha256(b"issuer").digest()
    )
    precert = precert_leaf(4)
    assert precert.encode() == (
        (1700000000004).to_bytes(8, "big")
        + b"\x00\x01"
        + b"\x11" * 32
        + b"\x00\x00\x04TBS4"
        + b"\x00\x08"
        + leaf_index_extensions(4)
        + b"\x00\x00\x08PRECERT4"
        + b"\x00\x40"
        + hashlib.sha256(b"issuer").digest()
        + hashlib.sha256(b"root").digest()
    )
    assert precert.leaf_hash() == MerkleTreeLeaf(precert.timestamped_entry).leaf_hash()
    assert precert.merkle_tree_leaf() == MerkleTreeLeaf(precert.timestamped_entry).encode()
    assert precert.leaf_index == 4
    assert TileLeaf.decode(precert.encode()) == precert


def test_data_tile_round_trip_with_leaf_index_checks() -> None:
    leaves = [x509_leaf(512 + i) if i % 3 else precert_leaf(512 + i) for i in range(256)]
    body = encode_data_tile(leaves)
    assert decode_data_tile(body, first_index=512) == tuple(leaves)
    assert decode_data_tile(body) == tuple(leaves)
    with pytest.raises(DecodeError, match="leaf_index 512, expected 0"):
        decode_data_tile(body, first_index=0)
    with pytest.raises(DecodeError, match="trailing"):
        decode_data_tile(body, 255)
    with pytest.raises(DecodeError, match="trailing"):
        decode_data_tile(body + b"\x00", 256)
    partial = encode_data_tile(leaves[:5])
    assert len(decode_data_tile(partial, 5, first_index=512)) == 5
    with pytest.raises(DecodeError, match="5 entries, expected 6"):
        decode_data_tile(partial, 6)
    with pytest.raises(DecodeError):
        decode_data_tile(partial[:-1], 5)
    no_index = TileLeaf(TimestampedEntry.x509_entry(0, b"C"), None, ())
    with pytest.raises(DecodeError, match="leaf_index None"):
        decode_data_tile(encode_data_tile([no_index]), 1, first_index=0)
    with pytest.raises(DecodeError, match="width"):
        decode_data_tile(b"", 0)


def test_tile_leaf_refusals() -> None:
    entry = TimestampedEntry.x509_entry(0, b"C")
    with pytest.raises(EncodeError, match="pre_certificate"):
        TileLeaf(entry, b"PRE", ())
    with pytest.raises(EncodeError, match="fingerprints"):
        TileLeaf(entry, None, (b"short",))
    body = entry.encode() + b"\x00\x05" + b"12345"
    with pytest.raises(DecodeError, match="multiple of 32"):
        TileLeaf.decode(body)
    with pytest.raises(DecodeError, match="too long"):
        TileLeaf.read(Reader(entry.encode() + b"\x00\x00"), max_cert_length=0)
    with pytest.raises(EncodeError):
        encode_data_tile([])
