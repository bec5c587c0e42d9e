"""Delegated OCSP responder certificates: issued by the issuing CA, short-lived, rotated early.

Profile (BR §7.1.2.8, spec-digest §3.5): issued directly by the CA whose certificates it answers
for; EKU exactly id-kp-OCSPSigning; id-pkix-ocsp-nocheck with extnValue ``05 00``; keyUsage
digitalSignature only, critical; AKI; SKI (SHOULD); no SAN, no CRLDP, no AIA, no policies;
notBefore backdated one hour (the BR allow at most one day); a lifetime of days.

A responder signs only while it has at least one full response validity left (responses'
nextUpdate must not pass its notAfter, MRSP §6), and a successor is issued once less than
``validity + 1 day`` remains, so the switch happens long before that. Certificates and keys live
in ``<instance>/ocsp-responders/<issuer>/`` (keys encrypted like the CA key files, or in the CA's
PKCS#11 token), where every responder process sharing the instance picks up the newest.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ctstatus.errors import SigningKeyError
from ctstatus.keys.assemble import sign_certificate
from ctstatus.keys.signer import KeyAlgorithm, PublicKey, Signer
from ctstatus.ledger import Issuer
from ctstatus.status.ocsp_response import MIN_VALIDITY, ResponderIdentity, same_key

log = logging.getLogger(__name__)

BACKDATE: Final = timedelta(hours=1)
ROTATION_MARGIN: Final = timedelta(days=1)
SERIAL_BITS: Final = 128


def responder_profile(
    public_key: PublicKey,
    issuer: x509.Certificate,
    serial: int,
    now: datetime,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    """The TBS of a delegated OCSP responder certificate (BR §7.1.2.8)."""
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    attrs = {a.oid: str(a.value) for a in issuer.subject}
    common_name = f"{attrs.get(NameOID.COMMON_NAME, 'Issuing CA')} OCSP Responder"[:64]
    subject = x509.Name(
        [
            *(
                x509.NameAttribute(oid, str(attrs[oid]))
                for oid in (NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME)
                if oid in attrs
            ),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    not_before = now.replace(microsecond=0) - BACKDATE
    return (
        x509.CertificateBuilder()
        .serial_number(serial)
        .issuer_name(issuer.subject)
        .subject_name(subject)
        .public_key(public_key)
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime - timedelta(seconds=1))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


class ResponderKeys(Protocol):
    """Where responder keys are made and found (encrypted files, or a PKCS#11 token)."""

    def generate(self, stem: Path, algorithm: KeyAlgorithm) -> Signer: ...

    def open(self, stem: Path) -> Signer: ...


@dataclass(frozen=True)
class Responder:
    """A responder certificate on disk; its key is opened only when it is chosen."""

    certificate: x509.Certificate
    stem: Path

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc


def _is_responder_for(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except Exception:  # a bad signature, no EKU, an unsupported key: not a responder of ours
        return False
    return list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]


def scan(directory: Path, issuer: x509.Certificate) -> list[Responder]:
    """Responder certificates for ``issuer`` in ``directory``, newest first."""
    found = []
    for path in sorted(directory.glob("*.cert.pem")):
        try:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            log.warning("ignoring unreadable responder certificate %s", path)
            continue
        if _is_responder_for(certificate, issuer):
            found.append(Responder(certificate, path.with_name(path.name[: -len(".cert.pem")])))
    return sorted(found, key=lambda r: (r.not_before, r.not_after), reverse=True)


def usable(responder: Responder, now: datetime) -> bool:
    """Valid now, with at least the BR minimum validity (8 h) left before its notAfter."""
    return responder.not_before <= now and responder.not_after - now >= MIN_VALIDITY


def rotation_due(current: Responder | None, now: datetime, validity: timedelta) -> bool:
    """Whether a successor should be issued: none, or less than validity + 1 day left."""
    return current is None or current.not_after - now < validity + ROTATION_MARGIN


def issue_responder(
    issuer: x509.Certificate,
    ca_signer: Signer,
    keys: ResponderKeys,
    directory: Path,
    *,
    now: datetime,
    lifetime: timedelta,
) -> Responder:
    """Generate a key, have the CA sign its responder certificate, write both into ``directory``."""
    if not same_key(ca_signer, issuer):
        raise SigningKeyError(
            f"the key {ca_signer.description} is not the key of {issuer.subject.rfc4514_string()}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    serial = secrets.randbits(SERIAL_BITS) | (1 << (SERIAL_BITS - 1))
    stem = directory / f"{now.strftime('%Y%m%dT%H%M%SZ')}-{serial:x}"
    signer = keys.generate(stem, ca_signer.algorithm)
    try:
        certificate = sign_certificate(
            responder_profile(signer.public_key(), issuer, serial, now, lifetime), ca_signer
        )
    finally:
        signer.close()
    path = stem.with_name(stem.name + ".cert.pem")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(certificate.public_bytes(Encoding.PEM))
    tmp.replace(path)  # atomic: a scanning responder never sees half a certificate
    return Responder(certificate, stem)


class DelegatedIdentities:
    """Per issuer, the delegated responder to sign with now; rescans and rotates on request."""

    def __init__(
        self,
        directory_for: Callable[[Issuer], Path],
        keys: ResponderKeys,
        *,
        validity: timedelta,
        lifetime: timedelta,
        ca_signer_for: Callable[[Issuer], Signer | None] | None = None,
    ) -> None:
        self._directory_for = directory_for
        self._keys = keys
        self._validity = validity
        self._lifetime = lifetime
        self._ca_signer_for = ca_signer_for
        self._current: dict[int, tuple[Responder, ResponderIdentity]] = {}

    def identity(self, issuer: Issuer, now: datetime) -> ResponderIdentity | None:
        """The identity signing for ``issuer`` (after :meth:`refresh` chose one)."""
        current = self._current.get(issuer.id)
        if current is None or not usable(current[0], now):
            return None
        return current[1]

    def refresh(self, issuer: Issuer, now: datetime) -> Responder | None:
        """Rescan, issue a successor if due and we hold the CA key, and switch to the newest."""
        directory = self._directory_for(issuer)
        found = [r for r in scan(directory, issuer.certificate) if usable(r, now)]
        best = found[0] if found else None
        if rotation_due(best, now, self._validity) and self._ca_signer_for is not None:
            ca_signer = self._ca_signer_for(issuer)
            if ca_signer is not None:
                best = issue_responder(
                    issuer.certificate,
                    ca_signer,
                    self._keys,
                    directory,
                    now=now,
                    lifetime=self._lifetime,
                )
                log.info("issued OCSP responder certificate %s", best.stem)
        if best is None:
            return None
        current = self._current.get(issuer.id)
        if current is None or current[0].stem != best.stem:
            signer = self._keys.open(best.stem)
            if current is not None:
                current[1].signer.close()
            identity = ResponderIdentity(signer, best.certificate, delegated=True)
            self._current[issuer.id] = (best, identity)
        return best

    def close(self) -> None:
        for _, identity in self._current.values():
            identity.signer.close()
        self._current.clear()
