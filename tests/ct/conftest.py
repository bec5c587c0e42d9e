"""Fixtures for the CT library tests: real-world vectors, log signers, a CA that builds pairs."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cryptography_vectors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ctstatus.ct import SignedCertificateTimestamp, sct_list_extension
from ctstatus.keys.signer import InProcessSigner, PublicKey

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def real() -> dict[str, Any]:
    """The real-world vectors of ``data/real_vectors.json`` (provenance in ``data/README.md``)."""
    loaded: dict[str, Any] = json.loads((DATA / "real_vectors.json").read_text())
    return loaded


@pytest.fixture(scope="session")
def load_key() -> Callable[[str], PublicKey]:
    def load(b64_spki: str) -> PublicKey:
        key = serialization.load_der_public_key(base64.b64decode(b64_spki))
        assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        return key

    return load


@pytest.fixture(scope="session")
def vector() -> Callable[[str], bytes]:
    """Bytes of a file from the ``cryptography-vectors`` package (PEM converted to DER)."""

    def read(name: str) -> bytes:
        with cryptography_vectors.open_vector_file(name, "rb") as handle:
            data: bytes = handle.read()
        if data.startswith(b"-----BEGIN CERTIFICATE"):
            return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
        return data

    return read


@pytest.fixture(scope="session")
def ec_log() -> InProcessSigner:
    return InProcessSigner(ec.generate_private_key(ec.SECP256R1()), "test EC log")


@pytest.fixture(scope="session")
def rsa_log() -> InProcessSigner:
    return InProcessSigner(rsa.generate_private_key(65537, 2048), "test RSA log")


@dataclass(frozen=True)
class PairingCa:
    """A CA that issues precertificate/final certificate pairs the way ctstatus must."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def issue(
        self, *, poison_position: int | None = None, serial: int = 0x1234567890ABCDEF
    ) -> Issuance:
        """Start issuing one certificate: same key, names, dates and extensions throughout."""
        return Issuance(self, ec.generate_private_key(ec.SECP256R1()), poison_position, serial)

    def pair(
        self,
        scts: Sequence[SignedCertificateTimestamp] | None = None,
        *,
        poison_position: int | None = None,
        sct_position: int | None = None,
    ) -> tuple[bytes, bytes]:
        """(precertificate DER, final certificate DER or b"" without SCTs) of one issuance."""
        issuance = self.issue(poison_position=poison_position)
        final = issuance.final(scts, sct_position) if scts else b""
        return issuance.precert(), final


@dataclass(frozen=True)
class Issuance:
    """One certificate in the making: the precertificate, then the final certificate.

    The final certificate reuses the precertificate's exact extension list with the poison taken
    out and the SCT list put in (at ``sct_position``, default last), as ctstatus must.
    """

    ca: PairingCa
    leaf_key: ec.EllipticCurvePrivateKey
    poison_position: int | None
    serial: int

    def _extensions(self) -> list[x509.ExtensionType]:
        return [
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            x509.BasicConstraints(ca=False, path_length=None),
            x509.SubjectAlternativeName([x509.DNSName("example.test")]),
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()),
        ]

    def _build(self, extra: x509.ExtensionType, critical: bool, position: int | None) -> bytes:
        items: list[tuple[x509.ExtensionType, bool]] = [(e, False) for e in self._extensions()]
        items.insert(len(items) if position is None else position, (extra, critical))
        now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.test")]))
            .issuer_name(self.ca.certificate.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(self.serial)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=90))
        )
        for value, is_critical in items:
            builder = builder.add_extension(value, critical=is_critical)
        certificate = builder.sign(self.ca.key, hashes.SHA256())
        return certificate.public_bytes(serialization.Encoding.DER)

    def precert(self) -> bytes:
        return self._build(x509.PrecertPoison(), True, self.poison_position)

    def final(
        self, scts: Sequence[SignedCertificateTimestamp], sct_position: int | None = None
    ) -> bytes:
        return self._build(sct_list_extension(scts), False, sct_position)


@pytest.fixture(scope="session")
def ca() -> PairingCa:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ctstatus test CA")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return PairingCa(key, certificate)
