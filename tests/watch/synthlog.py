"""A synthetic CT log of 2^31 entries, RFC 6962 and static-ct-api, served over HTTP on loopback.

Its first ``filler`` leaves are one and the same x509 entry, so the hash of any run of them
depends only on its length and is computed by doubling (O(log n) hashes, memoised); real
entries are appended after them. Every hash the API serves (STH and checkpoint roots, proofs,
hash tiles) is MTH(D[start:end]) over that tree, from :meth:`SyntheticLog.mth`, and the proofs
come from the project's RFC 6962 proof generators: a monitor that believes only what it can
verify sees a real 2^31-entry log. Real-log quirks are on by default: get-entries answers at
most ``max_batch`` entries, data tiles are gzip-encoded, right-edge tiles are partial; faults
(429 with Retry-After, a wrong entry, a bad consistency proof, malformed JSON) are switches.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ctstatus.ct.checkpoint import sign_checkpoint
from ctstatus.ct.extensions import leaf_index_extensions
from ctstatus.ct.loglist import Log, LogState, log_list_document
from ctstatus.ct.merkle import (
    consistency_proof_with,
    inclusion_proof_with,
    leaf_hash,
    node_hash,
    node_root,
)
from ctstatus.ct.sct import issuer_key_hash, log_id, sign_tree_head, tbs_for_ct
from ctstatus.ct.structures import (
    CertificateChain,
    MerkleTreeLeaf,
    PrecertChainEntry,
    SignedTreeHead,
    TimestampedEntry,
)
from ctstatus.ct.tiles import TileLeaf, parse_tile_path
from ctstatus.keys.signer import InProcessSigner

from .conftest import Served, serve_app

DER = serialization.Encoding.DER
SIZE = 1 << 31


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


@dataclass
class Entry:
    leaf_input: bytes
    extra_data: bytes
    tile_leaf: bytes
    timestamp_ms: int


def _filler(timestamp_ms: int) -> Entry:
    """The one entry the prefix is made of: a self-signed x509 entry, no chain, no leaf_index
    (identical leaves cannot carry distinct indexes; nothing reads them as verified entries)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "synthetic filler")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now - timedelta(days=300))
        .sign(key, hashes.SHA256())
        .public_bytes(DER)
    )
    entry = TimestampedEntry.x509_entry(timestamp_ms, cert)
    tile = TileLeaf(entry, None, ())
    return Entry(
        MerkleTreeLeaf(entry).encode(), CertificateChain(()).encode(), tile.encode(), timestamp_ms
    )


@dataclass
class Faults:
    throttle: int = 0  # answer this many next requests 429 with Retry-After
    retry_after: int = 1
    wrong_entry: int | None = None  # serve this index with another leaf
    bad_consistency: bool = False  # flip a byte of every consistency proof
    malformed: str | None = None  # this endpoint answers bad JSON


class SyntheticLog:
    """The tree and the ASGI app; publish() signs a new head over everything appended."""

    def __init__(self, filler: int, *, max_batch: int = 33, name: str = "synthetic") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.signer = InProcessSigner(self.key)
        self.key_der = self.key.public_key().public_bytes(
            DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.log_id = log_id(self.key.public_key())
        self.name = name
        self.filler_count = filler
        self.filler_time_ms = int((datetime.now(UTC) - timedelta(days=30)).timestamp() * 1000)
        self.filler = _filler(self.filler_time_ms)
        self._filler_hash = leaf_hash(self.filler.leaf_input)
        self._filler_roots: dict[int, bytes] = {1: self._filler_hash}
        self.real: list[Entry] = []
        self._real_hashes: list[bytes] = []
        self._cache: dict[tuple[int, int], bytes] = {}
        self.max_batch = max_batch
        self.faults = Faults()
        self.requests: Counter[str] = Counter()
        self.paths: list[str] = []
        self.sth: SignedTreeHead | None = None
        self.base = ""
        self._served: Served | None = None

    # -- the tree --------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self.filler_count + len(self.real)

    def filler_root(self, n: int) -> bytes:
        """MTH of ``n`` filler leaves: doubling for powers of two, memoised."""
        known = self._filler_roots.get(n)
        if known is None:
            k = _split(n)
            known = node_hash(self.filler_root(k), self.filler_root(n - k))
            self._filler_roots[n] = known
        return known

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) of the whole log (fillers, then the real entries)."""
        if end <= self.filler_count:
            return self.filler_root(end - start)
        if start >= self.filler_count:
            key = (start, end)
            if key not in self._cache:
                f = self.filler_count
                self._cache[key] = node_root(self._real_hashes[start - f : end - f])
            return self._cache[key]
        k = _split(end - start)
        return node_hash(self.mth(start, start + k), self.mth(start + k, end))

    def entry(self, index: int) -> Entry:
        if index < self.filler_count:
            return self.filler
        return self.real[index - self.filler_count]

    def append_precert(self, precert: bytes, chain: tuple[bytes, ...], timestamp_ms: int) -> int:
        """Log a precertificate (chain[0] its issuer); its index."""
        index = self.size
        extensions = leaf_index_extensions(index)
        entry = TimestampedEntry.precert_entry(
            timestamp_ms, issuer_key_hash(chain[0]), tbs_for_ct(precert), extensions
        )
        extra = PrecertChainEntry(precert, chain).encode()
        fingerprints = tuple(hashlib.sha256(c).digest() for c in chain)
        tile = TileLeaf(entry, precert, fingerprints)
        self._add(Entry(MerkleTreeLeaf(entry).encode(), extra, tile.encode(), timestamp_ms))
        return index

    def append_cert(self, cert: bytes, chain: tuple[bytes, ...], timestamp_ms: int) -> int:
        index = self.size
        entry = TimestampedEntry.x509_entry(timestamp_ms, cert, leaf_index_extensions(index))
        fingerprints = tuple(hashlib.sha256(c).digest() for c in chain)
        tile = TileLeaf(entry, None, fingerprints)
        self._add(
            Entry(
                MerkleTreeLeaf(entry).encode(),
                CertificateChain(chain).encode(),
                tile.encode(),
                timestamp_ms,
            )
        )
        return index

    def _add(self, entry: Entry) -> None:
        self.real.append(entry)
        self._real_hashes.append(leaf_hash(entry.leaf_input))

    def publish(self) -> SignedTreeHead:
        now_ms = int(datetime.now(UTC).timestamp() * 1000) - 1000
        self.sth = sign_tree_head(self.signer, self.size, now_ms, self.mth(0, self.size))
        return self.sth

    # -- serving ---------------------------------------------------------------------------

    def start(self) -> str:
        self._served = serve_app(self)
        self.base = self._served.url
        return self.base

    def stop(self) -> None:
        if self._served is not None:
            self._served.stop()

    @property
    def origin(self) -> str:
        return self.base.split("://", 1)[1] + "/"

    def as_log(self, *, tiled: bool) -> Log:
        url = self.base + "/"
        return Log(
            description=f"{self.name} ({'tiled' if tiled else 'rfc6962'})",
            log_id=self.log_id,
            key_der=self.key_der,
            operator="synthetic",
            state=LogState.USABLE,
            state_since=datetime.now(UTC) - timedelta(days=60),
            mmd=60,
            url=None if tiled else url,
            submission_url=url if tiled else None,
            monitoring_url=url if tiled else None,
        )

    def write_log_list(self, path: Path, *, tiled: bool) -> Path:
        document = log_list_document([self.as_log(tiled=tiled)])
        path.write_text(json.dumps(document))
        return path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].lstrip("/")
        query = {k: v[0] for k, v in urllib.parse.parse_qs(scope["query_string"].decode()).items()}
        self.paths.append(path)
        status, headers, body = self._answer(path, query)
        headers = [*headers, ("content-length", str(len(body)))]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _answer(self, path: str, query: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        endpoint = path.removeprefix("ct/v1/")
        self.requests[endpoint.split("/", 1)[0] if endpoint.startswith("tile") else endpoint] += 1
        if self.faults.throttle > 0:
            self.faults.throttle -= 1
            return 429, [("retry-after", str(self.faults.retry_after))], b"slow down\n"
        if self.sth is None:
            return 503, [], b"no tree head yet\n"
        if self.faults.malformed == endpoint:
            return 200, [("content-type", "application/json")], b'{"leaf_input": 7'
        try:
            if path.startswith("ct/v1/"):
                return 200, [("content-type", "application/json")], self._json(endpoint, query)
            if path == "checkpoint":
                sth = self.sth
                note = sign_checkpoint(
                    self.signer,
                    self.origin.rstrip("/"),
                    sth.tree_size,
                    sth.timestamp,
                    sth.root_hash,
                )
                return 200, [("content-type", "text/plain")], note
            if path.startswith("tile/"):
                return self._tile(path)
        except (KeyError, ValueError) as exc:
            return 400, [], f"bad request: {exc}\n".encode()
        return 404, [], b"not found\n"

    def _json(self, endpoint: str, query: dict[str, str]) -> bytes:
        assert self.sth is not None
        size = self.sth.tree_size
        result: dict[str, Any]
        if endpoint == "get-sth":
            result = self.sth.to_json()
        elif endpoint == "get-sth-consistency":
            first, second = int(query["first"]), int(query["second"])
            if not 0 < first <= second <= size:
                raise ValueError("first/second outside the tree")
            proof = consistency_proof_with(first, second, self.mth)
            if self.faults.bad_consistency and proof:
                proof[0] = bytes([proof[0][0] ^ 1]) + proof[0][1:]
            result = {"consistency": [_b64(p) for p in proof]}
        elif endpoint == "get-proof-by-hash":
            tree_size = int(query["tree_size"])
            wanted = base64.b64decode(query["hash"])
            if not 0 < tree_size <= size:
                raise ValueError("tree_size outside the tree")
            index = self._find(wanted, tree_size)
            path = inclusion_proof_with(index, tree_size, self.mth)
            result = {"leaf_index": index, "audit_path": [_b64(p) for p in path]}
        elif endpoint == "get-entry-and-proof":
            index, tree_size = int(query["leaf_index"]), int(query["tree_size"])
            if not 0 <= index < tree_size <= size:
                raise ValueError("leaf_index/tree_size outside the tree")
            entry = self._served_entry(index)
            path = inclusion_proof_with(index, tree_size, self.mth)
            result = {
                "leaf_input": _b64(entry.leaf_input),
                "extra_data": _b64(entry.extra_data),
                "audit_path": [_b64(p) for p in path],
            }
        elif endpoint == "get-entries":
            start, end = int(query["start"]), int(query["end"])
            if not 0 <= start <= end or start >= size:
                raise ValueError("start/end outside the tree")
            end = min(end, size - 1, start + self.max_batch - 1)  # fewer than asked: real logs
            entries = [self._served_entry(i) for i in range(start, end + 1)]
            result = {
                "entries": [
                    {"leaf_input": _b64(e.leaf_input), "extra_data": _b64(e.extra_data)}
                    for e in entries
                ]
            }
        else:
            raise KeyError(endpoint)
        return json.dumps(result).encode()

    def _find(self, wanted: bytes, tree_size: int) -> int:
        """The first index with this leaf hash, as a real log's hash index answers."""
        if wanted == self._filler_hash and self.filler_count:
            return 0
        for position, value in enumerate(self._real_hashes):
            if value == wanted and self.filler_count + position < tree_size:
                return self.filler_count + position
        raise KeyError("no such leaf")

    def _served_entry(self, index: int) -> Entry:
        if index == self.faults.wrong_entry:
            return self.filler  # a leaf that is not the tree's
        return self.entry(index)

    def _tile(self, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self.sth is not None
        tile = parse_tile_path(path)
        size = self.sth.tree_size
        if tile.is_data:
            first = tile.index * 256
            if first + tile.width > size:
                return 404, [], b"beyond the tree\n"
            raw = b"".join(
                self._served_entry(i).tile_leaf for i in range(first, first + tile.width)
            )
            return 200, [("content-encoding", "gzip")], gzip.compress(raw)
        span = 1 << (8 * tile.level)
        first = tile.index * 256
        if (first + tile.width) * span > size:
            return 404, [], b"beyond the tree\n"
        hashes = [self.mth(p * span, (p + 1) * span) for p in range(first, first + tile.width)]
        return 200, [], b"".join(hashes)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Unwatched:
    """A CA nobody watches, issuing final certificates for example.org names."""

    key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    issuer_der: bytes = b""

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unwatched CA")])
        now = datetime.now(UTC)
        self.name = name
        self.issuer_der = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=30))
            .not_valid_after(now + timedelta(days=300))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
            .public_bytes(DER)
        )

    def cert(self, label: str) -> bytes:
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=90))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(f"{label}.example.org")]), critical=True
            )
            .sign(self.key, hashes.SHA256())
            .public_bytes(DER)
        )
