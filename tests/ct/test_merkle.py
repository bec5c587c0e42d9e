"""Merkle tree: RFC 6962 reference vectors, a naive reference implementation, and tampering."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctstatus.ct import merkle
from ctstatus.ct.errors import ProofError
from ctstatus.ct.merkle import (
    EMPTY_ROOT,
    CompactTree,
    consistency_proof,
    inclusion_proof,
    is_valid_consistency,
    is_valid_inclusion,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The Certificate Transparency reference leaves and roots (certificate-transparency-go and
# Trillian's test data; the same vectors are used across CT implementations).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LH = [leaf_hash(d) for d in CT_LEAVES]


# --- a naive reference, written straight from RFC 6962 §2.1 --------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, recursively, as RFC 6962 §2.1 defines it."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = _k(n)
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [naive_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], b), naive_mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


def naive_proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    return naive_subproof(m, leaves, True)


@functools.cache
def tree(n: int) -> tuple[bytes, ...]:
    return tuple(leaf_hash(i.to_bytes(4, "big")) for i in range(n))


def flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


# --- reference vectors -------------------------------------------------------------------


def test_reference_roots_for_sizes_0_to_8() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    for n in range(1, 9):
        assert root(LH[:n]).hex() == CT_ROOTS[n - 1], n


def test_reference_audit_paths() -> None:
    assert [h.hex() for h in inclusion_proof(0, LH)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [h.hex() for h in inclusion_proof(5, LH)] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert inclusion_proof(0, LH[:1]) == []


def test_reference_consistency_proof_1_to_8() -> None:
    assert [h.hex() for h in consistency_proof(1, LH)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    verify_consistency(1, 8, LH[0], bytes.fromhex(CT_ROOTS[7]), consistency_proof(1, LH))


def test_rfc6962_seven_leaf_example() -> None:
    """RFC 6962 §2.1.3: the tree of d0..d6 with nodes named a..l."""
    a, b, c, d, e, f, j = LH[:7]
    g, h, i = node_hash(a, b), node_hash(c, d), node_hash(e, f)
    k, l_ = node_hash(g, h), node_hash(i, j)
    seven = LH[:7]
    assert root(seven) == node_hash(k, l_)
    assert inclusion_proof(0, seven) == [b, h, l_]
    assert inclusion_proof(3, seven) == [c, g, l_]
    assert inclusion_proof(4, seven) == [f, j, k]
    assert inclusion_proof(6, seven) == [i, k]
    assert consistency_proof(3, seven) == [c, d, g, l_]
    assert consistency_proof(4, seven) == [l_]
    assert consistency_proof(6, seven) == [i, j, k]
    for m in (3, 4, 6):
        verify_consistency(m, 7, root(seven[:m]), root(seven), consistency_proof(m, seven))


# --- exhaustive agreement with the naive reference on small trees -------------------------


def test_roots_and_compact_tree_agree_with_naive_for_every_size_to_300() -> None:
    leaves = tree(300)
    compact = CompactTree()
    for n in range(301):
        expected = naive_mth(leaves[:n])
        assert compact.size == n
        assert compact.root() == expected
        assert root(leaves[:n]) == expected
        size, nodes = compact.state()
        assert len(nodes) <= 64
        assert CompactTree.from_state(size, nodes).root() == expected
        if n < 300:
            compact.append(leaves[n])


def test_every_inclusion_proof_to_size_64() -> None:
    for n in range(1, 65):
        leaves = tree(n)
        top = naive_mth(leaves)
        for index in range(n):
            proof = inclusion_proof(index, leaves)
            assert proof == naive_path(index, leaves)
            verify_inclusion(index, n, leaves[index], proof, top)


def test_every_consistency_proof_to_size_48() -> None:
    for n in range(1, 49):
        leaves = tree(n)
        top = naive_mth(leaves)
        for m in range(1, n):
            proof = consistency_proof(m, leaves)
            assert proof == naive_proof(m, leaves)
            verify_consistency(m, n, naive_mth(leaves[:m]), top, proof)


sizes = st.integers(min_value=1, max_value=400)


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_inclusion_proofs_verify_and_tampering_fails(n: int, data: st.DataObject) -> None:
    leaves = tree(n)
    index = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(index, leaves)
    top = root(leaves)
    assert proof == naive_path(index, leaves)
    assert is_valid_inclusion(index, n, leaves[index], proof, top)
    bit = data.draw(st.integers(0, 255))
    assert not is_valid_inclusion(index, n, flip(leaves[index], bit), proof, top)
    assert not is_valid_inclusion(index, n, leaves[index], proof, flip(top, bit))
    for position in range(len(proof)):
        tampered = [*proof]
        tampered[position] = flip(tampered[position], bit)
        assert not is_valid_inclusion(index, n, leaves[index], tampered, top)
    if proof:
        assert not is_valid_inclusion(index, n, leaves[index], proof[:-1], top)
    assert not is_valid_inclusion(index, n, leaves[index], [*proof, top], top)
    # Another index of the same tree never verifies with this proof. (Another *size* can: the
    # same hashing order may fit a different tree shape, which is why a proof is only ever
    # checked against the root signed for that size.)
    for other in {0, n - 1, index ^ 1, index + 1, index - 1}:
        if other != index and 0 <= other < n:
            assert not is_valid_inclusion(other, n, leaves[index], proof, top)
    assert not is_valid_inclusion(n, n, leaves[index], proof, top)


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_consistency_proofs_verify_and_tampering_fails(n: int, data: st.DataObject) -> None:
    leaves = tree(n)
    m = data.draw(st.integers(0, n))
    proof = consistency_proof(m, leaves)
    first, second = root(leaves[:m]), root(leaves)
    if 0 < m < n:
        assert proof == naive_proof(m, leaves)
    assert is_valid_consistency(m, n, first, second, proof)
    bit = data.draw(st.integers(0, 255))
    assert not is_valid_consistency(m, n, flip(first, bit), second, proof)
    if m:  # (the empty tree is a prefix of every tree, whatever its root)
        assert not is_valid_consistency(m, n, first, flip(second, bit), proof)
    for position in range(len(proof)):
        tampered = [*proof]
        tampered[position] = flip(tampered[position], bit)
        assert not is_valid_consistency(m, n, first, second, tampered)
    if proof:
        assert not is_valid_consistency(m, n, first, second, proof[:-1])
    assert not is_valid_consistency(m, n, first, second, [*proof, second])
    # The proof and roots do not fit another first size of the same trees.
    for other in {m - 1, m + 1}:
        if 0 < other < n:
            assert not is_valid_consistency(other, n, first, second, proof)


def test_special_cases_of_consistency() -> None:
    leaves = tree(5)
    top = root(leaves)
    verify_consistency(5, 5, top, top, [])
    verify_consistency(0, 5, EMPTY_ROOT, top, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="equal sizes"):
        verify_consistency(5, 5, top, top, [top])
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(5, 5, top, root(leaves[:4]), [])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 5, EMPTY_ROOT, top, [top])
    with pytest.raises(ProofError, match="empty-tree root"):
        verify_consistency(0, 5, top, top, [])
    with pytest.raises(ProofError, match="empty consistency proof"):
        verify_consistency(2, 5, root(leaves[:2]), top, [])
    with pytest.raises(ProofError, match="sizes"):
        verify_consistency(6, 5, top, top, [])


def test_bad_arguments_are_proof_errors() -> None:
    leaves = tree(4)
    top = root(leaves)
    with pytest.raises(ProofError, match="not below"):
        verify_inclusion(4, 4, leaves[0], [], top)
    with pytest.raises(ProofError, match="not below"):
        verify_inclusion(0, 0, leaves[0], [], top)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(0, 4, b"short", inclusion_proof(0, leaves), top)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(0, 4, leaves[0], [b"x" * 31, top], top)
    with pytest.raises(ProofError, match="more than 64"):
        verify_inclusion(0, 4, leaves[0], [top] * 65, top)
    with pytest.raises(ProofError, match="2\\^64"):
        verify_inclusion(0, 1 << 64, leaves[0], [], top)
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(4, leaves)
    with pytest.raises(ValueError, match="outside"):
        consistency_proof(5, leaves)


def test_inclusion_in_a_tree_of_one() -> None:
    verify_inclusion(0, 1, LH[0], [], LH[0])
    assert not is_valid_inclusion(0, 1, LH[0], [LH[1]], LH[0])


def test_compact_tree_state_is_checked() -> None:
    with pytest.raises(ValueError, match="subtree roots"):
        CompactTree.from_state(3, [LH[0]])
    with pytest.raises(ValueError, match="32-byte"):
        CompactTree.from_state(1, [b"x"])
    with pytest.raises(ValueError, match="outside"):
        CompactTree.from_state(-1, [])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactTree().append(b"x")


def test_compact_tree_resumes_from_state_for_a_big_tree() -> None:
    """Resume mid-way, like a watcher restarting from a stored cursor."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(5000)]
    first = CompactTree()
    first.extend(leaves[:3333])
    size, nodes = first.state()
    resumed = CompactTree.from_state(size, nodes)
    resumed.extend(leaves[3333:])
    assert resumed.root() == root(leaves) == naive_mth(leaves)
    copy = resumed.copy()
    copy.append(leaves[0])
    assert resumed.size == 5000
    assert copy.size == 5001


def test_node_root_of_tiles_is_the_subtree_hash() -> None:
    """A level-1 tile entry is the hash of 256 leaves; node_root composes the same way."""
    leaves = tree(256 * 3 + 17)
    level1 = [root(leaves[i * 256 : (i + 1) * 256]) for i in range(3)]
    partial = root(leaves[768:])
    assert merkle.node_root([*level1]) == root(leaves[:768])
    # A full subtree of 512 leaves is the node hash of two level-1 entries.
    assert merkle.node_root(level1[:2]) == root(leaves[:512])
    # The whole tree: complete 256-leaf subtrees then the partial rest compose as RFC 6962 says.
    assert node_hash(merkle.node_root(level1[:2]), node_hash(level1[2], partial)) == root(leaves)


def test_proofs_from_stored_subtree_hashes_match() -> None:
    """A log that stores subtree hashes gets the same proofs, asking one subtree per level."""
    leaves = tree(300)
    asked: list[tuple[int, int]] = []

    def subtree_hash(start: int, end: int) -> bytes:
        asked.append((start, end))
        return naive_mth(leaves[start:end])

    for index in (0, 1, 127, 255, 256, 299):
        asked.clear()
        assert merkle.inclusion_proof_with(index, 300, subtree_hash) == naive_path(index, leaves)
        assert len(asked) <= 9
    for first in (1, 2, 100, 256, 299, 300, 0):
        expected = naive_proof(first, leaves) if 0 < first < 300 else []
        assert merkle.consistency_proof_with(first, 300, subtree_hash) == expected


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=700))
def test_right_edge_from_the_last_leafs_path(size: int) -> None:
    """The path of leaf size-1 in tree size is the compact tree of size-1, smallest first."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree = merkle.compact_tree_from_last_leaf(size, leaves[-1], inclusion_proof(size - 1, leaves))
    expected = CompactTree()
    expected.extend(leaves)
    assert tree.state() == expected.state()
    assert tree.root() == root(leaves)
    for first in (0, size // 3, size):
        ranges = merkle.proof_ranges(first, size)
        proof = consistency_proof(first, leaves)
        assert [root(leaves[s:e]) for s, e in ranges] == proof


def test_right_edge_refuses_a_path_of_the_wrong_length() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(6)]
    path = inclusion_proof(5, leaves)
    with pytest.raises(ProofError, match="nodes, not"):
        merkle.compact_tree_from_last_leaf(6, leaves[-1], path[:-1])
    with pytest.raises(ProofError):
        merkle.compact_tree_from_last_leaf(0, leaves[-1], [])
    with pytest.raises(ProofError):
        merkle.compact_tree_from_last_leaf(6, b"short", path)
