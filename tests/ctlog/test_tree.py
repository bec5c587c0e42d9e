"""The stored tree: tile-level rows, proofs from them equal to the library's, and restoring."""

from __future__ import annotations

import hashlib
import time

import pytest

from ctstatus.ct import merkle
from ctstatus.ctlog.tree import (
    TreeEdge,
    consistency_proof,
    inclusion_proof,
    subtree_from_rows,
)


class Rows:
    """Node rows in memory, as the database holds them."""

    def __init__(self) -> None:
        self.levels: dict[int, list[bytes]] = {}

    def add(self, rows: list[tuple[int, int, bytes]]) -> None:
        for level, index, value in rows:
            column = self.levels.setdefault(level, [])
            assert index == len(column), "rows are appended in order"
            column.append(value)

    def __call__(self, level: int, start: int, end: int) -> list[bytes]:
        return self.levels.get(level, [])[start:end]


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]


def build(hashes: list[bytes]) -> tuple[TreeEdge, Rows]:
    tree, rows = TreeEdge(), Rows()
    for value in hashes:
        batch: list[tuple[int, int, bytes]] = []
        tree.append(value, batch)
        rows.add(batch)
    return tree, rows


def test_rows_are_the_tile_levels_and_proofs_match_the_library() -> None:
    hashes = leaves(70_000 // 64)  # a few full tiles and partial ones
    tree, rows = build(hashes)
    assert tree.compact.root() == merkle.root(hashes)
    assert rows.levels[1][0] == merkle.root(hashes[:256])
    subtree = subtree_from_rows(rows)
    for size in [1, 2, 3, 7, 8, 255, 256, 257, 511, 512, 513, 700, len(hashes)]:
        prefix = hashes[:size]
        for index in {0, size // 3, size // 2, size - 1}:
            assert inclusion_proof(subtree, index, size) == merkle.inclusion_proof(index, prefix)
        for first in {0, 1, size // 2, size - 1, size}:
            expected = merkle.consistency_proof(first, prefix)
            assert consistency_proof(subtree, first, size) == expected


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 65536, 65537])
def test_restore_continues_exactly(size: int) -> None:
    hashes = leaves(size + 300)
    tree, rows = build(hashes[:size])
    restored = TreeEdge.restore(size, tree.compact.state()[1], rows)
    assert restored.edges[0] == tree.edges[0]
    for value in hashes[size:]:
        batch: list[tuple[int, int, bytes]] = []
        restored.append(value, batch)
        rows.add(batch)
    assert restored.compact.root() == merkle.root(hashes)


def test_restore_notices_missing_rows() -> None:
    tree, rows = build(leaves(300))
    rows.levels[0].pop()
    with pytest.raises(ValueError, match="level 0"):
        TreeEdge.restore(300, tree.compact.state()[1], rows)


def test_proofs_in_a_million_entry_tree_are_fast() -> None:
    """Proofs touch O(log n) stored subtrees, not the leaves."""
    size = 1 << 20
    rows = Rows()
    # Level 0 holds leaf hashes; higher levels are whatever the rows say (the proof code only
    # reads them), so fake them cheaply instead of hashing a million leaves.
    rows.levels[0] = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    rows.levels[1] = [hashlib.sha256(b"1" + i.to_bytes(4, "big")).digest() for i in range(4096)]
    rows.levels[2] = [hashlib.sha256(b"2" + i.to_bytes(4, "big")).digest() for i in range(16)]
    subtree = subtree_from_rows(rows)
    started = time.perf_counter()
    for index in range(0, size, size // 50):
        assert len(inclusion_proof(subtree, index, size - 1)) <= 21
        assert len(consistency_proof(subtree, index + 1, size - 7)) <= 42
    per_proof = (time.perf_counter() - started) / 100
    assert per_proof < 0.02, f"{per_proof * 1000:.1f} ms per proof"
