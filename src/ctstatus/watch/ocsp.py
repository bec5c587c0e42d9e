"""OCSP as a relying party sees it: build the request, judge the response bytes.

Pure code (no HTTP): :func:`classify` takes the DER a responder returned for a
:class:`CertIdRequest` and says what status it gives and what is wrong with it, with the
stable codes of :mod:`ctstatus.watch.problems`. Parsing is cryptography's; nothing the response
says is believed before its signature is checked against the issuer or a delegated responder
the issuer certified for OCSP signing (RFC 6960 §4.2.2.2).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from ctstatus.ledger.hashes import raw_public_key
from ctstatus.watch.problems import Code, Finding

MIN_VALIDITY = timedelta(hours=8)
MAX_VALIDITY = timedelta(days=10)
CLOCK_SKEW = timedelta(minutes=5)

_ENVELOPE = {
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST: Code.OCSP_MALFORMED_REQUEST,
    ocsp.OCSPResponseStatus.INTERNAL_ERROR: Code.OCSP_INTERNAL_ERROR,
    ocsp.OCSPResponseStatus.TRY_LATER: Code.OCSP_TRY_LATER,
    ocsp.OCSPResponseStatus.SIG_REQUIRED: Code.OCSP_SIG_REQUIRED,
    ocsp.OCSPResponseStatus.UNAUTHORIZED: Code.OCSP_UNAUTHORIZED,
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}


@dataclass(frozen=True)
class CertIdRequest:
    """The CertID asked about: hash algorithm, issuer name and key hashes, serial."""

    algorithm: str
    name_hash: bytes
    key_hash: bytes
    serial: int

    @classmethod
    def for_issuer(cls, issuer: x509.Certificate, serial: int, algorithm: str) -> CertIdRequest:
        name_hash, key_hash = _issuer_hashes(issuer, algorithm)
        return cls(algorithm, name_hash, key_hash, serial)

    def der(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(
                self.name_hash, self.key_hash, self.serial, _HASHES[self.algorithm]()
            )
            .build()
        )
        return request.public_bytes(Encoding.DER)


@functools.lru_cache(maxsize=1024)
def _issuer_hashes(issuer: x509.Certificate, algorithm: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of a CertID: the same for every serial of the issuer."""
    name = issuer.subject.public_bytes()
    key = raw_public_key(issuer)
    return hashlib.new(algorithm, name).digest(), hashlib.new(algorithm, key).digest()


@dataclass
class Verdict:
    """What one OCSP response says (``status``: good / revoked / unknown / None) and what is
    wrong with it."""

    status: str | None = None
    revoked_at: datetime | None = None
    reason: str | None = None
    this_update: datetime | None = None
    next_update: datetime | None = None
    findings: list[Finding] = field(default_factory=list)

    def add(self, code: Code, message: str, **evidence: object) -> None:
        self.findings.append(Finding(code, message, dict(evidence)))


def classify(
    body: bytes,
    request: CertIdRequest,
    issuer: x509.Certificate | None,
    now: datetime,
) -> Verdict:
    """Judge an OCSP response body for ``request``; ``issuer`` None skips the signature check."""
    verdict = Verdict()
    if not body:
        verdict.add(Code.HTTP_EMPTY, "empty OCSP response body")
        return verdict
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError as exc:
        verdict.add(Code.OCSP_MALFORMED, f"the response does not parse: {str(exc)[:120]}")
        return verdict
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        code = _ENVELOPE[response.response_status]
        verdict.add(code, f"responseStatus {response.response_status.name}")
        return verdict
    try:
        singles = list(response.responses)
    except (ValueError, UnsupportedAlgorithm) as exc:
        verdict.add(Code.OCSP_MALFORMED, f"the single responses do not parse: {exc}")
        return verdict
    single = _matching(singles, request, verdict)
    if single is None:
        return verdict
    if issuer is not None:
        _check_signature(response, issuer, verdict)
    _check_times(single, now, verdict)
    status = single.certificate_status
    verdict.status = status.name.lower()
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        verdict.add(Code.OCSP_UNKNOWN, "the responder answers unknown for this serial")
    elif status is ocsp.OCSPCertStatus.REVOKED:
        verdict.revoked_at = single.revocation_time_utc
        reason = single.revocation_reason
        verdict.reason = None if reason is None else reason.value  # RFC 5280: keyCompromise
        if reason is x509.ReasonFlags.certificate_hold:
            verdict.add(Code.OCSP_HOLD, "revoked with reason certificateHold (BR §7.2.2)")
    return verdict


def _matching(
    singles: list[ocsp.OCSPSingleResponse], request: CertIdRequest, verdict: Verdict
) -> ocsp.OCSPSingleResponse | None:
    """The SingleResponse for the CertID asked; a wrong one is a finding."""
    for single in singles:
        try:
            algorithm = single.hash_algorithm.name
        except UnsupportedAlgorithm:
            algorithm = "unsupported"
        if (
            algorithm == request.algorithm
            and single.serial_number == request.serial
            and single.issuer_name_hash == request.name_hash
            and single.issuer_key_hash == request.key_hash
        ):
            return single
    if not singles:
        verdict.add(Code.OCSP_MALFORMED, "a successful response without a SingleResponse")
        return None
    first = singles[0]
    try:
        algorithm = first.hash_algorithm.name
    except UnsupportedAlgorithm:
        algorithm = "unsupported"
    evidence = {
        "asked": {"algorithm": request.algorithm, "serial": format(request.serial, "x")},
        "answered": {"algorithm": algorithm, "serial": format(first.serial_number, "x")},
    }
    if algorithm != request.algorithm and first.serial_number == request.serial:
        verdict.add(
            Code.OCSP_HASH_MISMATCH,
            f"asked with a {request.algorithm} CertID, answered with {algorithm}",
            **evidence,
        )
    else:
        verdict.add(Code.OCSP_CERTID_MISMATCH, "the response is for another CertID", **evidence)
    return None


def _check_times(single: ocsp.OCSPSingleResponse, now: datetime, verdict: Verdict) -> None:
    this_update = single.this_update_utc
    next_update = single.next_update_utc
    verdict.this_update, verdict.next_update = this_update, next_update
    if this_update > now + CLOCK_SKEW:
        verdict.add(
            Code.OCSP_THIS_UPDATE_FUTURE, "thisUpdate is in the future", **_times(single, now)
        )
    if next_update is None:
        verdict.add(
            Code.OCSP_NO_NEXT_UPDATE,
            "no nextUpdate (RFC 9919 requires one)",
            **_times(single, now),
        )
        return
    if next_update < now - CLOCK_SKEW:
        verdict.add(
            Code.OCSP_EXPIRED,
            "nextUpdate has passed: the response is stale",
            **_times(single, now),
        )
    # BR §4.9.9: the interval is inclusive, so nextUpdate - thisUpdate + 1 s.
    validity = next_update - this_update + timedelta(seconds=1)
    if not MIN_VALIDITY <= validity <= MAX_VALIDITY:
        verdict.add(
            Code.OCSP_VALIDITY,
            f"validity {validity} outside [8 h, 10 days] (BR §4.9.9)",
            validity_seconds=validity.total_seconds(),
            **_times(single, now),
        )


def _times(single: ocsp.OCSPSingleResponse, now: datetime) -> dict[str, str]:
    """The evidence of a time finding (built only for a finding: most responses have none)."""
    times = {"this_update": single.this_update_utc.isoformat(), "now": now.isoformat()}
    if single.next_update_utc is not None:
        times["next_update"] = single.next_update_utc.isoformat()
    return times


def _check_signature(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, verdict: Verdict
) -> None:
    signer = _authorized_signer(response, issuer)
    if signer is None:
        verdict.add(
            Code.OCSP_SIGNER_UNAUTHORIZED,
            "signed by neither the issuer nor a responder it certified for OCSP signing",
        )
        return
    if not _verifies(_public_key(signer), response):
        verdict.add(Code.OCSP_BAD_SIGNATURE, "the response signature does not verify")


def _authorized_signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate
) -> x509.Certificate | None:
    """The issuer if it is the named responder, else an included delegated responder
    certificate issued directly by it with id-kp-OCSPSigning."""
    if _names(response, issuer):
        return issuer
    for candidate in response.certificates:
        if _names(response, candidate) and _delegated_by(candidate, issuer):
            return candidate
    return None


@functools.lru_cache(maxsize=4096)
def _delegated_by(candidate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` certified ``candidate`` for OCSP signing: the same for every response
    the delegated responder signs (certificates hash and compare by their DER), so checked once
    per (signer, issuer) pair, not once per response."""
    if candidate.issuer != issuer.subject:
        return False
    try:
        candidate.verify_directly_issued_by(issuer)
        eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in eku


def _names(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    if response.responder_key_hash is not None:
        return response.responder_key_hash == _key_sha1(certificate)
    return response.responder_name == certificate.subject


@functools.lru_cache(maxsize=4096)
def _key_sha1(certificate: x509.Certificate) -> bytes:
    """The ResponderID byKey of a certificate (RFC 6960 §4.2.2.3), once per certificate."""
    return hashlib.sha1(raw_public_key(certificate)).digest()  # noqa: S324


@functools.lru_cache(maxsize=4096)
def _public_key(certificate: x509.Certificate) -> object:
    """The signer's key, loaded once per certificate rather than once per response."""
    return certificate.public_key()


def _verifies(key: object, response: ocsp.OCSPResponse) -> bool:
    data, signature = response.tbs_response_bytes, response.signature
    try:
        algorithm = response.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True
