"""BR §7.1.2 profiles, judged by peers we did not write: pkilint and `openssl verify`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ca import profiles
from ctstatus.ca.lint import lint_certificate
from ctstatus.keys import InProcessSigner, KeyAlgorithm
from ctstatus.keys.assemble import sign_certificate

NOW = datetime.now(UTC).replace(microsecond=0)
BASE = "http://pki.example.com"
PKILINT = Path(sys.executable).parent / "lint_cabf_serverauth_cert"


@dataclass
class Chain:
    root: x509.Certificate
    issuing: x509.Certificate
    leaf: x509.Certificate


def build_chain(algorithm: KeyAlgorithm, names: list[str], base: str = BASE) -> Chain:
    root_key = InProcessSigner(algorithm.generate())
    issuing_key = InProcessSigner(algorithm.generate())
    root = sign_certificate(
        profiles.root_ca(
            profiles.ca_subject("XX", "ctstatus Test", "ctstatus Test Root CA"),
            root_key.public_key(),
            profiles.new_serial(),
            NOW,
            5479,
        ),
        root_key,
    )
    issuing = sign_certificate(
        profiles.subordinate_ca(
            profiles.ca_subject("XX", "ctstatus Test", "ctstatus Test Issuing CA"),
            issuing_key.public_key(),
            root,
            profiles.new_serial(),
            NOW,
            1826,
            ca_issuers_url=f"{base}/ca/root-ca.der",
            crl_url=f"{base}/crl/root-ca/0.crl",
        ),
        root_key,
    )
    leaf = sign_certificate(
        profiles.tls_server(
            KeyAlgorithm.ECDSA_P256.generate().public_key(),
            profiles.parse_names(names),
            issuing,
            profiles.new_serial(),
            NOW,
            90,
            ocsp_url=f"{base}/ocsp",
            ca_issuers_url=f"{base}/ca/issuing-ca.der",
            crl_url=f"{base}/crl/issuing-ca/3.crl",
        ),
        issuing_key,
    )
    return Chain(root, issuing, leaf)


def _write(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certificates))
    return path


@pytest.mark.parametrize(
    "algorithm", [KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ECDSA_P384, KeyAlgorithm.RSA_2048]
)
def test_pkilint_finds_nothing_in_the_chain(algorithm: KeyAlgorithm) -> None:
    chain = build_chain(algorithm, ["www.example.com", "example.com"])
    for certificate, expected_type in (
        (chain.root, "ROOT_CA"),
        (chain.issuing, "INTERNAL_UNCONSTRAINED_TLS_CA"),
        (chain.leaf, "DV_FINAL_CERTIFICATE"),
    ):
        detected, findings = lint_certificate(certificate.public_bytes(Encoding.DER))
        assert detected == expected_type
        assert findings == []


def test_pkilint_cli_agrees_on_the_ca_certificates(tmp_path: Path) -> None:
    chain = build_chain(KeyAlgorithm.ECDSA_P256, ["example.com"])
    for name, certificate in (("root", chain.root), ("issuing", chain.issuing)):
        path = _write(tmp_path / f"{name}.pem", certificate)
        result = subprocess.run(
            [PKILINT, "lint", "-d", "-s", "NOTICE", path],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_openssl_verifies_the_chain_for_tls_servers(tmp_path: Path) -> None:
    chain = build_chain(KeyAlgorithm.ECDSA_P256, ["www.example.com"])
    root = _write(tmp_path / "root.pem", chain.root)
    issuing = _write(tmp_path / "issuing.pem", chain.issuing)
    leaf = _write(tmp_path / "leaf.pem", chain.leaf)
    for args in (
        [issuing],
        ["-untrusted", issuing, "-purpose", "sslserver", "-x509_strict", leaf],
    ):
        result = subprocess.run(
            ["openssl", "verify", "-CAfile", root, *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert ": OK" in result.stdout


def test_lint_catches_what_the_br_forbids() -> None:
    """An internal host in a URL and a reserved IP in a SAN are lint errors, not silent."""
    chain = build_chain(
        KeyAlgorithm.ECDSA_P256, ["example.com", "10.0.0.1"], base="http://localhost"
    )
    _, findings = lint_certificate(chain.leaf.public_bytes(Encoding.DER))
    codes = {finding.code for finding in findings if finding.is_error}
    assert {"cabf.internal_domain_name", "cabf.internal_ip_address"} <= codes


def test_validity_counts_both_ends() -> None:
    start, end = profiles.validity(NOW, 90)
    assert end - start + timedelta(seconds=1) == timedelta(days=90)


def test_serials_are_positive_large_and_distinct() -> None:
    serials = [profiles.new_serial() for _ in range(2000)]
    assert len(set(serials)) == len(serials)
    assert all(0 < serial < 2**159 for serial in serials)
    # 128 CSPRNG bits: the top byte is zero in about 1/256 of draws, never in most.
    assert sum(serial.bit_length() > 120 for serial in serials) > 1900


def test_extension_order_is_fixed_per_profile() -> None:
    """Issue #4 re-signs the same TBS as precertificate and certificate: order must be stable."""
    first = build_chain(KeyAlgorithm.ECDSA_P256, ["example.com"]).leaf
    second = build_chain(KeyAlgorithm.ECDSA_P256, ["example.com"]).leaf
    assert [e.oid for e in first.extensions] == [e.oid for e in second.extensions]


def test_a_certificate_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_chain(KeyAlgorithm.ECDSA_P256, [])
