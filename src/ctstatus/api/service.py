"""What the API does, independent of HTTP: the ledger and the issuing CA behind it.

Ledger calls are synchronous (SQLAlchemy); they run in a worker thread so the one event loop
that also serves OCSP, the logs and the dashboard never waits on a database write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ca.issuance import IssuanceRequest, IssuanceResult
from ctstatus.ledger import Ledger, RevocationReason, SerialRecord
from ctstatus.ledger.serialnum import InvalidSerial, check_serial

REVOCATION_REASONS = {
    "unspecified": RevocationReason.UNSPECIFIED,
    "keyCompromise": RevocationReason.KEY_COMPROMISE,
    "affiliationChanged": RevocationReason.AFFILIATION_CHANGED,
    "superseded": RevocationReason.SUPERSEDED,
    "cessationOfOperation": RevocationReason.CESSATION_OF_OPERATION,
    "privilegeWithdrawn": RevocationReason.PRIVILEGE_WITHDRAWN,
}


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

    async def record(self, serial: int) -> SerialRecord | None:
        return await asyncio.to_thread(self.ledger.get, self.issuer_id, serial)

    async def revoke(self, serial: int, reason: RevocationReason, actor: str) -> SerialRecord:
        return await asyncio.to_thread(
            self.ledger.revoke, self.issuer_id, serial, reason, actor=actor
        )

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
                "detail": dict(event.detail),
            }
            for event in events
        ]


def record_json(record: SerialRecord) -> dict[str, Any]:
    return {
        "serial": record.serial_hex,
        "state": record.state.value,
        "not_before": record.not_before.isoformat(),
        "not_after": record.not_after.isoformat(),
        "crl_shard": record.crl_shard,
        "revoked_at": None if record.revoked_at is None else record.revoked_at.isoformat(),
        "revocation_reason": (
            None if record.revocation_reason is None else record.revocation_reason.name.lower()
        ),
        "certificate_pem": pem(record.cert_der),
        "precertificate_pem": pem(record.precert_der),
    }
