"""A controllable fake CT log for the client tests: real signatures, real HTTP, injected faults.

One uvicorn server on 127.0.0.1 (a free port, in a background thread) hosts any number of logs,
each under its own path prefix. Each log signs real SCTs and STHs with its own P-256 key through
the ``ctstatus.ct`` library, keeps a real Merkle tree, and serves RFC 6962 and static-ct-api
(checkpoint, hash tiles, data tiles, issuers). Tests queue faults per endpoint to make it fail
the ways real logs fail, and read back every request it saw.

This file lives in ``data/`` because ``tests/ct`` is not a package; test modules load it with
:func:`load` (``importlib``), so it is one module shared by all of them.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from starlette.requests import Request

from ctstatus.ct import (
    CertificateChain,
    LogEntryType,
    MerkleTreeLeaf,
    PrecertChainEntry,
    SignedCertificateTimestamp,
    TileLeaf,
    TimestampedEntry,
    checkpoint_from_sth,
    consistency_proof,
    encode_data_tile,
    encode_hash_tile,
    inclusion_proof,
    issuer_key_hash,
    leaf_index_extensions,
    node_root,
    parse_tile_path,
    root,
    sign_timestamped_entry,
    sign_tree_head,
    tbs_for_ct,
)
from ctstatus.ct.b64 import b64encode
from ctstatus.ct.loglist import Log, LogState, TemporalInterval
from ctstatus.keys.signer import InProcessSigner

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Fault:
    """One way to fail. Kinds that replace the answer: ``hang``, ``status``, ``garbage``,
    ``truncate``, ``oversize``, ``declared_oversize``; kinds that corrupt it: ``bad_signature``,
    ``wrong_log_id``, ``future``, ``bad_sth``, ``bad_entries``, ``bad_proof``, ``bad_tile``;
    ``delay`` waits ``seconds`` and then answers normally."""

    kind: str
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Seen:
    endpoint: str
    body: bytes
    query: str


def hang() -> Fault:
    return Fault("hang")


def status(code: int, body: bytes | str = b"", **headers: str) -> Fault:
    data = body.encode() if isinstance(body, str) else body
    return Fault(
        "status",
        status=code,
        body=data,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


class FakeLog:
    """One log: its key, its tree, its fault queue and what it was asked."""

    def __init__(self, description: str, slug: str, base_url: str, *, tiled: bool = False) -> None:
        self.description = description
        self.slug = slug
        self.url = f"{base_url}/{slug}/"
        self.tiled = tiled
        self.signer = InProcessSigner(ec.generate_private_key(ec.SECP256R1()), description)
        self.impostor = InProcessSigner(ec.generate_private_key(ec.SECP256R1()), "impostor")
        self.lock = threading.Lock()
        self.leaves: list[bytes] = []
        self.extra: list[bytes] = []
        self.tile_leaves: list[TileLeaf] = []
        self.hashes: list[bytes] = []
        self.issuers: dict[bytes, bytes] = {}
        self.submitted: dict[bytes, SignedCertificateTimestamp] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.seen: list[Seen] = []
        self.disconnects = 0
        self.entries_cap = 1000
        self.gzip_tiles = False

    @property
    def key_der(self) -> bytes:
        return self.signer.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(self.key_der).digest()

    @property
    def origin(self) -> str:
        return self.url.split("://", 1)[1].rstrip("/")

    def fail(self, endpoint: str, *faults: Fault) -> None:
        """Queue faults for the next requests to ``endpoint`` (``add-pre-chain``, ``tile``, …)."""
        with self.lock:
            self.faults.setdefault(endpoint, []).extend(faults)

    def _take(self, endpoint: str) -> Fault | None:
        with self.lock:
            queue = self.faults.get(endpoint)
            return queue.pop(0) if queue else None

    def bodies(self, endpoint: str) -> list[bytes]:
        return [s.body for s in self.seen if s.endpoint == endpoint]

    def as_log(
        self,
        operator: str,
        state: LogState = LogState.USABLE,
        interval: tuple[datetime, datetime] | None = None,
    ) -> Log:
        return Log(
            description=self.description,
            log_id=self.log_id,
            key_der=self.key_der,
            operator=operator,
            state=state,
            state_since=EPOCH,
            mmd=60 if self.tiled else 86400,
            url=None if self.tiled else self.url,
            submission_url=self.url if self.tiled else None,
            monitoring_url=self.url if self.tiled else None,
            temporal_interval=TemporalInterval(*interval) if interval else None,
        )

    # -- the tree --------------------------------------------------------------------------

    def _append(
        self, entry: TimestampedEntry, extra: bytes, pre: bytes | None, chain: list[bytes]
    ) -> None:
        leaf = MerkleTreeLeaf(entry).encode()
        fingerprints = []
        for certificate in chain:
            fingerprint = hashlib.sha256(certificate).digest()
            self.issuers[fingerprint] = certificate
            fingerprints.append(fingerprint)
        self.leaves.append(leaf)
        self.extra.append(extra)
        self.tile_leaves.append(TileLeaf(entry, pre, tuple(fingerprints)))
        self.hashes.append(MerkleTreeLeaf(entry).leaf_hash())

    def submit(
        self, chain: list[bytes], precert: bool, timestamp: int | None = None
    ) -> SignedCertificateTimestamp:
        key = hashlib.sha256(b"".join(chain) + bytes([precert])).digest()
        with self.lock:
            if key in self.submitted:
                return self.submitted[key]
            stamp = now_ms() if timestamp is None else timestamp
            extensions = leaf_index_extensions(len(self.leaves)) if self.tiled else b""
            if precert:
                entry = TimestampedEntry.precert_entry(
                    stamp, issuer_key_hash(chain[1]), tbs_for_ct(chain[0]), extensions
                )
                extra = PrecertChainEntry(chain[0], tuple(chain[1:])).encode()
                self._append(entry, extra, chain[0], chain[1:])
            else:
                entry = TimestampedEntry.x509_entry(stamp, chain[0], extensions)
                extra = CertificateChain(tuple(chain[1:])).encode()
                self._append(entry, extra, None, chain[1:])
            sct = sign_timestamped_entry(self.signer, entry)
            self.submitted[key] = sct
            return sct

    def add_synthetic(self, count: int) -> None:
        """Append ``count`` x509 entries with made-up certificate bytes (for big trees)."""
        with self.lock:
            for _ in range(count):
                index = len(self.leaves)
                extensions = leaf_index_extensions(index) if self.tiled else b""
                entry = TimestampedEntry.x509_entry(
                    1_700_000_000_000 + index, b"cert %d" % index, extensions
                )
                self._append(entry, CertificateChain(()).encode(), None, [])

    def sth(self, size: int | None = None) -> Any:
        size = len(self.hashes) if size is None else size
        return sign_tree_head(self.signer, size, now_ms(), root(self.hashes[:size]))

    def level(self, level: int) -> list[bytes]:
        hashes = list(self.hashes)
        for _ in range(level):
            hashes = [node_root(hashes[i : i + 256]) for i in range(0, len(hashes) - 255, 256)]
        return hashes

    # -- HTTP ------------------------------------------------------------------------------

    async def handle(self, rest: str, request: Request, body: bytes, send: Any) -> None:
        endpoint = rest.removeprefix("ct/v1/")
        kind = "data" if endpoint.startswith("tile/data/") else endpoint.split("/")[0]
        self.seen.append(Seen(kind, body, request.url.query))
        fault = self._take(kind)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            fault = None
        if fault is not None and await self._replace(fault, request, send):
            return
        try:
            code, payload, content_type = self._answer(endpoint, kind, request, body, fault)
        except (KeyError, ValueError) as exc:
            code, payload, content_type = (
                400,
                json.dumps({"error_message": str(exc)}).encode(),
                "application/json",
            )
        headers = [(b"content-type", content_type.encode())]
        if kind in ("tile", "data") and self.gzip_tiles and code == 200:
            payload = gzip.compress(payload)
            headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _replace(self, fault: Fault, request: Request, send: Any) -> bool:
        if fault.kind == "hang":
            try:
                message = await asyncio.wait_for(request.receive(), 10)
                if message["type"] == "http.disconnect":
                    self.disconnects += 1
            except TimeoutError:
                pass
            return True
        if fault.kind == "status":
            headers = [(k.lower().encode(), v.encode()) for k, v in fault.headers.items()]
            headers.append((b"content-length", str(len(fault.body)).encode()))
            await send({"type": "http.response.start", "status": fault.status, "headers": headers})
            await send({"type": "http.response.body", "body": fault.body})
            return True
        if fault.kind == "garbage":
            body = fault.body or b'{"sct_version": 0, "id": '
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return True
        if fault.kind == "truncate":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1000")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"sct_version"'})
            return True
        if fault.kind == "declared_oversize":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"500000000")],
                }
            )
            await send({"type": "http.response.body", "body": b"{}", "more_body": False})
            return True
        if fault.kind == "oversize":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            chunk = b" " * 65536
            try:
                for _ in range(64):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"{}"})
            except Exception:  # noqa: S110 -- the client hung up, as it should
                pass
            return True
        return False

    def _answer(
        self, endpoint: str, kind: str, request: Request, body: bytes, fault: Fault | None
    ) -> tuple[int, bytes, str]:
        corrupt = fault.kind if fault is not None else None
        query = request.query_params
        if kind in ("add-chain", "add-pre-chain"):
            chain = [base64.b64decode(c) for c in json.loads(body)["chain"]]
            stamp = now_ms() + 3_600_000 if corrupt == "future" else None
            sct = self.submit(chain, kind == "add-pre-chain", stamp)
            if corrupt == "future":
                self.submitted.clear()
            if corrupt == "wrong_log_id":
                entry = TimestampedEntry(sct.timestamp_ms, LogEntryType.X509_ENTRY, chain[0])
                sct = sign_timestamped_entry(self.impostor, entry)
            document = sct.to_json()
            if corrupt == "bad_signature":
                raw = bytearray(sct.signature.encode())
                raw[-1] ^= 0x01
                document["signature"] = b64encode(bytes(raw))
            return 200, json.dumps(document).encode(), "application/json"
        if kind == "get-sth":
            sth = self.sth()
            document = sth.to_json()
            if corrupt == "bad_sth":
                document["tree_size"] = sth.tree_size + 1
            return 200, json.dumps(document).encode(), "application/json"
        if kind == "get-sth-consistency":
            first, second = int(query["first"]), int(query["second"])
            proof = consistency_proof(first, self.hashes[:second])
            if corrupt == "bad_proof":
                proof = [bytes(32), *proof[1:]]
            return (
                200,
                json.dumps({"consistency": [b64encode(p) for p in proof]}).encode(),
                "application/json",
            )
        if kind == "get-proof-by-hash":
            wanted = base64.b64decode(query["hash"])
            size = int(query["tree_size"])
            if wanted not in self.hashes[:size]:
                return 404, b'{"error_message": "hash not found"}', "application/json"
            index = self.hashes.index(wanted)
            path = inclusion_proof(index, self.hashes[:size])
            if corrupt == "bad_proof":
                path = [bytes(32), *path[1:]]
            document = {"leaf_index": index, "audit_path": [b64encode(p) for p in path]}
            return 200, json.dumps(document).encode(), "application/json"
        if kind == "get-entries":
            start, end = int(query["start"]), int(query["end"])
            if start >= len(self.leaves) or end < start:
                return 400, b'{"error_message": "bad range"}', "application/json"
            end = min(end, start + self.entries_cap - 1, len(self.leaves) - 1)
            items = [
                {"leaf_input": b64encode(self.leaves[i]), "extra_data": b64encode(self.extra[i])}
                for i in range(start, end + 1)
            ]
            if corrupt == "bad_entries":
                other = (start + 1) % len(self.leaves)
                items[0] = {
                    "leaf_input": b64encode(self.leaves[other]),
                    "extra_data": b64encode(self.extra[other]),
                }
            return 200, json.dumps({"entries": items}).encode(), "application/json"
        if kind == "checkpoint":
            sth = self.sth()
            note = checkpoint_from_sth(sth, self.origin, self.log_id)
            if corrupt == "bad_sth":
                other = sign_tree_head(self.signer, sth.tree_size + 1, sth.timestamp, sth.root_hash)
                signatures = checkpoint_from_sth(other, self.origin, self.log_id).split(b"\n\n")[1]
                note = note.split(b"\n\n")[0] + b"\n\n" + signatures
            return 200, note, "text/plain; charset=utf-8"
        if kind in ("tile", "data"):
            tile = parse_tile_path(endpoint)
            start = tile.index * 256
            if tile.is_data:
                payload = encode_data_tile(self.tile_leaves[start : start + tile.width])
            else:
                hashes = self.level(tile.level)[start : start + tile.width]
                if len(hashes) != tile.width:
                    return 404, b"no such tile", "text/plain"
                if corrupt == "bad_tile":
                    hashes = [bytes(32), *hashes[1:]]
                payload = encode_hash_tile(hashes)
            return 200, payload, "application/octet-stream"
        if kind == "issuer":
            return 200, self.issuers[bytes.fromhex(endpoint.split("/")[1])], "application/pkix-cert"
        return 404, b"not found", "text/plain"


class FakeLogServer:
    """The ASGI app and its logs; :func:`serve` runs it."""

    def __init__(self) -> None:
        self.logs: dict[str, FakeLog] = {}
        self.base_url = ""

    def new_log(self, description: str, *, tiled: bool = False) -> FakeLog:
        slug = f"log{len(self.logs)}"
        log = FakeLog(description, slug, self.base_url, tiled=tiled)
        self.logs[slug] = log
        return log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        slug, _, rest = scope["path"].lstrip("/").partition("/")
        request = Request(scope, receive)
        body = await request.body()
        log = self.logs.get(slug)
        if log is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"no such log"})
            return
        await log.handle(rest, request, body, send)


@contextmanager
def serve() -> Iterator[FakeLogServer]:
    """Run a :class:`FakeLogServer` on 127.0.0.1 in a background thread."""
    app = FakeLogServer()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="critical",
        http="h11",
        loop="asyncio",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake log server did not start")
        time.sleep(0.01)
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass(frozen=True)
class TestCa:
    """A tiny issuing CA that makes precertificates the way ctstatus does (no PSC)."""

    key: ec.EllipticCurvePrivateKey
    der: bytes

    @classmethod
    def create(cls, name: str = "ctstatus client test CA") -> TestCa:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate.public_bytes(Encoding.DER))

    def precert(
        self,
        serial: int = 0x7E57,
        names: tuple[str, ...] = ("example.test",),
        not_before: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        days: int = 90,
    ) -> bytes:
        issuer = x509.load_der_x509_certificate(self.der)
        leaf = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(issuer.subject)
            .public_key(leaf.public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_before + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .add_extension(x509.PrecertPoison(), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return certificate.public_bytes(Encoding.DER)

    def chain(self, **options: Any) -> list[bytes]:
        return [self.precert(**options), self.der]


def vector(name: str) -> bytes:
    """A certificate from the cryptography-vectors package, as DER."""
    import cryptography_vectors

    with cryptography_vectors.open_vector_file(name, "rb") as handle:
        data: bytes = handle.read()
    if data.startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return data


def issue_final(ca: TestCa, logs: list[FakeLog], serial: int = 0xF1A1) -> bytes:
    """A final certificate whose embedded SCTs come from ``logs`` for its precertificate."""
    from ctstatus.ct import sct_list_extension

    issuer = x509.load_der_x509_certificate(ca.der)
    leaf = ec.generate_private_key(ec.SECP256R1())
    not_before = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)

    def build(extension: x509.ExtensionType, critical: bool) -> bytes:
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "final.test")]))
            .issuer_name(issuer.subject)
            .public_key(leaf.public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_before + timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("final.test")]), False)
            .add_extension(extension, critical=critical)
            .sign(ca.key, hashes.SHA256())
        )
        return certificate.public_bytes(Encoding.DER)

    precert = build(x509.PrecertPoison(), True)
    scts = [log.submit([precert, ca.der], precert=True) for log in logs]
    return build(sct_list_extension(scts), False)
