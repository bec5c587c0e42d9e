"""Issuer hashes, checked against independent parsers (asn1crypto, cryptography's OCSP code)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ctstatus.ledger import IssuerHashes, raw_public_key


@pytest.fixture(scope="module", params=["p256", "rsa2048"])
def ca(request: pytest.FixtureRequest, make_ca):
    return make_ca(rsa_key=request.param == "rsa2048")


def test_raw_key_is_the_bit_string_contents(ca) -> None:
    """issuerKeyHash input = subjectPublicKey BIT STRING contents, per an independent parser."""
    parsed = asn1_x509.Certificate.load(ca.certificate.public_bytes(Encoding.DER))
    bit_string = parsed["tbs_certificate"]["subject_public_key_info"]["public_key"]
    # asn1crypto: .contents is the unused-bits byte followed by the key bytes.
    assert bit_string.contents[0] == 0
    assert raw_public_key(ca.certificate) == bit_string.contents[1:]


def test_hashes_match_asn1crypto(ca) -> None:
    der = ca.certificate.public_bytes(Encoding.DER)
    parsed = asn1_x509.Certificate.load(der)
    tbs = parsed["tbs_certificate"]
    subject_der = tbs["subject"].dump()
    spki_der = tbs["subject_public_key_info"].dump()
    key_bytes = tbs["subject_public_key_info"]["public_key"].contents[1:]
    h = IssuerHashes.from_certificate(ca.certificate)
    assert h.cert_sha256 == hashlib.sha256(der).digest()
    assert h.spki_sha256 == hashlib.sha256(spki_der).digest()
    assert h.name_hash_sha1 == hashlib.sha1(subject_der).digest()  # noqa: S324
    assert h.key_hash_sha1 == hashlib.sha1(key_bytes).digest()  # noqa: S324
    assert h.name_hash_sha256 == hashlib.sha256(subject_der).digest()
    assert h.key_hash_sha256 == hashlib.sha256(key_bytes).digest()
    assert h.key_hash_sha256 != hashlib.sha256(spki_der).digest()  # not the CT key hash
    assert h.subject_key_id == parsed.key_identifier
    assert h.not_after == ca.certificate.not_valid_after_utc


@pytest.mark.parametrize(
    "algorithm",
    [hashes.SHA1(), hashes.SHA256()],  # noqa: S303 - OCSP clients still send SHA-1 CertIDs
    ids=["sha1", "sha256"],
)
def test_hashes_match_cryptography_ocsp_certid(ca, algorithm: hashes.HashAlgorithm) -> None:
    """What an OCSP client would send for a leaf of this CA is what the ledger indexes."""
    leaf = x509.load_der_x509_certificate(ca.cert(12345))
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, ca.certificate, algorithm).build()
    h = IssuerHashes.from_certificate(ca.certificate)
    if isinstance(algorithm, hashes.SHA1):
        assert (request.issuer_name_hash, request.issuer_key_hash) == (
            h.name_hash_sha1,
            h.key_hash_sha1,
        )
    else:
        assert (request.issuer_name_hash, request.issuer_key_hash) == (
            h.name_hash_sha256,
            h.key_hash_sha256,
        )


def test_missing_ski_falls_back_to_rfc5280_method_1() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name.from_rfc4514_string("CN=No SKI CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .sign(key, None)
    )
    h = IssuerHashes.from_certificate(cert)
    expected = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    assert h.subject_key_id == expected
    assert (
        raw_public_key(cert)
        == asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))["tbs_certificate"][
            "subject_public_key_info"
        ]["public_key"].contents[1:]
    )
    assert h.not_after == datetime(2027, 1, 1, tzinfo=UTC)
