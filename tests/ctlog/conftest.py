"""Fixtures for the CT log server tests: a test CA and real log servers on 127.0.0.1.

The CA issues precertificates (TBS + critical poison, signed by the issuing CA) and final
certificates (the same TBS minus poison plus the SCT list, in the same extension order). The
in-process server runs ``PreparedServer`` (what ``ctstatus log serve`` runs) in a thread; the
reliability and certspotter tests start the real CLI in a subprocess instead.
"""

from __future__ import annotations

import base64
import datetime
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ctstatus.ct.structures import SignedCertificateTimestamp, sct_list_extension
from ctstatus.ctlog.config import load_log_server_config
from ctstatus.ctlog.server import PreparedServer
from ctstatus.ctlog.setup import init_log_server
from ctstatus.secrets import Secret

DER = serialization.Encoding.DER
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TEST_DOMAIN = "ctlog-test.example.com"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ctstatus tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    extra_eku: Sequence[x509.ObjectIdentifier] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(START + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if extra_eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extra_eku)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Issued:
    """A precertificate and what is needed to make its final certificate."""

    precert: bytes
    serial: int
    domain: str
    leaf_key: ec.EllipticCurvePrivateKey
    not_after: datetime.datetime


@dataclass
class CtCa:
    """Root -> issuing CA -> (pre)certificates for ``*.example.com`` names."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    issuing: x509.Certificate
    counter: int = 0
    leaf_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(DER)

    @property
    def issuing_der(self) -> bytes:
        return self.issuing.public_bytes(DER)

    @classmethod
    def create(cls, label: str = "ctstatus test") -> CtCa:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name(f"{label} Root")
        root = _ca_certificate(root_name, root_key, root_name, root_key)
        key = ec.generate_private_key(ec.SECP256R1())
        issuing = _ca_certificate(_name(f"{label} Issuing CA"), key, root_name, root_key)
        return cls(root_key, root, key, issuing)

    def _builder(
        self, serial: int, domain: str, leaf_key: ec.EllipticCurvePrivateKey, not_after: Any
    ) -> list[tuple[x509.ExtensionType, bool]]:
        return [
            (
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                False,
            ),
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectAlternativeName([x509.DNSName(domain)]), True),
        ]

    def _sign(
        self,
        serial: int,
        domain: str,
        leaf_key: ec.EllipticCurvePrivateKey,
        not_after: datetime.datetime,
        extra: tuple[x509.ExtensionType, bool] | None,
        *,
        signer: ec.EllipticCurvePrivateKey | None = None,
        issuer: x509.Name | None = None,
    ) -> bytes:
        extensions = self._builder(serial, domain, leaf_key, not_after)
        if extra is not None:
            extensions.insert(2, extra)  # poison or SCT list, at the same place
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(issuer or self.issuing.subject)
            .public_key(leaf_key.public_key())
            .serial_number(serial)
            .not_valid_before(START)
            .not_valid_after(not_after)
        )
        for value, critical in extensions:
            builder = builder.add_extension(value, critical=critical)
        return builder.sign(signer or self.key, hashes.SHA256()).public_bytes(DER)

    def precert(
        self,
        domain: str | None = None,
        *,
        serial: int | None = None,
        not_after: datetime.datetime | None = None,
        poison: tuple[x509.ExtensionType, bool] | None = None,
    ) -> Issued:
        self.counter += 1
        serial = serial or x509.random_serial_number()
        domain = domain or f"h{self.counter}.{TEST_DOMAIN}"
        not_after = not_after or START + datetime.timedelta(days=90)
        extra = poison if poison is not None else (x509.PrecertPoison(), True)
        der = self._sign(serial, domain, self.leaf_key, not_after, extra)
        return Issued(der, serial, domain, self.leaf_key, not_after)

    def final(self, issued: Issued, scts: Sequence[SignedCertificateTimestamp]) -> bytes:
        extension = (sct_list_extension(scts), False)
        return self._sign(
            issued.serial, issued.domain, issued.leaf_key, issued.not_after, extension
        )

    def plain(self, domain: str | None = None) -> bytes:
        """A certificate with neither poison nor SCTs (for add-chain)."""
        self.counter += 1
        domain = domain or f"p{self.counter}.{TEST_DOMAIN}"
        end = START + datetime.timedelta(days=90)
        return self._sign(x509.random_serial_number(), domain, self.leaf_key, end, None)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="session")
def test_ca() -> CtCa:
    return CtCa.create()


def write_pem(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def make_log_dir(directory: Path, ca: CtCa, *, logs: int = 3) -> Path:
    """``ctstatus log init`` output for ``logs`` logs accepting ``ca``'s root, port 0."""
    directory.mkdir(parents=True, exist_ok=True)
    root = write_pem(directory.parent / f"{directory.name}-root.pem", ca.root)
    result = init_log_server(
        directory, count=logs, roots=[root], port=0, passphrase=Secret("test passphrase")
    )
    return result.config


@dataclass
class RunningServer:
    prepared: PreparedServer
    thread: threading.Thread
    client: httpx.Client

    @property
    def base_url(self) -> str:
        return self.prepared.base_url

    def url(self, log: str, path: str) -> str:
        return f"{self.base_url}/{log}/{path}"

    def submit(self, log: str, chain: Sequence[bytes], *, precert: bool) -> httpx.Response:
        endpoint = "add-pre-chain" if precert else "add-chain"
        return self.client.post(
            self.url(log, f"ct/v1/{endpoint}"), json={"chain": [b64(c) for c in chain]}
        )

    def publish(self, log: str) -> dict[str, Any]:
        response = self.client.post(f"{self.base_url}/admin/{log}/sth")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def set_faults(self, log: str, **faults: Any) -> None:
        response = self.client.post(f"{self.base_url}/admin/{log}/faults", json=faults)
        assert response.status_code == 200, response.text


def start_server(config: Path, clock: Callable[[], int] | None = None) -> RunningServer:
    prepared = PreparedServer(load_log_server_config(config), clock=clock)
    thread = threading.Thread(target=prepared.run, name="ctlog-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not prepared.server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the log server did not start")
        time.sleep(0.01)  # waits on the server's start-up, not on a timer
    return RunningServer(prepared, thread, httpx.Client(timeout=10))


def stop_server(running: RunningServer) -> None:
    running.client.close()
    running.prepared.server.should_exit = True
    running.thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, test_ca: CtCa) -> Iterator[RunningServer]:
    """Three logs of three operators, in-process, accepting ``test_ca``'s root."""
    config = make_log_dir(tmp_path_factory.mktemp("ctlog") / "logs", test_ca)
    running = start_server(config)
    yield running
    stop_server(running)
