"""static-ct-api tiles: paths, hash tiles and data tiles (C2SP static-ct-api, tlog-tiles).

A tile is 256 consecutive hashes at one level of the tree (level 0: leaf hashes; level l: hashes
of complete subtrees of 256^l leaves). The rightmost tile of a level is usually partial, of width
``floor(size / 256^l) mod 256``. A data tile holds the entries matching a level-0 tile, each as a
``TileLeaf``: the Merkle leaf's ``TimestampedEntry``, the submitted precertificate for precert
entries, and the SHA-256 fingerprints of the submitted chain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctstatus.ct.errors import DecodeError, EncodeError
from ctstatus.ct.extensions import leaf_index_from_extensions
from ctstatus.ct.merkle import HASH_SIZE, leaf_hash
from ctstatus.ct.structures import (
    MAX_CERT_LENGTH,
    LogEntryType,
    MerkleLeafType,
    TimestampedEntry,
    Version,
)
from ctstatus.ct.tls import Reader, Writer

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 5
DATA_LEVEL = -1  # how a data tile's "level" is represented in :class:`TileId`
FINGERPRINT_SIZE = 32
MAX_FINGERPRINTS = 0xFFFF // FINGERPRINT_SIZE

_INDEX_ELEMENT = re.compile(r"x[0-9]{3}")
_LAST_ELEMENT = re.compile(r"[0-9]{3}")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_LEVEL = re.compile(r"0|[1-9][0-9]*")


def index_path(index: int) -> str:
    """N in 3-digit path elements, all but the last prefixed by ``x``: 1234067 -> x001/x234/067."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise EncodeError(f"tile index {index!r} is not a non-negative integer")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def parse_index_path(elements: list[str]) -> int:
    """The inverse of :func:`index_path`; only the canonical form (no ``x000`` lead) is accepted."""
    if not elements:
        raise DecodeError("tile path: missing index")
    *prefix, last = elements
    if not _LAST_ELEMENT.fullmatch(last) or not all(_INDEX_ELEMENT.fullmatch(p) for p in prefix):
        raise DecodeError(f"tile path: malformed index {'/'.join(elements)!r}")
    if prefix and prefix[0] == "x000":
        raise DecodeError(f"tile path: non-canonical index {'/'.join(elements)!r}")
    value = 0
    for element in [*(p[1:] for p in prefix), last]:
        value = value * 1000 + int(element)
    return value


@dataclass(frozen=True)
class TileId:
    """One tile: ``level`` 0..5 for hash tiles or :data:`DATA_LEVEL`, index, width 1..256."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.level != DATA_LEVEL and not 0 <= self.level <= MAX_LEVEL:
            raise EncodeError(f"tile level {self.level} outside 0..{MAX_LEVEL}")
        if self.index < 0:
            raise EncodeError(f"tile index {self.index} is negative")
        if not 1 <= self.width <= TILE_WIDTH:
            raise EncodeError(f"tile width {self.width} outside 1..{TILE_WIDTH}")

    @property
    def is_data(self) -> bool:
        return self.level == DATA_LEVEL

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]`` or ``tile/data/<N>[.p/<W>]``, relative to the prefix."""
        level = "data" if self.is_data else str(self.level)
        suffix = f".p/{self.width}" if self.is_partial else ""
        return f"tile/{level}/{index_path(self.index)}{suffix}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """The path of hash tile (``level``, ``index``) of ``width`` hashes."""
    return TileId(level, index, width).path()


def data_tile_path(index: int, width: int = TILE_WIDTH) -> str:
    """The path of data tile ``index`` holding ``width`` entries."""
    return TileId(DATA_LEVEL, index, width).path()


def parse_tile_path(path: str) -> TileId:
    """Parse a tile path made by :meth:`TileId.path`; anything non-canonical is refused."""
    if not isinstance(path, str) or len(path) > 200 or not path.isascii():
        raise DecodeError("tile path: not a short ASCII string")
    elements = path.split("/")
    if len(elements) < 3 or elements[0] != "tile":
        raise DecodeError(f"tile path: {path!r} does not start with tile/<L>/")
    level_text, rest = elements[1], elements[2:]
    if level_text == "data":
        level = DATA_LEVEL
    elif _LEVEL.fullmatch(level_text) and int(level_text) <= MAX_LEVEL:
        level = int(level_text)
    else:
        raise DecodeError(f"tile path: bad level {level_text!r}")
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH.fullmatch(rest[-1]) or int(rest[-1]) >= TILE_WIDTH:
            raise DecodeError(f"tile path: bad partial width {rest[-1]!r}")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
    return TileId(level, parse_index_path(rest), width)


def partial_width(tree_size: int, level: int) -> int:
    """Width of the partial tile at ``level`` for ``tree_size`` (0: there is none)."""
    return (tree_size >> (TILE_HEIGHT * level)) % TILE_WIDTH


def level_shape(tree_size: int, level: int) -> tuple[int, int]:
    """(number of full tiles, width of the partial tile or 0) at ``level`` for ``tree_size``."""
    return tree_size >> (TILE_HEIGHT * (level + 1)), partial_width(tree_size, level)


def encode_hash_tile(hashes: list[bytes] | tuple[bytes, ...]) -> bytes:
    """A hash tile's body: its 1..256 hashes concatenated."""
    if not 1 <= len(hashes) <= TILE_WIDTH:
        raise EncodeError(f"a tile holds 1..{TILE_WIDTH} hashes, not {len(hashes)}")
    if any(len(h) != HASH_SIZE for h in hashes):
        raise EncodeError(f"tile hashes must be {HASH_SIZE} bytes")
    return b"".join(hashes)


def decode_hash_tile(data: bytes, width: int = TILE_WIDTH) -> tuple[bytes, ...]:
    """The ``width`` hashes of a hash tile; its length must be exactly ``32 * width``."""
    if not 1 <= width <= TILE_WIDTH:
        raise DecodeError(f"hash tile: width {width} outside 1..{TILE_WIDTH}")
    if not isinstance(data, bytes) or len(data) != HASH_SIZE * width:
        size = len(data) if isinstance(data, bytes) else "?"
        raise DecodeError(f"hash tile: {size} bytes, expected {HASH_SIZE * width}")
    return tuple(data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE))


@dataclass(frozen=True)
class TileLeaf:
    """One entry of a data tile (static-ct-api "Log entries")."""

    timestamped_entry: TimestampedEntry
    pre_certificate: bytes | None
    chain_fingerprints: tuple[bytes, ...]

    def __post_init__(self) -> None:
        is_precert = self.timestamped_entry.entry_type is LogEntryType.PRECERT_ENTRY
        if is_precert != (self.pre_certificate is not None):
            raise EncodeError("pre_certificate: present exactly for precert entries")
        if any(len(f) != FINGERPRINT_SIZE for f in self.chain_fingerprints):
            raise EncodeError(f"chain fingerprints must be {FINGERPRINT_SIZE} bytes")
        if len(self.chain_fingerprints) > MAX_FINGERPRINTS:
            raise EncodeError(f"at most {MAX_FINGERPRINTS} chain fingerprints")

    def write(self, writer: Writer) -> None:
        self.timestamped_entry.write(writer)
        if self.pre_certificate is not None:
            writer.opaque(3, self.pre_certificate, 1, field="pre_certificate")
        writer.opaque(2, b"".join(self.chain_fingerprints), field="certificate_chain")

    def encode(self) -> bytes:
        writer = Writer()
        self.write(writer)
        return writer.to_bytes()

    @classmethod
    def read(cls, reader: Reader, max_cert_length: int = MAX_CERT_LENGTH) -> TileLeaf:
        entry = TimestampedEntry.read(reader, max_cert_length)
        pre_certificate = None
        if entry.entry_type is LogEntryType.PRECERT_ENTRY:
            pre_certificate = reader.opaque(3, 1, max_cert_length, field="pre_certificate")
        chain = reader.opaque(2, field="certificate_chain")
        if len(chain) % FINGERPRINT_SIZE:
            raise DecodeError(
                f"TileLeaf.certificate_chain: {len(chain)} bytes is not a multiple of 32"
            )
        fingerprints = tuple(
            chain[i : i + FINGERPRINT_SIZE] for i in range(0, len(chain), FINGERPRINT_SIZE)
        )
        return cls(entry, pre_certificate, fingerprints)

    @classmethod
    def decode(cls, data: bytes) -> TileLeaf:
        reader = Reader(data, "TileLeaf")
        value = cls.read(reader)
        reader.done()
        return value

    def merkle_tree_leaf(self) -> bytes:
        """The encoded ``MerkleTreeLeaf`` this entry stands for."""
        writer = Writer()
        writer.uint8(int(Version.V1), "version")
        writer.uint8(int(MerkleLeafType.TIMESTAMPED_ENTRY), "leaf_type")
        self.timestamped_entry.write(writer)
        return writer.to_bytes()

    def leaf_hash(self) -> bytes:
        """The leaf hash, to check against the level-0 tile and the tree."""
        return leaf_hash(self.merkle_tree_leaf())

    @property
    def leaf_index(self) -> int | None:
        """The ``leaf_index`` SCT extension of the entry, if any (DecodeError if malformed)."""
        return leaf_index_from_extensions(self.timestamped_entry.extensions)


def encode_data_tile(leaves: list[TileLeaf] | tuple[TileLeaf, ...]) -> bytes:
    """A data tile's body: 1..256 TileLeaf records back to back."""
    if not 1 <= len(leaves) <= TILE_WIDTH:
        raise EncodeError(f"a data tile holds 1..{TILE_WIDTH} entries, not {len(leaves)}")
    writer = Writer()
    for leaf in leaves:
        leaf.write(writer)
    return writer.to_bytes()


def decode_data_tile(
    data: bytes,
    width: int = TILE_WIDTH,
    *,
    first_index: int | None = None,
    max_cert_length: int = MAX_CERT_LENGTH,
) -> tuple[TileLeaf, ...]:
    """Exactly ``width`` TileLeaf records and nothing more (data must be un-gzipped already).

    With ``first_index`` (the tile index times 256), each entry's ``leaf_index`` extension must
    be present and equal its position in the log: a log cannot hand us an entry out of place.
    """
    if not 1 <= width <= TILE_WIDTH:
        raise DecodeError(f"data tile: width {width} outside 1..{TILE_WIDTH}")
    reader = Reader(data, "data tile")
    leaves: list[TileLeaf] = []
    for position in range(width):
        if not reader.remaining:
            raise DecodeError(f"data tile: {position} entries, expected {width}")
        leaf = TileLeaf.read(reader, max_cert_length)
        if first_index is not None:
            expected = first_index + position
            found = leaf.leaf_index
            if found != expected:
                raise DecodeError(
                    f"data tile: entry {position} has leaf_index {found}, expected {expected}"
                )
        leaves.append(leaf)
    reader.done()
    return tuple(leaves)
