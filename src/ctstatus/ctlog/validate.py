"""Checking an add-chain / add-pre-chain submission and turning it into a log entry candidate.

RFC 6962 §4.1: the chain runs leaf first, each certificate signed by the next, the last one
certified by (or being) an accepted root; the submitter may leave the root out and the log adds
it. For add-pre-chain the leaf must carry the critical poison extension with value ``05 00`` and
be signed directly by the CA that will issue the final certificate: Precertificate Signing
Certificates are refused (BR SC-092, static-ct-api 2026-03). add-chain refuses a poisoned leaf.
Everything a client can send that is wrong is a :class:`SubmissionError` (HTTP 4xx), never
another exception.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ct import der
from ctstatus.ct.b64 import b64decode
from ctstatus.ct.errors import DecodeError
from ctstatus.ct.sct import issuer_key_hash
from ctstatus.ct.structures import (
    MAX_CERT_LENGTH,
    POISON_OID,
    SCT_LIST_OID,
    CertificateChain,
    LogEntryType,
    PrecertChainEntry,
)
from ctstatus.ct.tbs import issuer_name_der, tbs_without_poison
from ctstatus.ctlog.errors import SubmissionError

PRECERT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.4")
# What cryptography may raise on hostile certificates; several are not ValueErrors.
_CERTIFICATE_ERRORS = (
    ValueError,
    TypeError,
    InvalidSignature,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)
POISON_VALUE = b"\x05\x00"
_VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Candidate:
    """A validated submission: everything of the entry except its timestamp and index."""

    entry_type: LogEntryType
    signed_entry: bytes  # the leaf certificate DER, or the precertificate's TBS without poison
    issuer_key_hash: bytes | None
    extra_data: bytes
    chain_fps: bytes  # SHA-256 of each chain certificate after the leaf, concatenated
    issuers: tuple[tuple[bytes, bytes], ...]  # (fingerprint, DER) of each chain certificate
    identity: bytes  # what makes two submissions the same entry


def fingerprint(certificate_der: bytes) -> bytes:
    return hashlib.sha256(certificate_der).digest()


class RootStore:
    """The accepted roots, by fingerprint and by subject."""

    def __init__(self, roots: Iterable[x509.Certificate]) -> None:
        self.certificates: list[bytes] = []
        self._by_fingerprint: dict[bytes, x509.Certificate] = {}
        self._by_subject: dict[bytes, list[tuple[bytes, x509.Certificate]]] = {}
        for root in roots:
            root_der = root.public_bytes(Encoding.DER)
            fp = fingerprint(root_der)
            if fp in self._by_fingerprint:
                continue
            self.certificates.append(root_der)
            self._by_fingerprint[fp] = root
            self._by_subject.setdefault(root.subject.public_bytes(), []).append((root_der, root))

    def is_root(self, fp: bytes) -> bool:
        return fp in self._by_fingerprint

    def issuers_of(self, certificate: x509.Certificate) -> list[tuple[bytes, x509.Certificate]]:
        return self._by_subject.get(certificate.issuer.public_bytes(), [])


def parse_chain_body(body: bytes, max_chain_length: int) -> list[bytes]:
    """The DER certificates of a ``{"chain": [base64, …]}`` body."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        raise SubmissionError("body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise SubmissionError("body must be a JSON object with a 'chain' member")
    chain = obj.get("chain")
    if not isinstance(chain, list):
        raise SubmissionError("'chain' must be a JSON array of base64 certificates")
    if not chain:
        raise SubmissionError("'chain' is empty")
    if len(chain) > max_chain_length:
        raise SubmissionError(
            f"chain of {len(chain)} certificates is longer than this log accepts "
            f"({max_chain_length})"
        )
    try:
        return [
            b64decode(item, f"chain[{i}]", max_len=MAX_CERT_LENGTH) for i, item in enumerate(chain)
        ]
    except DecodeError as exc:
        raise SubmissionError(str(exc)) from None


@dataclass(frozen=True)
class _Tail:
    """The verified part of a chain above the leaf: issuer first, accepted root last."""

    issuer: x509.Certificate
    issuer_subject: bytes  # DER, to compare with the leaf's issuer field
    chain: tuple[bytes, ...]
    chain_fps: bytes
    issuers: tuple[tuple[bytes, bytes], ...]
    issuer_is_psc: bool
    issuer_key_hash: bytes | None


class ChainValidator:
    """Validates chains against the accepted roots.

    Everything above the leaf (intermediates, the root it leads to, the issuer's key hash) is
    the same for most submissions, so the verified tail of a chain is remembered by the
    fingerprints of its certificates; per submission only the leaf's own signature is checked.
    """

    def __init__(
        self,
        roots: RootStore,
        temporal_interval: tuple[datetime, datetime] | None = None,
    ) -> None:
        self.roots = roots
        self.temporal_interval = temporal_interval
        self._tails: dict[tuple[bytes, ...], _Tail] = {}

    def validate(self, ders: list[bytes], *, precert: bool) -> Candidate:
        """Check the chain and the (pre)certificate rules; build the entry candidate."""
        try:
            return self._validate(ders, precert=precert)
        except _CERTIFICATE_ERRORS as exc:
            # A safety net: cryptography refusing some part of a hostile certificate that the
            # checks above did not anticipate is still the client's problem, never a 500.
            raise SubmissionError(f"a certificate cannot be processed: {exc}") from None

    def _validate(self, ders: list[bytes], *, precert: bool) -> Candidate:
        leaf_der = ders[0]
        leaf = _load(leaf_der, 0)
        poison, has_sct_list = _ct_extensions(leaf, leaf_der)
        if precert:
            if poison is None:
                raise SubmissionError("add-pre-chain: the precertificate has no poison extension")
            if not poison.critical:
                raise SubmissionError("add-pre-chain: the poison extension must be critical")
            if poison.value != POISON_VALUE:
                raise SubmissionError("add-pre-chain: the poison extension's value must be 05 00")
            if has_sct_list:
                raise SubmissionError("add-pre-chain: a precertificate cannot carry SCTs")
        elif poison is not None:
            raise SubmissionError(
                "add-chain: the certificate carries the CT poison; submit it with add-pre-chain"
            )

        # Everything above the leaf (verified once, then remembered); then the leaf's signature.
        if len(ders) > 1:
            tail = self._tail(ders[1:])
            if not _leaf_issued_by(leaf, leaf_der, tail):
                raise SubmissionError("chain[0] is not issued by chain[1]")
        else:
            tail = self._root_tail(leaf)

        if self.temporal_interval is not None:
            start, end = self.temporal_interval
            not_after = leaf.not_valid_after_utc
            if not start <= not_after < end:
                raise SubmissionError(
                    f"notAfter {not_after.isoformat()} is outside this log's temporal interval"
                )

        if not precert:
            return Candidate(
                LogEntryType.X509_ENTRY,
                leaf_der,
                None,
                CertificateChain(tail.chain).encode(),
                tail.chain_fps,
                tail.issuers,
                _identity(LogEntryType.X509_ENTRY, b"", leaf_der),
            )
        if tail.issuer_is_psc:
            raise SubmissionError(
                "add-pre-chain: precertificates signed by a Precertificate Signing Certificate "
                "are not accepted; sign them with the issuing CA"
            )
        if tail.issuer_key_hash is None:
            raise SubmissionError("add-pre-chain: the issuer's public key cannot be read")
        try:
            tbs = tbs_without_poison(leaf_der)
        except ValueError as exc:
            raise SubmissionError(f"add-pre-chain: {exc}") from None
        return Candidate(
            LogEntryType.PRECERT_ENTRY,
            tbs,
            tail.issuer_key_hash,
            PrecertChainEntry(leaf_der, tail.chain).encode(),
            tail.chain_fps,
            tail.issuers,
            _identity(LogEntryType.PRECERT_ENTRY, tail.issuer_key_hash, tbs),
        )

    def _tail(self, ders: list[bytes]) -> _Tail:
        """The verified chain above the leaf (``ders`` = chain[1:]), from cache or checked now."""
        key = tuple(fingerprint(item) for item in ders)
        cached = self._tails.get(key)
        if cached is not None:
            return cached
        certificates = [_load(item, i + 1) for i, item in enumerate(ders)]
        for i in range(len(certificates) - 1):
            if not _issued_by(certificates[i], certificates[i + 1]):
                raise SubmissionError(f"chain[{i + 1}] is not issued by chain[{i + 2}]")
        for i, certificate in enumerate(certificates):
            if not self.roots.is_root(key[i]) and not _is_ca(certificate):
                raise SubmissionError(f"chain[{i + 1}] is not a CA certificate")
        chain = list(ders)
        if not self.roots.is_root(key[-1]):
            chain.append(self._root_for(certificates[-1]))
        tail = _make_tail(certificates[0], chain)
        if len(self._tails) >= _VERIFIED_CACHE_SIZE:
            self._tails.clear()
        self._tails[key] = tail
        return tail

    def _root_tail(self, leaf: x509.Certificate) -> _Tail:
        """The tail of a chain submitted as the leaf alone: just the root that issued it."""
        root_der = self._root_for(leaf)
        return _make_tail(x509.load_der_x509_certificate(root_der), [root_der])

    def _root_for(self, certificate: x509.Certificate) -> bytes:
        for root_der, root in self.roots.issuers_of(certificate):
            if _issued_by(certificate, root):
                return root_der
        raise SubmissionError("the chain does not lead to a root this log accepts")


def _make_tail(issuer: x509.Certificate, chain: list[bytes]) -> _Tail:
    chain_fps = [fingerprint(item) for item in chain]
    try:
        key_hash: bytes | None = issuer_key_hash(chain[0])
    except (DecodeError, ValueError):
        key_hash = None
    return _Tail(
        issuer=issuer,
        issuer_subject=issuer.subject.public_bytes(),
        chain=tuple(chain),
        chain_fps=b"".join(chain_fps),
        issuers=tuple(zip(chain_fps, chain, strict=True)),
        issuer_is_psc=_is_precert_signing_certificate(issuer),
        issuer_key_hash=key_hash,
    )


def _load(item: bytes, index: int) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(item)
    except _CERTIFICATE_ERRORS:
        raise SubmissionError(f"chain[{index}] is not a DER X.509 certificate") from None


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` issued ``child`` (names match, signature verifies).

    For ECDSA (the common case) the signature is checked directly, which skips work
    ``verify_directly_issued_by`` repeats per call; anything else goes through it.
    """
    try:
        key = issuer.public_key()
        parameters = child.signature_algorithm_parameters
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(parameters, ec.ECDSA):
            if child.issuer != issuer.subject:
                return False
            key.verify(child.signature, child.tbs_certificate_bytes, parameters)
        else:
            child.verify_directly_issued_by(issuer)
    except _CERTIFICATE_ERRORS:
        return False
    return True


def _leaf_issued_by(leaf: x509.Certificate, leaf_der: bytes, tail: _Tail) -> bool:
    """The per-submission signature check, comparing names as raw DER (no Name objects)."""
    try:
        key = tail.issuer.public_key()
        parameters = leaf.signature_algorithm_parameters
        if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(parameters, ec.ECDSA)):
            return _issued_by(leaf, tail.issuer)
        if issuer_name_der(leaf_der) != tail.issuer_subject:
            return False
        key.verify(leaf.signature, leaf.tbs_certificate_bytes, parameters)
    except _CERTIFICATE_ERRORS:
        return False
    return True


def _ct_extensions(leaf: x509.Certificate, leaf_der: bytes) -> tuple[der.Extension | None, bool]:
    """The leaf's poison extension (if any) and whether it carries an SCT list.

    ``cryptography`` parses extensions in Rust (fast path); whatever it refuses is looked at
    with the strict DER walker of :mod:`ctstatus.ct.der`, which says precisely what is wrong.
    """
    try:
        extensions = leaf.extensions
    except _CERTIFICATE_ERRORS:
        extensions = None
    if extensions is not None:
        poison: der.Extension | None = None
        has_sct_list = False
        for extension in extensions:
            if extension.oid == POISON_OID:
                is_null = isinstance(extension.value, x509.PrecertPoison)
                value = POISON_VALUE if is_null else b"?"
                poison = der.Extension(der.OID_CT_POISON, extension.critical, value, b"")
            elif extension.oid == SCT_LIST_OID:
                has_sct_list = True
        return poison, has_sct_list
    try:
        parsed = der.tbs_extensions(der.certificate_tbs(leaf_der))
    except DecodeError as exc:
        raise SubmissionError(f"chain[0]: {exc}") from None
    found = [e for e in parsed if e.oid == der.OID_CT_POISON]
    return (found[0] if found else None), any(e.oid == der.OID_SCT_LIST for e in parsed)


def _identity(entry_type: LogEntryType, key_hash: bytes, signed_entry: bytes) -> bytes:
    return hashlib.sha256(int(entry_type).to_bytes(2, "big") + key_hash + signed_entry).digest()


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except (x509.ExtensionNotFound, *_CERTIFICATE_ERRORS):
        return False
    return constraints.value.ca


def _is_precert_signing_certificate(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except (x509.ExtensionNotFound, *_CERTIFICATE_ERRORS):
        return False
    return PRECERT_SIGNING_EKU in usage.value
