"""Fixtures for the watcher: real CT logs (the code ``ctstatus log serve`` runs) and a CA whose
responder misbehaves in every way the incident reports describe, all on 127.0.0.1.

The misbehaving CA's certificates carry AIA and CRLDP URLs whose first path segment is the
behaviour: ``/ocsp/unknown/…`` answers ``unknown``, ``/crl/revoked.crl`` lists the serial, etc.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from ctstatus.ctlog.config import load_log_server_config
from ctstatus.ctlog.server import PreparedServer
from ctstatus.ctlog.setup import init_log_server
from ctstatus.secrets import Secret

DER = serialization.Encoding.DER
NOW = datetime.now(UTC).replace(microsecond=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ctstatus watch tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca(subject: x509.Name, key: Any, issuer: x509.Name, issuer_key: Any) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class Leaf:
    serial: int
    precert: bytes
    domain: str


@dataclass
class WatchCa:
    """Root -> issuing CA -> precertificates whose status URLs name a behaviour."""

    root_key: Any
    root: x509.Certificate
    key: Any
    issuing: x509.Certificate
    base: str = ""
    revoked_in_crl: set[int] = field(default_factory=set)
    sha256_fixed: bool = False  # "nosha256" and "sha1id" answer SHA-256 CertIDs correctly
    flaky_broken: bool = False  # "flaky" answers 404 while set, like "good" otherwise
    leaf_key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def create(cls, label: str) -> WatchCa:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _ca(_name(f"{label} Root"), root_key, _name(f"{label} Root"), root_key)
        key = ec.generate_private_key(ec.SECP256R1())
        issuing = _ca(_name(f"{label} Issuing CA"), key, root.subject, root_key)
        return cls(root_key, root, key, issuing)

    @property
    def issuing_der(self) -> bytes:
        return self.issuing.public_bytes(DER)

    def precert(self, ocsp_mode: str | None, crl_mode: str | None = "ok") -> Leaf:
        serial = x509.random_serial_number()
        domain = f"{ocsp_mode or 'none'}-{serial % 10**6}.example.com"
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.issuing.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(serial)
            .not_valid_before(NOW - timedelta(hours=1))
            .not_valid_after(NOW + timedelta(days=90))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), True)
        )
        if ocsp_mode is not None:
            url = f"{self.base}/ocsp/{ocsp_mode}"
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url)
                        )
                    ]
                ),
                False,
            )
        if crl_mode is not None:
            url = f"{self.base}/crl/{crl_mode}.crl"
            point = x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), False)
        builder = builder.add_extension(x509.PrecertPoison(), True)
        der = builder.sign(self.key, hashes.SHA256()).public_bytes(DER)
        return Leaf(serial, der, domain)

    # -- the responder ---------------------------------------------------------------------

    def respond(self, mode: str, request_der: bytes) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for one OCSP request under ``mode``."""
        ctype = "application/ocsp-response"
        if mode == "flaky":
            mode = "404" if self.flaky_broken else "good"
        if mode == "404":
            return 404, "text/plain", b"not found\n"
        if mode == "malformed":
            return 200, ctype, b"\x30\x82\x01\x00garbage"
        if mode == "notknown":  # the incident: the responder has no record of the serial
            return 200, ctype, bytes.fromhex("3003 0a01 06".replace(" ", ""))
        request = ocsp.load_der_ocsp_request(request_der)
        status = ocsp.OCSPCertStatus.GOOD
        this_update, next_update = NOW - timedelta(hours=1), NOW + timedelta(days=4)
        revoked_at, reason = None, None
        if mode == "unknown":
            status = ocsp.OCSPCertStatus.UNKNOWN
        elif mode == "expired":
            this_update, next_update = NOW - timedelta(days=20), NOW - timedelta(days=12)
        elif mode == "hold":
            status = ocsp.OCSPCertStatus.REVOKED
            revoked_at, reason = NOW - timedelta(hours=2), x509.ReasonFlags.certificate_hold
        if mode != "liar" and request.serial_number >> 126 == 1:
            return 200, ctype, bytes.fromhex("30030a0106")  # the watcher's random probe
        algorithm: hashes.HashAlgorithm = request.hash_algorithm
        name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
        if mode == "sha256id":  # django-ca's cache: a SHA-256 CertID whatever was asked
            algorithm = hashes.SHA256()
            name_hash = _digest("sha256", self.issuing.subject.public_bytes())
            key_hash = _digest("sha256", _raw_key(self.issuing))
        sha256_asked = isinstance(algorithm, hashes.SHA256) and not self.sha256_fixed
        if mode == "sha1id" and sha256_asked:  # the reverse: a SHA-1 CertID whatever was asked
            algorithm = hashes.SHA1()  # noqa: S303
            name_hash = _digest("sha1", self.issuing.subject.public_bytes())
            key_hash = _digest("sha1", _raw_key(self.issuing))
        if mode == "nosha256" and sha256_asked:  # knows its serials by SHA-1 CertID only
            status = ocsp.OCSPCertStatus.UNKNOWN
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                name_hash,
                key_hash,
                request.serial_number,
                algorithm,
                status,
                this_update,
                next_update,
                revoked_at,
                reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.issuing)
        )
        der = builder.sign(self.key, hashes.SHA256()).public_bytes(DER)
        if mode == "badsig":  # the signature is last (no certs): flip its final byte
            der = der[:-1] + bytes([der[-1] ^ 1])
        return 200, ctype, der

    def crl(self, mode: str) -> bytes:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuing.subject)
            .last_update(NOW - timedelta(hours=1))
            .next_update(NOW + timedelta(days=5))
        )
        if mode == "revoked":
            for serial in sorted(self.revoked_in_crl):
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial)
                    .revocation_date(NOW - timedelta(hours=1))
                    .build()
                )
        key = self.key if mode != "badsig" else ec.generate_private_key(ec.SECP256R1())
        return builder.sign(key, hashes.SHA256()).public_bytes(DER)


def _digest(name: str, data: bytes) -> bytes:
    import hashlib

    return hashlib.new(name, data).digest()


def _raw_key(certificate: x509.Certificate) -> bytes:
    from ctstatus.ledger.hashes import raw_public_key

    return raw_public_key(certificate)


class MisbehavingApp:
    """A bare ASGI app: OCSP (GET and POST) and CRLs for :class:`WatchCa`."""

    def __init__(self, ca: WatchCa) -> None:
        self.ca = ca
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw = (scope.get("raw_path") or scope["path"].encode()).decode()
        parts = raw.strip("/").split("/", 2)
        self.requests.append((scope["method"], raw))
        if parts[0] == "crl":
            status, ctype, data = 200, "application/pkix-crl", self.ca.crl(parts[1][:-4])
        elif parts[0] == "ocsp":
            mode = parts[1]
            if mode == "hang":
                await asyncio.sleep(4)
            if scope["method"] == "POST":
                request_der = body
            else:
                request_der = base64.b64decode(urllib.parse.unquote(parts[2]))
            status, ctype, data = self.ca.respond(mode, request_der)
        else:
            status, ctype, data = 404, "text/plain", b""
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


@dataclass
class Served:
    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_app(app: Any, port: int | None = None, *, lifespan: str = "off") -> Served:
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan=lifespan, access_log=False, log_level="warning"
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)  # waits on the server's start-up
    return Served(f"http://127.0.0.1:{port}", server, thread)


# -- CT logs ---------------------------------------------------------------------------------


@dataclass
class Logs:
    prepared: PreparedServer
    thread: threading.Thread
    client: httpx.Client

    @property
    def log_list(self) -> Path:
        return Path(self.prepared.log_list_path)

    def url(self, log: str, path: str) -> str:
        return f"{self.prepared.base_url}/{log}/{path}"

    def submit(self, log: str, chain: Sequence[bytes]) -> None:
        response = self.client.post(
            self.url(log, "ct/v1/add-pre-chain"),
            json={"chain": [base64.b64encode(c).decode() for c in chain]},
        )
        assert response.status_code == 200, response.text

    def publish(self, log: str) -> int:
        response = self.client.post(f"{self.prepared.base_url}/admin/{log}/sth")
        response.raise_for_status()
        return int(response.json()["tree_size"])

    def set_faults(self, log: str, **faults: Any) -> None:
        response = self.client.post(f"{self.prepared.base_url}/admin/{log}/faults", json=faults)
        assert response.status_code == 200, response.text


def start_logs(directory: Path, roots: Sequence[x509.Certificate], count: int = 1) -> Logs:
    directory.mkdir(parents=True, exist_ok=True)
    root_file = directory.parent / f"{directory.name}-roots.pem"
    root_file.write_bytes(b"".join(r.public_bytes(serialization.Encoding.PEM) for r in roots))
    result = init_log_server(
        directory, count=count, roots=[root_file], port=0, passphrase=Secret("test passphrase")
    )
    prepared = PreparedServer(load_log_server_config(result.config))
    thread = threading.Thread(target=prepared.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not prepared.server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the log server did not start")
        time.sleep(0.01)  # waits on the server's start-up
    return Logs(prepared, thread, httpx.Client(timeout=10))


def stop_logs(logs: Logs) -> None:
    logs.client.close()
    logs.prepared.server.should_exit = True
    logs.thread.join(timeout=30)


@pytest.fixture(scope="module")
def bad_ca() -> Iterator[tuple[WatchCa, Served, MisbehavingApp]]:
    ca = WatchCa.create("misbehaving")
    app = MisbehavingApp(ca)
    port = free_port()
    ca.base = f"http://127.0.0.1:{port}"
    served = serve_app(app, port)
    yield ca, served, app
    served.stop()
