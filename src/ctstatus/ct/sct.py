"""Signing and verifying SCTs and STHs (RFC 6962 §3.2, §3.5, §5.2; spec digest §1.5).

A log signs with ECDSA P-256 or RSA PKCS#1 v1.5, both over SHA-256 -- nothing else is an RFC 6962
log key. An SCT counts only once it verifies against the log's key for exactly the entry we mean,
so every failure has its own :class:`SctVerificationError` reason: wrong log, unsupported
algorithm, timestamp in the future, bad signature, or a certificate we cannot cut correctly.

For a precertificate entry the signed TBS is the precertificate's TBS without the poison
extension, or -- the same bytes when the CA built them right -- the final certificate's TBS
without the SCT list extension (:func:`tbs_for_ct`). Precertificate Signing Certificates are not
supported: ctstatus never uses them (spec digest §1.2), so the issuer is always the real CA.
"""

from __future__ import annotations

import functools
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ctstatus.ct import der
from ctstatus.ct.errors import (
    DecodeError,
    EncodeError,
    FailureReason,
    SctVerificationError,
    SthVerificationError,
    VerificationError,
)
from ctstatus.ct.structures import (
    DigitallySigned,
    HashAlgorithm,
    LogEntryType,
    SignatureAlgorithm,
    SignedCertificateTimestamp,
    SignedTreeHead,
    TimestampedEntry,
    Version,
    sct_signature_input,
    tree_head_signature_input,
)
from ctstatus.keys.signer import KeyAlgorithm, PublicKey, Signer

CertificateLike = x509.Certificate | bytes

MIN_RSA_LOG_KEY_BITS = 2048


def _der(certificate: CertificateLike) -> bytes:
    if isinstance(certificate, x509.Certificate):
        return certificate.public_bytes(Encoding.DER)
    if isinstance(certificate, bytes):
        return certificate
    raise TypeError(f"expected a certificate or its DER, got {type(certificate).__name__}")


def log_id(public_key: PublicKey | bytes) -> bytes:
    """The log ID: SHA-256 of the log key's SubjectPublicKeyInfo DER (``bytes`` = that DER)."""
    if isinstance(public_key, bytes):
        spki = public_key
    else:
        spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def issuer_key_hash(issuer: CertificateLike) -> bytes:
    """SHA-256 of the issuer's SubjectPublicKeyInfo, exactly as encoded in its certificate.

    The SPKI (not the certificate, and not the BIT STRING contents that OCSP hashes), taken as
    raw bytes rather than re-serialized from the parsed key.
    """
    return _issuer_key_hash(_der(issuer))


@functools.lru_cache(maxsize=64)
def _issuer_key_hash(issuer_der: bytes) -> bytes:
    """Issuers are few: their key hash is worked out once per process."""
    return hashlib.sha256(der.certificate_spki(issuer_der)).digest()


def is_precertificate(certificate: CertificateLike) -> bool:
    """Whether the certificate carries the CT poison extension."""
    return der.OID_CT_POISON in _extension_oids(_der(certificate))


def tbs_for_ct(certificate: CertificateLike) -> bytes:
    """The TBSCertificate a precert_entry signs over, from a precertificate or a final certificate.

    A precertificate loses its poison extension, a final certificate its SCT list extension;
    everything else keeps its bytes and order. A certificate with neither is returned as is. One
    with both is malformed (:class:`DecodeError`).
    """
    return _tbs_for_ct(_der(certificate))


# The same certificate is asked about several times in a row (issuance: submission to each log,
# SCT checks, the final certificate's correspondence check), and the strict DER walk is pure
# Python: remember the last few answers, keyed by the exact bytes. Errors are not remembered.


@functools.lru_cache(maxsize=256)
def _extension_oids(certificate_der: bytes) -> frozenset[bytes]:
    tbs = der.certificate_tbs(certificate_der)
    return frozenset(e.oid for e in der.tbs_extensions(tbs))


@functools.lru_cache(maxsize=256)
def _tbs_for_ct(certificate_der: bytes) -> bytes:
    oids = _extension_oids(certificate_der)
    has_poison = der.OID_CT_POISON in oids
    has_scts = der.OID_SCT_LIST in oids
    if has_poison and has_scts:
        raise DecodeError("certificate has both the CT poison and an SCT list")
    tbs = der.certificate_tbs(certificate_der)
    if has_poison:
        return der.tbs_without_extension(tbs, der.OID_CT_POISON)
    if has_scts:
        return der.tbs_without_extension(tbs, der.OID_SCT_LIST)
    return tbs


def _log_key_algorithm(public_key: object, error: type[VerificationError]) -> SignatureAlgorithm:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise error(
                FailureReason.UNSUPPORTED_LOG_KEY,
                f"ECDSA log keys must be P-256, not {public_key.curve.name}",
            )
        return SignatureAlgorithm.ECDSA
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_LOG_KEY_BITS:
            raise error(
                FailureReason.UNSUPPORTED_LOG_KEY,
                f"RSA log keys must have at least {MIN_RSA_LOG_KEY_BITS} bits",
            )
        return SignatureAlgorithm.RSA
    raise error(
        FailureReason.UNSUPPORTED_LOG_KEY,
        f"log keys are ECDSA P-256 or RSA, not {type(public_key).__name__}",
    )


def verify_digitally_signed(
    signed: DigitallySigned,
    public_key: PublicKey,
    data: bytes,
    error: type[VerificationError] = VerificationError,
) -> None:
    """Check an RFC 6962 ``DigitallySigned`` over ``data``; raise ``error`` with the reason."""
    if signed.hash_alg is not HashAlgorithm.SHA256:
        raise error(
            FailureReason.UNSUPPORTED_ALGORITHM, f"hash {signed.hash_alg.name} is not SHA256"
        )
    if signed.sig_alg not in (SignatureAlgorithm.ECDSA, SignatureAlgorithm.RSA):
        raise error(
            FailureReason.UNSUPPORTED_ALGORITHM,
            f"signature algorithm {signed.sig_alg.name} is neither ECDSA nor RSA",
        )
    key_algorithm = _log_key_algorithm(public_key, error)
    if signed.sig_alg is not key_algorithm:
        raise error(
            FailureReason.ALGORITHM_MISMATCH,
            f"signature says {signed.sig_alg.name}, the log key is {key_algorithm.name}",
        )
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signed.signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            public_key.verify(signed.signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise error(FailureReason.BAD_SIGNATURE, "signature does not verify") from None


def _signature_algorithm(signer: Signer) -> SignatureAlgorithm:
    algorithm = signer.algorithm
    if algorithm is KeyAlgorithm.ECDSA_P256:
        return SignatureAlgorithm.ECDSA
    if not algorithm.is_ec:
        return SignatureAlgorithm.RSA
    raise ValueError(f"an RFC 6962 log signs with P-256 or RSA, not {algorithm.value}")


def sign_timestamped_entry(signer: Signer, entry: TimestampedEntry) -> SignedCertificateTimestamp:
    """The SCT a log with ``signer``'s key issues for ``entry`` (its timestamp and extensions)."""
    algorithm = _signature_algorithm(signer)
    signature = signer.sign(sct_signature_input(entry))
    return SignedCertificateTimestamp(
        version=Version.V1,
        log_id=log_id(signer.public_key()),
        timestamp_ms=entry.timestamp,
        extensions=entry.extensions,
        signature=DigitallySigned(HashAlgorithm.SHA256, algorithm, signature),
    )


def sign_sct(
    signer: Signer,
    entry_type: LogEntryType,
    timestamp_ms: int,
    signed_entry: bytes | tuple[bytes, bytes],
    extensions: bytes = b"",
) -> SignedCertificateTimestamp:
    """Sign an SCT for a leaf certificate DER (x509_entry) or ``(issuer_key_hash, tbs_der)``."""
    if entry_type is LogEntryType.X509_ENTRY:
        if not isinstance(signed_entry, bytes):
            raise TypeError("an x509_entry signs the leaf certificate DER")
        entry = TimestampedEntry.x509_entry(timestamp_ms, signed_entry, extensions)
    else:
        if not isinstance(signed_entry, tuple):
            raise TypeError("a precert_entry signs (issuer_key_hash, tbs_der)")
        key_hash, tbs = signed_entry
        entry = TimestampedEntry.precert_entry(timestamp_ms, key_hash, tbs, extensions)
    return sign_timestamped_entry(signer, entry)


def sign_tree_head(
    signer: Signer, tree_size: int, timestamp: int, root_hash: bytes
) -> SignedTreeHead:
    """Sign an STH over the 50-byte RFC 6962 §3.5 input."""
    algorithm = _signature_algorithm(signer)
    signature = signer.sign(tree_head_signature_input(timestamp, tree_size, root_hash))
    return SignedTreeHead(
        tree_size=tree_size,
        timestamp=timestamp,
        root_hash=root_hash,
        signature=DigitallySigned(HashAlgorithm.SHA256, algorithm, signature),
    )


def verify_sct_for_entry(
    sct: SignedCertificateTimestamp,
    log_public_key: PublicKey,
    *,
    entry_type: LogEntryType,
    signed_entry: bytes,
    issuer_key_hash: bytes | None = None,
    now_ms: int,
) -> None:
    """Verify ``sct`` for an entry given as bytes: the leaf DER, or the TBS plus issuer key hash.

    This is the check everything else reduces to; use it when the exact bytes are at hand (a CA
    that just built the TBS, a log that just signed it).
    """
    if sct.version is not Version.V1:
        raise SctVerificationError(
            FailureReason.UNSUPPORTED_VERSION, f"SCT version {sct.version!r} is not v1"
        )
    expected_id = log_id(log_public_key)
    if sct.log_id != expected_id:
        raise SctVerificationError(
            FailureReason.WRONG_LOG_ID,
            f"SCT is from log {sct.log_id.hex()}, the key given is log {expected_id.hex()}",
        )
    if sct.timestamp_ms > now_ms:
        raise SctVerificationError(
            FailureReason.FUTURE_TIMESTAMP,
            f"SCT timestamp {sct.timestamp_ms} is after now ({now_ms}) (RFC 6962 §5.2)",
        )
    try:
        entry = TimestampedEntry(
            sct.timestamp_ms, entry_type, signed_entry, issuer_key_hash, sct.extensions
        )
        data = sct_signature_input(entry, sct.version)
    except EncodeError as exc:
        raise SctVerificationError(FailureReason.MALFORMED_INPUT, str(exc)) from exc
    verify_digitally_signed(sct.signature, log_public_key, data, SctVerificationError)


def verify_sct(
    sct: SignedCertificateTimestamp,
    log_public_key: PublicKey,
    *,
    certificate: CertificateLike,
    issuer: CertificateLike | None = None,
    now_ms: int,
) -> None:
    """Verify ``sct`` for ``certificate``; raise :class:`SctVerificationError` if it fails.

    Without ``issuer`` the SCT is checked as an x509_entry over the whole certificate (an SCT
    from TLS or OCSP for a certificate that was logged as itself). With ``issuer`` it is checked
    as a precert_entry: ``certificate`` is then the precertificate (SCT from add-pre-chain) or
    the final certificate (embedded SCT), and ``issuer`` the CA that issued it.
    """
    try:
        if issuer is None:
            entry_type, signed_entry, key_hash = LogEntryType.X509_ENTRY, _der(certificate), None
        else:
            entry_type = LogEntryType.PRECERT_ENTRY
            signed_entry = tbs_for_ct(certificate)
            key_hash = issuer_key_hash(issuer)
    except DecodeError as exc:
        raise SctVerificationError(FailureReason.MALFORMED_INPUT, str(exc)) from exc
    verify_sct_for_entry(
        sct,
        log_public_key,
        entry_type=entry_type,
        signed_entry=signed_entry,
        issuer_key_hash=key_hash,
        now_ms=now_ms,
    )


def verify_tree_head(
    sth: SignedTreeHead, log_public_key: PublicKey, *, now_ms: int | None = None
) -> None:
    """Verify an STH's signature (and, given ``now_ms``, that it is not from the future)."""
    if now_ms is not None and sth.timestamp > now_ms:
        raise SthVerificationError(
            FailureReason.FUTURE_TIMESTAMP, f"STH timestamp {sth.timestamp} is after now ({now_ms})"
        )
    verify_digitally_signed(
        sth.signature, log_public_key, sth.signature_input(), SthVerificationError
    )
