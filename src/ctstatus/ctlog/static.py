"""static-ct-api reads: hash tiles and data tiles, cut from the stored rows.

A hash tile at level L is a run of the stored level-L node hashes; a data tile is the entries
of a level-0 tile as ``TileLeaf`` records (C2SP static-ct-api): the Merkle leaf's
``TimestampedEntry``, the submitted precertificate for precert entries (already encoded as the
head of ``extra_data``), and the chain fingerprints. Only tiles within the newest published tree
are served; anything else is a 404, as for an object not (yet) uploaded.
"""

from __future__ import annotations

from ctstatus.ct.structures import LogEntryType
from ctstatus.ct.tiles import MAX_LEVEL, TILE_HEIGHT, TILE_WIDTH
from ctstatus.ctlog.errors import ReadError
from ctstatus.ctlog.storage import LogStore


def _check_available(available: int, index: int, width: int, what: str) -> int:
    start = index * TILE_WIDTH
    if start + width > available:
        raise ReadError(f"{what} {index} of width {width} is beyond the published tree", 404)
    return start


def hash_tile(store: LogStore, tree_size: int, level: int, index: int, width: int) -> bytes:
    """The level-``level`` hash tile ``index`` holding ``width`` hashes."""
    if not 0 <= level <= MAX_LEVEL:
        raise ReadError(f"tile level {level} outside 0..{MAX_LEVEL}", 404)
    start = _check_available(tree_size >> (TILE_HEIGHT * level), index, width, "tile")
    hashes = store.node_rows(level, start, start + width)
    if len(hashes) != width:
        raise ReadError(f"tile {level}/{index} is incomplete in storage", 503)
    return b"".join(hashes)


def _tile_leaf(leaf_input: bytes, extra_data: bytes, chain_fps: bytes) -> bytes:
    entry_type = int.from_bytes(leaf_input[10:12], "big")
    parts = [leaf_input[2:]]  # the TimestampedEntry (after version and leaf_type)
    if entry_type == LogEntryType.PRECERT_ENTRY:
        length = int.from_bytes(extra_data[:3], "big")
        parts.append(extra_data[: 3 + length])  # uint24 length || precertificate DER
    parts.append(len(chain_fps).to_bytes(2, "big"))
    parts.append(chain_fps)
    return b"".join(parts)


def data_tile(store: LogStore, tree_size: int, index: int, width: int) -> bytes:
    """Data tile ``index`` holding ``width`` entries."""
    start = _check_available(tree_size, index, width, "data tile")
    rows = store.tile_entries(start, start + width)
    if len(rows) != width:
        raise ReadError(f"data tile {index} is incomplete in storage", 503)
    return b"".join(_tile_leaf(*row) for row in rows)
