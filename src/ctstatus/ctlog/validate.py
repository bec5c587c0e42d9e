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
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ct import der
from ctstatus.ct.b64 import b64decode
from ctstatus.ct.errors import DecodeError
from ctstatus.ct.sct import issuer_key_hash, tbs_for_ct
from ctstatus.ct.structures import (
    MAX_CERT_LENGTH,
    CertificateChain,
    LogEntryType,
    PrecertChainEntry,
)
from ctstatus.ctlog.errors import SubmissionError

PRECERT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.4")
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


class ChainValidator:
    """Validates chains against the accepted roots; remembers issuer links it has verified."""

    def __init__(
        self,
        roots: RootStore,
        temporal_interval: tuple[datetime, datetime] | None = None,
    ) -> None:
        self.roots = roots
        self.temporal_interval = temporal_interval
        self._verified: dict[tuple[bytes, bytes], None] = {}

    def _issued_by(
        self, child: x509.Certificate, child_fp: bytes, issuer: x509.Certificate, issuer_fp: bytes
    ) -> bool:
        key = (child_fp, issuer_fp)
        if key in self._verified:
            return True
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            return False
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[key] = None
        return True

    def validate(self, ders: list[bytes], *, precert: bool) -> Candidate:
        """Check the chain and the (pre)certificate rules; build the entry candidate."""
        certificates: list[x509.Certificate] = []
        for i, item in enumerate(ders):
            try:
                certificates.append(x509.load_der_x509_certificate(item))
            except ValueError:
                raise SubmissionError(f"chain[{i}] is not a DER X.509 certificate") from None
        fps = [fingerprint(item) for item in ders]
        leaf_der, leaf = ders[0], certificates[0]
        try:
            extensions = der.tbs_extensions(der.certificate_tbs(leaf_der))
        except DecodeError as exc:
            raise SubmissionError(f"chain[0]: {exc}") from None
        poison = [e for e in extensions if e.oid == der.OID_CT_POISON]
        if precert:
            if not poison:
                raise SubmissionError("add-pre-chain: the precertificate has no poison extension")
            if not poison[0].critical:
                raise SubmissionError("add-pre-chain: the poison extension must be critical")
            if poison[0].value != POISON_VALUE:
                raise SubmissionError("add-pre-chain: the poison extension's value must be 05 00")
        elif poison:
            raise SubmissionError(
                "add-chain: the certificate carries the CT poison; submit it with add-pre-chain"
            )

        # Each certificate must be signed by the next one.
        for i in range(len(certificates) - 1):
            if not self._issued_by(certificates[i], fps[i], certificates[i + 1], fps[i + 1]):
                raise SubmissionError(f"chain[{i}] is not issued by chain[{i + 1}]")
        for i in range(1, len(certificates)):
            if not self.roots.is_root(fps[i]) and not _is_ca(certificates[i]):
                raise SubmissionError(f"chain[{i}] is not a CA certificate")

        # The last one must be an accepted root, or be issued by one (which we then add).
        chain = list(ders[1:])
        if len(ders) == 1 or not self.roots.is_root(fps[-1]):
            last, last_fp = certificates[-1], fps[-1]
            for root_der, root in self.roots.issuers_of(last):
                if self._issued_by(last, last_fp, root, fingerprint(root_der)):
                    chain.append(root_der)
                    break
            else:
                raise SubmissionError("the chain does not lead to a root this log accepts")

        if self.temporal_interval is not None:
            start, end = self.temporal_interval
            not_after = leaf.not_valid_after_utc
            if not start <= not_after < end:
                raise SubmissionError(
                    f"notAfter {not_after.isoformat()} is outside this log's temporal interval"
                )

        chain_fps = [fingerprint(item) for item in chain]
        issuers = tuple(zip(chain_fps, chain, strict=True))
        if not precert:
            extra_data = CertificateChain(tuple(chain)).encode()
            identity = _identity(LogEntryType.X509_ENTRY, b"", leaf_der)
            return Candidate(
                LogEntryType.X509_ENTRY,
                leaf_der,
                None,
                extra_data,
                b"".join(chain_fps),
                issuers,
                identity,
            )
        issuer = x509.load_der_x509_certificate(chain[0])
        if _is_precert_signing_certificate(issuer):
            raise SubmissionError(
                "add-pre-chain: precertificates signed by a Precertificate Signing Certificate "
                "are not accepted; sign them with the issuing CA"
            )
        try:
            tbs = tbs_for_ct(leaf_der)
            key_hash = issuer_key_hash(chain[0])
        except (DecodeError, ValueError) as exc:
            raise SubmissionError(f"add-pre-chain: {exc}") from None
        extra_data = PrecertChainEntry(leaf_der, tuple(chain)).encode()
        return Candidate(
            LogEntryType.PRECERT_ENTRY,
            tbs,
            key_hash,
            extra_data,
            b"".join(chain_fps),
            issuers,
            _identity(LogEntryType.PRECERT_ENTRY, key_hash, tbs),
        )


def _identity(entry_type: LogEntryType, key_hash: bytes, signed_entry: bytes) -> bytes:
    return hashlib.sha256(int(entry_type).to_bytes(2, "big") + key_hash + signed_entry).digest()


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except (x509.ExtensionNotFound, ValueError):
        return False
    return constraints.value.ca


def _is_precert_signing_certificate(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except (x509.ExtensionNotFound, ValueError):
        return False
    return PRECERT_SIGNING_EKU in usage.value
