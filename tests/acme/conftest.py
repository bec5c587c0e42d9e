"""Fixtures for the ACME tests: a loopback DNS server, and validation settings that use it.

``dns_server`` is a started :class:`TestDNSServer` (UDP+TCP on 127.0.0.1, HTTP control on
``dns_server.control_url``), fresh for each test. A certbot ``--manual-auth-hook`` adds its TXT
record with::

    python -m ctstatus.acme.validation.testdns add --control URL TXT \\
        "_acme-challenge.$CERTBOT_DOMAIN" "$CERTBOT_VALIDATION"
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from tests.acme.dnsserver import TestDNSServer

from ctstatus.acme.validation import ValidationSettings
from ctstatus.clock import FrozenClock

CAA_IDENTITY = "ca.ctstatus.example"


@pytest.fixture
def dns_server() -> Iterator[TestDNSServer]:
    server = TestDNSServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def validation_settings(dns_server: TestDNSServer) -> ValidationSettings:
    """Loopback-only settings resolving through ``dns_server``; tests replace ports as needed."""
    return ValidationSettings(
        dns_servers=(dns_server.address,),
        loopback_only=True,
        timeout_seconds=5.0,
        caa_identities=(CAA_IDENTITY,),
    )


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))


def acme_tls_certificate(
    names: list[str],
    key_authorization: str | None,
    *,
    critical: bool = True,
    digest: bytes | None = None,
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for a self-signed certificate: an RFC 8737 tls-alpn-01
    certificate when ``key_authorization`` is given (acmeIdentifier = SHA-256 of it, or
    ``digest``), a plain one for HTTPS otherwise."""
    import hashlib
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme test")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme test")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=7))
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    if key_authorization is not None:
        value = (
            digest if digest is not None else hashlib.sha256(key_authorization.encode()).digest()
        )
        builder = builder.add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"), b"\x04\x20" + value
            ),
            critical=critical,
        )
    cert = builder.sign(key, hashes.SHA256())
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def server_tls_context(cert_pem: bytes, key_pem: bytes, tmp_dir: str, alpn: list[str]) -> object:
    """A server SSLContext presenting that certificate and offering ``alpn``."""
    import pathlib
    import ssl

    cert_file = pathlib.Path(tmp_dir, "cert.pem")
    key_file = pathlib.Path(tmp_dir, "key.pem")
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context
