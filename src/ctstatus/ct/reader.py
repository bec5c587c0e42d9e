"""Reading a log's contents: get-entries entries, tile-verified entries, certificate summaries.

Pure code, no networking: :class:`~ctstatus.ct.client.LogClient` fetches, this module decodes and
checks. Entries are decoded strictly (a bad leaf or extra_data is a :class:`DecodeError`), except
that an unknown entry type is kept opaque, as RFC 6962 §4 asks of v1 clients. Tiles are believed
only once the tree they describe hashes to the root of a verified checkpoint (:class:`TileTree`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from ctstatus.ct.errors import DecodeError, ProofError
from ctstatus.ct.merkle import (
    EMPTY_ROOT,
    CompactTree,
    consistency_proof_with,
    leaf_hash,
    node_hash,
    node_root,
    proof_ranges,
    verify_consistency,
)
from ctstatus.ct.structures import (
    CertificateChain,
    LogEntryType,
    MerkleTreeLeaf,
    PrecertChainEntry,
)
from ctstatus.ct.tiles import TILE_HEIGHT, TILE_WIDTH, TileLeaf

_KNOWN_ENTRY_TYPES = {int(t) for t in LogEntryType}


@dataclass(frozen=True)
class LogEntry:
    """One entry of an RFC 6962 log as get-entries returns it, decoded.

    ``leaf`` is ``None`` only for an entry type this code does not know (kept opaque). For a
    precert entry ``pre_certificate`` is the submitted precertificate; ``chain`` is the rest of
    the submitted chain (issuer first).
    """

    index: int
    leaf_input: bytes
    extra_data: bytes
    leaf: MerkleTreeLeaf | None
    chain: tuple[bytes, ...] = ()
    pre_certificate: bytes | None = None

    @property
    def entry_type(self) -> LogEntryType | None:
        return None if self.leaf is None else self.leaf.timestamped_entry.entry_type

    @property
    def leaf_hash(self) -> bytes:
        """The Merkle leaf hash, what get-proof-by-hash and the tree use."""
        return leaf_hash(self.leaf_input)

    @property
    def timestamp_ms(self) -> int | None:
        return None if self.leaf is None else self.leaf.timestamped_entry.timestamp

    @property
    def certificate_der(self) -> bytes | None:
        """The logged certificate, or for a precert entry the submitted precertificate."""
        if self.leaf is None:
            return None
        if self.entry_type is LogEntryType.X509_ENTRY:
            return self.leaf.timestamped_entry.certificate
        return self.pre_certificate


def decode_entry(index: int, leaf_input: bytes, extra_data: bytes) -> LogEntry:
    """Decode one get-entries item; :class:`DecodeError` says what is malformed."""
    if (
        len(leaf_input) >= 12
        and leaf_input[0] == 0
        and leaf_input[1] == 0
        and int.from_bytes(leaf_input[10:12], "big") not in _KNOWN_ENTRY_TYPES
    ):
        return LogEntry(index, leaf_input, extra_data, None)
    leaf = MerkleTreeLeaf.decode(leaf_input)
    if leaf.timestamped_entry.entry_type is LogEntryType.X509_ENTRY:
        chain = CertificateChain.decode(extra_data).certificates
        return LogEntry(index, leaf_input, extra_data, leaf, chain)
    precert = PrecertChainEntry.decode(extra_data)
    return LogEntry(
        index, leaf_input, extra_data, leaf, precert.precertificate_chain, precert.pre_certificate
    )


def entry_from_tile_leaf(index: int, tile_leaf: TileLeaf) -> LogEntry:
    """A :class:`LogEntry` view of a data tile entry (the chain is only fingerprints there)."""
    leaf = MerkleTreeLeaf(tile_leaf.timestamped_entry)
    return LogEntry(index, leaf.encode(), b"", leaf, (), pre_certificate=tile_leaf.pre_certificate)


@dataclass(frozen=True)
class CertificateSummary:
    """What a person wants to see of a logged certificate; ``error`` if it does not parse."""

    serial: str | None = None
    issuer: str | None = None
    subject: str | None = None
    names: tuple[str, ...] = ()
    not_before: datetime | None = None
    not_after: datetime | None = None
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "serial": self.serial,
            "issuer": self.issuer,
            "subject": self.subject,
            "names": list(self.names),
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "error": self.error,
        }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def describe_certificate(der: bytes | None) -> CertificateSummary:
    """Serial, issuer, names and validity of a certificate DER; never raises."""
    if der is None:
        return CertificateSummary(error="no certificate (unknown entry type)")
    try:
        certificate = x509.load_der_x509_certificate(der)
        serial = format(certificate.serial_number, "x")
        issuer = certificate.issuer.rfc4514_string()
        subject = certificate.subject.rfc4514_string()
        not_before = certificate.not_valid_before_utc
        not_after = certificate.not_valid_after_utc
    except ValueError as exc:
        return CertificateSummary(error=f"unparseable certificate: {str(exc)[:100]}")
    return CertificateSummary(
        serial=serial,
        issuer=issuer,
        subject=subject,
        names=_names(certificate),
        not_before=not_before,
        not_after=not_after,
    )


def _names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except ValueError:
        return ("<malformed extensions>",)
    names: list[str] = []
    if san is not None:
        names.extend(str(n) for n in san.get_values_for_type(x509.DNSName))
        names.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    if not names:
        names.extend(
            str(a.value)
            for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        )
    return tuple(names)


TileFetcher = Callable[[int, int, int], Awaitable[tuple[bytes, ...]]]
"""Fetch hash tile (level, index, width) and return its hashes (decoded, right width)."""


class TileTree:
    """The hash tiles of one tree size, believed only once they hash to that size's root.

    A tree of size N is the RFC 6962 fold of its maximal complete subtrees; each one of 2^k
    leaves, k = 8l + r, is the Merkle root of 2^r consecutive hashes at tile level l, all in that
    level's rightmost (partial) tile. :meth:`verify_root` recomputes the root from those partial
    tiles; a full tile is then checked by hashing it to the hash one level up, until a checked
    partial tile is reached. Each tile is fetched once, so what is checked is what is used.
    """

    def __init__(self, size: int, root: bytes, fetch: TileFetcher) -> None:
        if size < 0:
            raise ValueError("tree size must not be negative")
        self.size = size
        self.root = root
        self._fetch = fetch
        self._tiles: dict[tuple[int, int], tuple[bytes, ...]] = {}
        self._root_checked = False

    def width(self, level: int, index: int) -> int:
        """The width tile (``level``, ``index``) has at this tree size (ValueError if none)."""
        count = self.size >> (TILE_HEIGHT * level)
        full = count >> TILE_HEIGHT
        if 0 <= index < full:
            return TILE_WIDTH
        if index == full and count % TILE_WIDTH:
            return count % TILE_WIDTH
        raise ValueError(f"tile {level}/{index} is beyond a tree of size {self.size}")

    async def _tile(self, level: int, index: int) -> tuple[bytes, ...]:
        key = (level, index)
        if key not in self._tiles:
            width = self.width(level, index)
            hashes = await self._fetch(level, index, width)
            if len(hashes) != width:
                raise DecodeError(f"tile {level}/{index}: {len(hashes)} hashes, expected {width}")
            self._tiles[key] = hashes
        return self._tiles[key]

    async def _stored(self, level: int, position: int) -> bytes:
        tile = await self._tile(level, position >> TILE_HEIGHT)
        return tile[position % TILE_WIDTH]

    async def _subtree(self, k: int, n: int) -> bytes:
        """Hash of the complete subtree of 2^k leaves starting at leaf n * 2^k."""
        level, r = divmod(k, TILE_HEIGHT)
        base = n << r
        return node_root([await self._stored(level, base + j) for j in range(1 << r)])

    async def verify_root(self) -> None:
        """Recompute the root from the rightmost tiles; :class:`ProofError` if it differs."""
        if self._root_checked:
            return
        if self.size == 0:
            if self.root != EMPTY_ROOT:
                raise ProofError("tree of size 0 must have the empty root")
            self._root_checked = True
            return
        subtrees: list[bytes] = []
        offset = 0
        for k in reversed(range(self.size.bit_length())):
            if self.size >> k & 1:
                subtrees.append(await self._subtree(k, offset >> k))
                offset += 1 << k
        value = subtrees[-1]
        for left in reversed(subtrees[:-1]):
            value = node_hash(left, value)
        if value != self.root:
            raise ProofError(f"tiles do not hash to the root of the tree of size {self.size}")
        self._root_checked = True

    async def range_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) from the tiles, for the ranges proofs are made of (each split at
        the largest power of two below its length falls on a multiple of it)."""
        if not 0 <= start < end <= self.size:
            raise ValueError(f"range {start}..{end} outside a tree of size {self.size}")
        count = end - start
        if count & (count - 1) == 0 and start % count == 0:
            return await self._subtree(count.bit_length() - 1, start // count)
        k = 1 << ((count - 1).bit_length() - 1)
        if start % k:
            raise ValueError(f"range {start}..{end} is not made of aligned subtrees")
        left = await self.range_hash(start, start + k)
        return node_hash(left, await self.range_hash(start + k, end))

    async def compact_tree(self, size: int) -> CompactTree:
        """The compact tree (right edge) of the first ``size`` leaves, read from the tiles of this
        tree and NOT yet verified: :meth:`prove_prefix` its root before believing it."""
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} outside 0..{self.size}")
        nodes: list[bytes] = []
        offset = 0
        for k in reversed(range(size.bit_length())):
            if size >> k & 1:
                nodes.append(await self._subtree(k, offset >> k))
                offset += 1 << k
        return CompactTree.from_state(size, nodes)

    async def prove_prefix(self, first: int, first_root: bytes) -> None:
        """Raise :class:`ProofError` unless the tree of ``first`` leaves with ``first_root`` is a
        prefix of this one: the consistency proof, computed from the tiles, checked against both
        roots (a static-ct-api log serves no proofs; its tiles are the proofs' material)."""
        if first > self.size:
            raise ProofError(f"tree of size {first} cannot be a prefix of one of {self.size}")
        hashes: dict[tuple[int, int], bytes] = {}
        if 0 < first < self.size:
            for start, end in proof_ranges(first, self.size):
                hashes[(start, end)] = await self.range_hash(start, end)
        proof = consistency_proof_with(first, self.size, lambda s, e: hashes[(s, e)])
        verify_consistency(first, self.size, first_root, self.root, proof)

    async def leaf_hashes(self, tile_index: int) -> tuple[bytes, ...]:
        """Level-0 tile ``tile_index``, checked against the root (raises :class:`ProofError`)."""
        await self.verify_root()
        hashes = await self._tile(0, tile_index)
        level, index, current = 0, tile_index, hashes
        while len(current) == TILE_WIDTH:
            parent = await self._stored(level + 1, index)
            if node_root(list(current)) != parent:
                raise ProofError(f"tile {level}/{index} does not hash to its parent")
            level, index = level + 1, index >> TILE_HEIGHT
            current = await self._tile(level, index)
        return hashes

    async def check_data_tile(self, tile_index: int, leaves: tuple[TileLeaf, ...]) -> None:
        """Raise :class:`ProofError` unless ``leaves`` are exactly the tree's entries there."""
        hashes = await self.leaf_hashes(tile_index)
        if len(leaves) != len(hashes):
            raise ProofError(f"data tile {tile_index}: {len(leaves)} entries, {len(hashes)} hashes")
        for position, (leaf, expected) in enumerate(zip(leaves, hashes, strict=True)):
            if leaf.leaf_hash() != expected:
                index = tile_index * TILE_WIDTH + position
                raise ProofError(f"entry {index} of the data tile is not the leaf in the tree")
