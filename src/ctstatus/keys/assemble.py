"""Sign X.509 structures with any :class:`~ctstatus.keys.signer.Signer`.

With an in-process key the ``cryptography`` builder signs directly. With a token key the builder
signs with a throwaway key of the same algorithm (so the signatureAlgorithm fields are right),
the real key signs the exact TBS bytes, and the real signature replaces the throwaway one. Every
signature is verified against the signer's public key before the result is returned, so a faulty
token or a key/certificate mismatch can never produce a certificate that does not verify.
"""

from __future__ import annotations

from asn1crypto import core as asn1_core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.errors import SigningKeyError
from ctstatus.keys.signer import Signer, throwaway_key, verify_signature


def sign_certificate(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    """Sign a certificate (or precertificate) TBS with ``signer``."""
    key = signer.private_key()
    if key is not None:
        certificate = builder.sign(key, signer.algorithm.hash_algorithm)
    else:
        draft = builder.sign(throwaway_key(signer.algorithm), signer.algorithm.hash_algorithm)
        signature = signer.sign(draft.tbs_certificate_bytes)
        parsed = asn1_x509.Certificate.load(draft.public_bytes(Encoding.DER))
        parsed["signature_value"] = asn1_core.OctetBitString(signature)
        certificate = x509.load_der_x509_certificate(parsed.dump())
    _check(signer, certificate.signature, certificate.tbs_certificate_bytes, "certificate")
    return certificate


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, signer: Signer
) -> x509.CertificateRevocationList:
    """Sign a CRL with ``signer`` (same throwaway-and-replace scheme as certificates)."""
    key = signer.private_key()
    if key is not None:
        crl = builder.sign(key, signer.algorithm.hash_algorithm)
    else:
        draft = builder.sign(throwaway_key(signer.algorithm), signer.algorithm.hash_algorithm)
        signature = signer.sign(draft.tbs_certlist_bytes)
        parsed = asn1_crl.CertificateList.load(draft.public_bytes(Encoding.DER))
        parsed["signature"] = asn1_core.OctetBitString(signature)
        crl = x509.load_der_x509_crl(parsed.dump())
    _check(signer, crl.signature, crl.tbs_certlist_bytes, "CRL")
    return crl


def _check(signer: Signer, signature: bytes, tbs: bytes, what: str) -> None:
    if not verify_signature(signer.public_key(), signature, tbs):
        raise SigningKeyError(
            f"the {what} signature made by {signer.description} does not verify with its "
            "public key",
            "the key does not match its certificate, or the token is faulty; do not use it",
        )
