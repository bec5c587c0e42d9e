"""Signing through the Signer abstraction, including the throwaway-key path token keys take."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ctstatus.errors import SigningKeyError
from ctstatus.keys import InProcessSigner, KeyAlgorithm, PublicKey
from ctstatus.keys.assemble import sign_certificate, sign_crl

NOW = datetime(2026, 11, 1, tzinfo=UTC)


class OutOfProcessSigner:
    """Behaves like a token: signs bytes, never hands out its private key."""

    def __init__(self, inner: InProcessSigner, public: PublicKey | None = None) -> None:
        self.inner = inner
        self.public = public or inner.public_key()

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self.inner.algorithm

    @property
    def description(self) -> str:
        return "pkcs11:token=fake;object=test"

    def public_key(self) -> PublicKey:
        return self.public

    def sign(self, data: bytes) -> bytes:
        return self.inner.sign(data)

    def private_key(self) -> CertificateIssuerPrivateKeyTypes | None:
        return None


def _self_signed(signer: OutOfProcessSigner | InProcessSigner) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ctstatus test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())
        .serial_number(0x1234)
        .not_valid_before(NOW)
        .not_valid_after(NOW.replace(year=2027))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_throwaway_then_replace_gives_a_certificate_openssl_verifies(
    tmp_path: Path, algorithm: KeyAlgorithm
) -> None:
    signer = OutOfProcessSigner(InProcessSigner(algorithm.generate()))
    certificate = sign_certificate(_self_signed(signer), signer)
    certificate.verify_directly_issued_by(certificate)
    pem = tmp_path / "c.pem"
    pem.write_bytes(certificate.public_bytes(Encoding.PEM))
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", pem, "-check_ss_sig", pem],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_crl_through_the_throwaway_path_verifies() -> None:
    signer = OutOfProcessSigner(InProcessSigner(KeyAlgorithm.ECDSA_P256.generate()))
    issuer = sign_certificate(_self_signed(signer), signer)
    crl = sign_crl(
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW)
        .next_update(NOW.replace(day=5)),
        signer,
    )
    assert crl.is_signature_valid(signer.public_key())


def test_a_signature_that_does_not_verify_is_never_returned() -> None:
    wrong_public = KeyAlgorithm.ECDSA_P256.generate().public_key()
    signer = OutOfProcessSigner(InProcessSigner(KeyAlgorithm.ECDSA_P256.generate()), wrong_public)
    with pytest.raises(SigningKeyError, match="does not verify"):
        sign_certificate(_self_signed(signer), signer)
