"""The ACME server's own HTTPS certificate: a local TLS root and a leaf, kept in the state dir.

Clients must trust it explicitly (certbot: ``REQUESTS_CA_BUNDLE``; lego:
``LEGO_CA_CERTIFICATES``), so it is made once per instance and never shared between instances.
The root signs one leaf for localhost and 127.0.0.1 (and the configured host name).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ctstatus.clock import Clock, system_clock


@dataclass(frozen=True)
class TlsFiles:
    root: Path
    certificate: Path
    key: Path


def ensure_tls(directory: Path, host: str, clock: Clock = system_clock) -> TlsFiles:
    """The TLS files in ``directory`` (made on first use: root, leaf chain, leaf key 0600)."""
    files = TlsFiles(
        directory / "acme-tls-root.pem", directory / "acme-tls.pem", directory / "acme-tls-key.pem"
    )
    if files.root.exists() and files.certificate.exists() and files.key.exists():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    now = clock()
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ctstatus ACME local TLS root")])
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for address in ("127.0.0.1", "::1"):
        names.append(x509.IPAddress(ipaddress.ip_address(address)))
    try:
        ip = ipaddress.ip_address(host)
        if x509.IPAddress(ip) not in names:
            names.append(x509.IPAddress(ip))
    except ValueError:
        if host != "localhost":
            names.append(x509.DNSName(host))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as sink:
        sink.write(key_pem)
    files.certificate.write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    files.root.write_bytes(root.public_bytes(pem))
    return files
