"""What the API does, independent of HTTP: the ledger and the issuing CA behind it.

Ledger calls are synchronous (SQLAlchemy); they run in a worker thread so the one event loop
that also serves OCSP, the logs and the dashboard never waits on a database write.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ctstatus.ca.issuance import IssuanceRequest, IssuanceResult
from ctstatus.ledger import Ledger, RevocationReason, SerialRecord, SerialState
from ctstatus.ledger.serialnum import InvalidSerial, check_serial

REVOCATION_REASONS = {
    "unspecified": RevocationReason.UNSPECIFIED,
    "keyCompromise": RevocationReason.KEY_COMPROMISE,
    "affiliationChanged": RevocationReason.AFFILIATION_CHANGED,
    "superseded": RevocationReason.SUPERSEDED,
    "cessationOfOperation": RevocationReason.CESSATION_OF_OPERATION,
    "privilegeWithdrawn": RevocationReason.PRIVILEGE_WITHDRAWN,
}
"""The one spelling of revocation reasons, in and out: RFC 5280's CRLReason names (camelCase),
as ``ctstatus revoke --reason`` takes them. No aliases are accepted."""
REASON_NAMES = {reason: name for name, reason in REVOCATION_REASONS.items()}


def reason_name(reason: RevocationReason | int | str | None) -> str | None:
    """The RFC 5280 name of a reason (also for the ledger's older journal spelling)."""
    if reason is None:
        return None
    if isinstance(reason, str):
        if reason in REVOCATION_REASONS:
            return reason
        try:
            return REASON_NAMES[RevocationReason[reason.upper()]]
        except KeyError:
            return reason
    return REASON_NAMES.get(RevocationReason(reason), str(reason))


def parse_serial(text: str) -> int | None:
    """A hex serial (``0x`` and colons allowed), or None if it cannot be one."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    if not cleaned or len(cleaned) > 40:
        return None
    try:
        return check_serial(int(cleaned, 16))
    except (ValueError, InvalidSerial):
        return None


def pem(der: bytes | None) -> str | None:
    if der is None:
        return None
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()


@dataclass
class IssuanceBackend:
    """The issuing CA of a running stack, as the API and the demo see it."""

    ledger: Ledger
    issuer_id: int
    issuer_name: str
    issuer_certificate: x509.Certificate
    issue: Callable[[IssuanceRequest], Awaitable[IssuanceResult]]
    default_lifetime_days: int
    max_lifetime_days: int
    log_names: Mapping[bytes, tuple[str, str]] = field(default_factory=dict)
    """log id -> (name, operator), to name the SCTs of a certificate fetched again."""

    async def record(self, serial: int) -> SerialRecord | None:
        return await asyncio.to_thread(self.ledger.get, self.issuer_id, serial)

    async def revoke(self, serial: int, reason: RevocationReason, actor: str) -> SerialRecord:
        return await asyncio.to_thread(
            self.ledger.revoke, self.issuer_id, serial, reason, actor=actor
        )

    async def held_by_request(self, request_id: str) -> SerialRecord | None:
        """The serial of this CA that ``request_id`` still holds (reserved, precertificate
        signed or issued), if any: a retry gets it back instead of a second serial."""
        records = await asyncio.to_thread(self.ledger.by_request, request_id)
        live = (SerialState.RESERVED, SerialState.PRECERT_SIGNED, SerialState.ISSUED)
        held = [r for r in records if r.issuer_id == self.issuer_id and r.state in live]
        return held[-1] if held else None

    def embedded_scts(self, certificate: x509.Certificate) -> list[dict[str, Any]]:
        """The SCTs in a certificate, named by log where the log is known."""
        try:
            scts = certificate.extensions.get_extension_for_class(
                x509.PrecertificateSignedCertificateTimestamps
            ).value
        except x509.ExtensionNotFound:
            return []
        out = []
        for sct in scts:
            name, operator = self.log_names.get(sct.log_id, (None, None))
            out.append(
                {
                    "log": name or base64.b64encode(sct.log_id).decode(),
                    "operator": operator or "",
                    "log_id": base64.b64encode(sct.log_id).decode(),
                    "timestamp_ms": int(sct.timestamp.timestamp() * 1000),
                }
            )
        return out

    async def journal(self, serial: int) -> list[dict[str, Any]]:
        events = await asyncio.to_thread(
            self.ledger.events, issuer_id=self.issuer_id, serial=serial
        )
        return [
            {
                "at": event.at.isoformat(),
                "actor": event.actor,
                "action": event.action,
                "from": None if event.from_state is None else event.from_state.value,
                "to": None if event.to_state is None else event.to_state.value,
                "detail": _detail(event.detail),
            }
            for event in events
        ]


def _detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(detail)
    if isinstance(out.get("reason"), str):
        out["reason"] = reason_name(out["reason"])
    return out


def same_request(certificate: x509.Certificate, public_key: Any, names: list[Any]) -> bool:
    """Whether ``certificate`` certifies this key for exactly these names (a retried CSR)."""
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if certificate.public_key().public_bytes(*spki) != public_key.public_bytes(*spki):
        return False
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(san) == set(names)


def record_json(record: SerialRecord, ca: str) -> dict[str, Any]:
    """A serial as the API shows it; ``ca`` is the issuing CA's configured name."""
    return {
        "ca": ca,
        "serial": record.serial_hex,
        "state": record.state.value,
        "not_before": record.not_before.isoformat(),
        "not_after": record.not_after.isoformat(),
        "crl_shard": record.crl_shard,
        "revoked_at": None if record.revoked_at is None else record.revoked_at.isoformat(),
        "revocation_reason": reason_name(record.revocation_reason),
        "certificate_pem": pem(record.cert_der),
        "precertificate_pem": pem(record.precert_der),
    }
