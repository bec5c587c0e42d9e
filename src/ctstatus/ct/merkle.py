"""The RFC 6962 / RFC 9162 Merkle tree: hashes, proofs, their verification, and a compact tree.

Proof *generation* follows the recursive definitions of RFC 6962 §2.1 and works over a full list
of leaf hashes (a log that keeps them all). Proof *verification* follows the iterative procedures
of RFC 9162 §2.1.3.2 and §2.1.4.2, and :class:`CompactTree` recomputes roots over any number of
entries in O(log n) memory, so a monitor never has to trust a root it was handed.

Verification raises :class:`ProofError` with the reason; ``is_valid_*`` wrap that as a bool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from ctstatus.ct.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Tree sizes are uint64, so no proof needs more than 64 nodes (plus one for consistency when the
# first size is a power of two, which we prepend ourselves).
MAX_PROOF_NODES = 64
MAX_TREE_SIZE = (1 << 64) - 1

SubtreeHash = Callable[[int, int], bytes]
"""``subtree_hash(start, end)`` returns MTH(D[start:end]) of the log's leaves."""


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d), the hash of one leaf (an encoded MerkleTreeLeaf)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right), the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` > 1): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes")


def node_root(nodes: Sequence[bytes]) -> bytes:
    """The RFC 6962 tree hash over ``nodes`` taken as already-hashed bottom-level nodes.

    With leaf hashes this is MTH of the leaves. With the hashes of consecutive complete subtrees
    of equal power-of-two size (a static-ct-api tile) it is the hash of the subtree they span.
    """
    tree = CompactTree()
    for node in nodes:
        tree.append(node)
    return tree.root()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) given the leaf hashes; :data:`EMPTY_ROOT` for no leaves."""
    return node_root(leaf_hashes)


def _slices(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    return lambda start, end: node_root(leaf_hashes[start:end])


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 §2.1.1, for the tree of all ``leaf_hashes``."""
    return inclusion_proof_with(index, len(leaf_hashes), _slices(leaf_hashes))


def inclusion_proof_with(index: int, size: int, subtree_hash: SubtreeHash) -> list[bytes]:
    """PATH(index, D[size]) with ``subtree_hash(start, end)`` giving MTH(D[start:end]).

    For a log that stores subtree hashes (by level, or as tiles) instead of recomputing them from
    every leaf: it is asked for at most one subtree per level of the tree.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    # Walk down from the root, collecting the sibling of each subtree containing ``index``.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_hash(start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(start, start + k))
            start = start + k
    path.reverse()
    return path


def consistency_proof(first: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(first, D[n]) of RFC 6962 §2.1.2; empty when ``first`` is 0 or ``n``."""
    return consistency_proof_with(first, len(leaf_hashes), _slices(leaf_hashes))


def consistency_proof_with(first: int, size: int, subtree_hash: SubtreeHash) -> list[bytes]:
    """PROOF(first, D[size]) with ``subtree_hash(start, end)`` giving MTH(D[start:end])."""
    if not 0 <= first <= size:
        raise ValueError(f"first size {first} outside 0..{size}")
    if first in (0, size):
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, size, first, True
    # SUBPROOF(m, D[start:end], complete), unrolled: the recursion only ever descends one side.
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(subtree_hash(start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        proof.append(subtree_hash(start, end))
    proof.reverse()
    return proof


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for ``leaf`` at ``index`` (RFC 9162 §2.1.3.2)."""
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ProofError(f"tree size {size} outside 0..2^64-1")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} not below tree size {size}")
    if len(proof) > MAX_PROOF_NODES:
        raise ProofError(f"proof has {len(proof)} nodes, more than {MAX_PROOF_NODES}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, size - 1, leaf
    for position, p in enumerate(proof):
        _check_hash(p, f"proof[{position}]")
        if sn == 0:
            raise ProofError(f"proof too long: {len(proof)} nodes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof too short: {len(proof)} nodes")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``leaf`` at ``index`` in the tree."""
    _check_hash(expected_root, "root")
    if root_from_inclusion_proof(index, size, leaf, proof) != expected_root:
        raise ProofError(f"inclusion proof for leaf {index} of {size} gives a different root")


def is_valid_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """:func:`verify_inclusion` as a bool."""
    try:
        verify_inclusion(index, size, leaf, proof, expected_root)
    except ProofError:
        return False
    return True


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows tree ``first`` is a prefix of ``second``.

    The two cases RFC 9162's procedure leaves out are handled as RFC 9162 says: equal sizes need
    an empty proof and equal roots; a first size of 0 needs an empty proof (the empty tree is a
    prefix of every tree) and the first root must be the empty root.
    """
    _check_hash(first_root, "first root")
    _check_hash(second_root, "second root")
    if not 0 <= first <= second <= MAX_TREE_SIZE:
        raise ProofError(f"sizes {first}, {second} are not 0 <= first <= second < 2^64")
    if len(proof) > MAX_PROOF_NODES:
        raise ProofError(f"proof has {len(proof)} nodes, more than {MAX_PROOF_NODES}")
    for position, p in enumerate(proof):
        _check_hash(p, f"proof[{position}]")
    if first == second:
        if proof:
            raise ProofError("proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError(f"different roots for the same size {first}")
        return
    if first == 0:
        if proof:
            raise ProofError("proof from the empty tree must be empty")
        if first_root != EMPTY_ROOT:
            raise ProofError("first root is not the empty-tree root")
        return
    if not proof:
        raise ProofError("empty consistency proof between different non-zero sizes")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"proof too long: {len(proof)} nodes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof too short: {len(proof)} nodes")
    if fr != first_root:
        raise ProofError(f"proof does not reproduce the root of size {first}")
    if sr != second_root:
        raise ProofError(f"proof does not reproduce the root of size {second}")


def is_valid_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """:func:`verify_consistency` as a bool."""
    try:
        verify_consistency(first, second, first_root, second_root, proof)
    except ProofError:
        return False
    return True


class CompactTree:
    """An append-only Merkle tree that keeps only the roots of its maximal complete subtrees.

    For size n that is one hash per set bit of n (at most 64), largest subtree first -- the
    "collapsed tree" monitors like certspotter keep. Appending costs amortised two hashes;
    :meth:`root` costs at most 63. ``state()`` / ``from_state()`` give a resume point to store.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._nodes: list[bytes] = []

    @classmethod
    def from_state(cls, size: int, nodes: Sequence[bytes]) -> CompactTree:
        """Rebuild from :meth:`state`; raises ``ValueError`` if ``nodes`` cannot be for ``size``."""
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
            raise ValueError(f"tree size {size!r} outside 0..2^64-1")
        if len(nodes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} subtree roots")
        for node in nodes:
            if not isinstance(node, bytes) or len(node) != HASH_SIZE:
                raise ValueError(f"subtree roots must be {HASH_SIZE}-byte hashes")
        tree = cls()
        tree._size = size
        tree._nodes = list(nodes)
        return tree

    def state(self) -> tuple[int, list[bytes]]:
        """(size, subtree roots largest first): everything needed to resume."""
        return self._size, list(self._nodes)

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hash_value: bytes) -> None:
        """Add the next leaf (its leaf hash, not its data)."""
        if len(leaf_hash_value) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        if self._size == MAX_TREE_SIZE:
            raise ValueError("tree is full")
        node, carry = bytes(leaf_hash_value), self._size
        while carry & 1:
            node = node_hash(self._nodes.pop(), node)
            carry >>= 1
        self._nodes.append(node)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for value in leaf_hashes:
            self.append(value)

    def root(self) -> bytes:
        """MTH of everything appended so far."""
        if not self._nodes:
            return EMPTY_ROOT
        result = self._nodes[-1]
        for node in reversed(self._nodes[:-1]):
            result = node_hash(node, result)
        return result

    def copy(self) -> CompactTree:
        return CompactTree.from_state(self._size, self._nodes)


def compact_tree_from_last_leaf(size: int, leaf: bytes, proof: Sequence[bytes]) -> CompactTree:
    """The compact tree of ``size`` from leaf ``size - 1`` and its inclusion proof in tree
    ``size``: a monitor starting mid-log gets its right edge without the prefix.

    Every sibling on the last leaf's path is a left one: reversed, the path is exactly the
    compact tree of ``size - 1``. The result is NOT verified: compare its root with a signed one
    (equal sizes) or prove it consistent with one (:func:`verify_consistency`).
    """
    if not 1 <= size <= MAX_TREE_SIZE:
        raise ProofError(f"tree size {size} outside 1..2^64-1")
    _check_hash(leaf, "leaf hash")
    expected = (size - 1).bit_count()
    if len(proof) != expected:
        raise ProofError(f"proof of the last leaf of {size} has {len(proof)} nodes, not {expected}")
    for position, node in enumerate(proof):
        _check_hash(node, f"proof[{position}]")
    tree = CompactTree.from_state(size - 1, list(reversed(proof)))
    tree.append(leaf)
    return tree


def proof_ranges(first: int, size: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` subtrees PROOF(first, D[size]) is made of, in proof order: what to
    fetch (e.g. from tiles) before :func:`consistency_proof_with` can run without waiting."""
    ranges: list[tuple[int, int]] = []

    def record(start: int, end: int) -> bytes:
        ranges.append((start, end))
        return EMPTY_ROOT

    consistency_proof_with(first, size, record)
    ranges.reverse()
    return ranges
