"""Signed OCSP responses (RFC 6960 §4.2, RFC 9919 profile) and the unsigned error responses.

Profile, per spec-digest §3 and checklist item 11: one SingleResponse whose CertID echoes the
client's hash algorithm, ResponderID byKey, no response extensions, no nonce, thisUpdate =
producedAt = signing time, nextUpdate within [8 h, 10 days] counted inclusively (BR §4.9.9) and
never after the signing certificate's notAfter (MRSP §6), a revocation reason only when it is not
``unspecified`` (as on CRLs, BR §7.2.2), and the responder certificate in ``certs`` only when a
delegated responder signs (RFC 9919 §2.2.2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from ctstatus.errors import SigningKeyError
from ctstatus.keys.signer import Signer
from ctstatus.ledger import RevocationReason
from ctstatus.ledger.hashes import raw_public_key
from ctstatus.status.answer import Answer, Verdict
from ctstatus.status.ocsp_request import HashName
from ctstatus.status.ocsp_sign import sign_ocsp_response

MIN_VALIDITY: Final = timedelta(hours=8)
MAX_VALIDITY: Final = timedelta(days=10)


def _error(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


MALFORMED_REQUEST: Final = _error(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)  # 30 03 0a 01 01
INTERNAL_ERROR: Final = _error(ocsp.OCSPResponseStatus.INTERNAL_ERROR)  # 30 03 0a 01 02
TRY_LATER: Final = _error(ocsp.OCSPResponseStatus.TRY_LATER)  # 30 03 0a 01 03
UNAUTHORIZED: Final = _error(ocsp.OCSPResponseStatus.UNAUTHORIZED)  # 30 03 0a 01 06

HASHES: Final[dict[str, hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1(),  # noqa: S303 - the CertID hash legacy clients (openssl) still send
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}

_REASONS: Final[dict[RevocationReason, x509.ReasonFlags | None]] = {
    RevocationReason.UNSPECIFIED: None,
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
}


def reason_flag(reason: RevocationReason | None) -> x509.ReasonFlags | None:
    """The reason to encode, or None to leave it out (unspecified; BR §7.2.2 and §7.3)."""
    return None if reason is None else _REASONS[reason]


def same_key(signer: Signer, certificate: x509.Certificate) -> bool:
    """Whether ``signer`` holds the key ``certificate`` certifies (compared as SPKI DER)."""
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return signer.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki)


@dataclass(frozen=True)
class ResponderIdentity:
    """Who signs an issuer's responses: the issuing CA itself, or a delegated responder."""

    signer: Signer
    certificate: x509.Certificate
    """The certificate of the signing key: the issuer's own, or the delegated responder's."""
    delegated: bool

    @property
    def key_hash(self) -> bytes:
        """ResponderID byKey: SHA-1 of the subjectPublicKey BIT STRING contents (RFC 6960)."""
        return hashlib.sha1(raw_public_key(self.certificate)).digest()  # noqa: S324 - RFC 6960

    @property
    def label(self) -> str:
        """What the ``responder`` column records: ``ca`` or the responder certificate's hash."""
        if not self.delegated:
            return "ca"
        return hashlib.sha256(self.certificate.public_bytes(Encoding.DER)).hexdigest()

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


@dataclass(frozen=True)
class CertId:
    """A CertID as the response echoes it."""

    hash_name: HashName
    name_hash: bytes
    key_hash: bytes
    serial: int


def validity_window(
    now: datetime, validity: timedelta, identity: ResponderIdentity
) -> tuple[datetime, datetime]:
    """(thisUpdate, nextUpdate): ``validity`` counted inclusively, capped at the signer's notAfter.

    Raises SigningKeyError if the cap leaves less than the BR minimum of 8 hours: that responder
    certificate must be rotated before it signs anything more.
    """
    if not MIN_VALIDITY <= validity <= MAX_VALIDITY:
        raise ValueError(f"OCSP validity {validity} is outside [8 h, 10 days] (BR §4.9.9)")
    this_update = now.replace(microsecond=0)
    next_update = min(this_update + validity - timedelta(seconds=1), identity.not_after)
    if next_update - this_update + timedelta(seconds=1) < MIN_VALIDITY:
        raise SigningKeyError(
            f"the OCSP signing certificate of {identity.signer.description} expires at "
            f"{identity.not_after}, too soon to sign a response valid for 8 hours",
            "rotate the responder certificate (`ctstatus ocsp issue-responder`)",
        )
    return this_update, next_update


def sign_response(
    cert_id: CertId,
    answer: Answer,
    identity: ResponderIdentity,
    *,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """The DER of a successful response for one CertID with ``answer`` (good or revoked)."""
    if answer.verdict is Verdict.GOOD:
        status, revoked_at, reason = ocsp.OCSPCertStatus.GOOD, None, None
    elif answer.verdict is Verdict.REVOKED:
        status, revoked_at, reason = (
            ocsp.OCSPCertStatus.REVOKED,
            answer.revoked_at,
            reason_flag(answer.reason),
        )
    else:
        raise ValueError("unauthorized is the unsigned error response, not a signed one")
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=cert_id.name_hash,
        issuer_key_hash=cert_id.key_hash,
        serial_number=cert_id.serial,
        algorithm=HASHES[cert_id.hash_name],
        cert_status=status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=revoked_at,
        revocation_reason=reason,
    )
    if identity.delegated:
        builder = builder.certificates([identity.certificate])
    return sign_ocsp_response(
        builder, identity.signer, identity.certificate, key_hash=identity.key_hash
    )
