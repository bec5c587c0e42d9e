"""The log's Merkle tree as stored: tile-level node hashes, appending, and proofs from them.

Storage keeps, for every tile level L (static-ct-api: 0..5), the hash of each complete subtree
of 256^L leaves: level 0 holds the leaf hashes, level 1 the roots of full 256-leaf tiles, and so
on. Those rows are exactly the static-ct-api hash tiles, and any complete subtree of 2^h leaves
is the root over at most 128 consecutive rows one level down, so proofs and tiles never touch
more than a few hundred hashes, however large the log.

:class:`TreeEdge` is the writer's view: the compact tree for the root plus the hashes of each
level's incomplete tile, so appending a leaf costs O(1) amortised hashes and produces the rows
to insert. The proofs are :mod:`ctstatus.ct.merkle`'s, fed subtree roots from the stored rows
(:func:`range_hash`) instead of walking every leaf.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ctstatus.ct import merkle
from ctstatus.ct.merkle import CompactTree, node_hash, node_root

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 5

# (height, index) -> MTH of leaves [index * 2^height, (index + 1) * 2^height)
SubtreeHash = Callable[[int, int], bytes]
# (level, start, end) -> the stored node hashes of that tile level, start <= i < end
NodeRows = Callable[[int, int, int], Sequence[bytes]]


@dataclass
class TreeEdge:
    """What the writer needs to append: the compact tree and each level's incomplete tile."""

    compact: CompactTree = field(default_factory=CompactTree)
    edges: list[list[bytes]] = field(default_factory=lambda: [[]])

    @property
    def size(self) -> int:
        return self.compact.size

    def copy(self) -> TreeEdge:
        return TreeEdge(self.compact.copy(), [list(level) for level in self.edges])

    def append(self, leaf_hash: bytes, rows: list[tuple[int, int, bytes]]) -> None:
        """Append one leaf; add the node rows (level, index, hash) it completes to ``rows``."""
        index = self.compact.size
        self.compact.append(leaf_hash)
        level, value = 0, leaf_hash
        while True:
            rows.append((level, index, value))
            edge = self.edges[level]
            edge.append(value)
            if len(edge) < TILE_WIDTH or level == MAX_TILE_LEVEL:
                if len(edge) == TILE_WIDTH:
                    edge.clear()
                return
            value = node_root(edge)
            edge.clear()
            index >>= TILE_HEIGHT
            level += 1
            if len(self.edges) == level:
                self.edges.append([])

    @classmethod
    def restore(cls, size: int, compact_nodes: Sequence[bytes], rows: NodeRows) -> TreeEdge:
        """Rebuild from the stored compact tree and node rows (checked against each other)."""
        compact = CompactTree.from_state(size, compact_nodes)
        edges: list[list[bytes]] = []
        for level in range(MAX_TILE_LEVEL + 1):
            count = size >> (TILE_HEIGHT * level)
            start = count - count % TILE_WIDTH
            hashes = list(rows(level, start, count))
            if len(hashes) != count - start:
                raise ValueError(
                    f"tree level {level}: {len(hashes)} stored nodes from {start}, "
                    f"expected {count - start}"
                )
            edges.append(hashes)
            if count < TILE_WIDTH:
                break
        return cls(compact, edges)


def subtree_from_rows(rows: NodeRows) -> SubtreeHash:
    """A :data:`SubtreeHash` over stored tile-level rows (no cache)."""

    def subtree(height: int, index: int) -> bytes:
        level = min(height // TILE_HEIGHT, MAX_TILE_LEVEL)
        span = height - level * TILE_HEIGHT
        start = index << span
        hashes = rows(level, start, start + (1 << span))
        if len(hashes) != 1 << span:
            raise LookupError(f"subtree ({height}, {index}) is not stored")
        return node_root(hashes)

    return subtree


def range_hash(subtree: SubtreeHash, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range whose start is aligned to a power of two >= its length.

    Every range RFC 6962's proof recursion asks for has that shape, so it splits into complete
    subtrees of decreasing size, folded from the right as in a compact tree.
    """
    nodes: list[bytes] = []
    position = start
    while position < end:
        height = (end - position).bit_length() - 1
        if position:
            height = min(height, (position & -position).bit_length() - 1)
        nodes.append(subtree(height, position >> height))
        position += 1 << height
    result = nodes[-1]
    for node in reversed(nodes[:-1]):
        result = node_hash(node, result)
    return result


def inclusion_proof(subtree: SubtreeHash, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 6962 §2.1.1) from stored subtree hashes."""
    return merkle.inclusion_proof_with(index, size, functools.partial(range_hash, subtree))


def consistency_proof(subtree: SubtreeHash, first: int, size: int) -> list[bytes]:
    """PROOF(first, D[size]) (RFC 6962 §2.1.2); empty when ``first`` is 0 or ``size``."""
    return merkle.consistency_proof_with(first, size, functools.partial(range_hash, subtree))
