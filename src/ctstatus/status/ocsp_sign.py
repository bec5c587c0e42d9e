"""Sign an OCSP response with any :class:`~ctstatus.keys.signer.Signer` (file key or PKCS#11).

``cryptography``'s ``OCSPResponseBuilder`` signs only with an in-process key, and refuses a
ResponderID certificate whose key differs from the signing key. For a token key we therefore do
what :mod:`ctstatus.keys.assemble` does for certificates and CRLs: build with a throwaway key of
the same algorithm (so ``signatureAlgorithm`` is right), then with asn1crypto put the real
ResponderID (byKey) in ``tbsResponseData``, have the token sign those exact bytes, and put its
signature in. The result is checked against the signer's public key before it is returned.

This lives in ``status`` rather than next to ``keys/assemble.py`` because OCSP is the status
services' format; it depends only on the Signer protocol.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from ctstatus.errors import SigningKeyError
from ctstatus.keys.signer import KeyAlgorithm, Signer, throwaway_key, verify_signature


def sign_ocsp_response(
    builder: ocsp.OCSPResponseBuilder,
    signer: Signer,
    certificate: x509.Certificate,
    *,
    key_hash: bytes,
) -> bytes:
    """Sign ``builder`` (ResponderID not yet set) as ``certificate``'s key; return the DER.

    ``key_hash`` is the byKey ResponderID: SHA-1 of ``certificate``'s subjectPublicKey bits.
    """
    key = signer.private_key()
    if key is not None:
        response = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, certificate).sign(
            key, signer.algorithm.hash_algorithm
        )
        der = response.public_bytes(Encoding.DER)
    else:
        der = _sign_in_token(builder, signer, key_hash)
    _check(der, signer, key_hash)
    return der


def _sign_in_token(builder: ocsp.OCSPResponseBuilder, signer: Signer, key_hash: bytes) -> bytes:
    algorithm = signer.algorithm
    draft = builder.responder_id(
        ocsp.OCSPResponderEncoding.HASH, _throwaway_certificate(algorithm)
    ).sign(throwaway_key(algorithm), algorithm.hash_algorithm)
    response = asn1_ocsp.OCSPResponse.load(draft.public_bytes(Encoding.DER))
    basic = response["response_bytes"]["response"].parsed
    tbs = basic["tbs_response_data"]
    tbs["responder_id"] = asn1_ocsp.ResponderId(name="by_key", value=key_hash)
    signature = signer.sign(tbs.dump(force=True))
    basic["signature"] = asn1_core.OctetBitString(signature)
    response["response_bytes"]["response"] = asn1_core.ParsableOctetString(basic.dump(force=True))
    der: bytes = response.dump(force=True)
    return der


@functools.cache
def _throwaway_certificate(algorithm: KeyAlgorithm) -> x509.Certificate:
    """A self-signed certificate for the throwaway key: only so the builder accepts the key."""
    key = throwaway_key(algorithm)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ctstatus throwaway")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, algorithm.hash_algorithm)
    )


def _check(der: bytes, signer: Signer, key_hash: bytes) -> None:
    response = ocsp.load_der_ocsp_response(der)
    if response.responder_key_hash != key_hash or not verify_signature(
        signer.public_key(), response.signature, response.tbs_response_bytes
    ):
        raise SigningKeyError(
            f"an OCSP response signed by {signer.description} does not verify with its public key",
            "the key does not match its certificate, or the token is faulty; do not use it",
        )
