"""The hashes by which others name an issuer: OCSP CertID hashes and the CT issuer key hash.

Two different "key hashes" exist and are easy to confuse:

* OCSP ``issuerKeyHash`` (RFC 6960 §4.1.1) hashes the *contents of the subjectPublicKey BIT
  STRING* -- the raw public key (an EC point, or the DER of RSAPublicKey) -- not the SPKI.
* CT's ``issuer_key_hash`` (RFC 6962 §3.2) is SHA-256 of the *whole* SubjectPublicKeyInfo DER.

``issuerNameHash`` hashes the DER of the issuer's subject Name, which is what appears as the issuer
field of every certificate it signs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def raw_public_key(certificate: x509.Certificate) -> bytes:
    """The contents of the subjectPublicKey BIT STRING of ``certificate``'s SPKI.

    For EC keys that is the X9.62 point (BR-compliant keys are uncompressed), for RSA the DER of
    RSAPublicKey, for EdDSA the raw key (RFC 8410).
    """
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    raise ValueError(f"unsupported issuer key type: {type(key).__name__}")


@dataclass(frozen=True)
class IssuerHashes:
    """Everything the ledger derives from an issuer certificate to find it again."""

    cert_sha256: bytes
    spki_sha256: bytes
    subject_key_id: bytes
    name_hash_sha1: bytes
    key_hash_sha1: bytes
    name_hash_sha256: bytes
    key_hash_sha256: bytes
    not_after: datetime

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate) -> IssuerHashes:
        """Compute the hashes with ``cryptography``; see the module docstring for which is which."""
        name_der = certificate.subject.public_bytes()
        key_raw = raw_public_key(certificate)
        spki_der = certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            subject_key_id = ski.value.key_identifier
        except x509.ExtensionNotFound:
            # RFC 5280 §4.2.1.2 method (1): what the issuer's AKI would have had to be computed as.
            subject_key_id = hashlib.sha1(key_raw).digest()  # noqa: S324 - an identifier, not security
        return cls(
            cert_sha256=hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest(),
            spki_sha256=hashlib.sha256(spki_der).digest(),
            subject_key_id=subject_key_id,
            name_hash_sha1=hashlib.sha1(name_der).digest(),  # noqa: S324 - OCSP CertID demands SHA-1
            key_hash_sha1=hashlib.sha1(key_raw).digest(),  # noqa: S324 - OCSP CertID demands SHA-1
            name_hash_sha256=hashlib.sha256(name_der).digest(),
            key_hash_sha256=hashlib.sha256(key_raw).digest(),
            not_after=certificate.not_valid_after_utc,
        )
