"""What the store returns: frozen dataclasses, so no caller holds a live database Row."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from sqlalchemy import RowMapping

from ctstatus.ledger.reasons import RevocationReason
from ctstatus.ledger.serialnum import serial_from_hex
from ctstatus.ledger.states import CertificateKind, SerialState


@dataclass(frozen=True)
class Issuer:
    """A CA certificate whose serials the ledger tracks, with the hashes used to look it up."""

    id: int
    name: str
    certificate_der: bytes
    cert_sha256: bytes
    spki_sha256: bytes
    subject_key_id: bytes
    name_hash_sha1: bytes
    key_hash_sha1: bytes
    name_hash_sha256: bytes
    key_hash_sha256: bytes
    not_after: datetime
    created_at: datetime

    @property
    def certificate(self) -> x509.Certificate:
        """The issuer certificate, parsed."""
        return x509.load_der_x509_certificate(self.certificate_der)

    @classmethod
    def from_row(cls, row: RowMapping) -> Issuer:
        """Build from a ``issuers`` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SerialRecord:
    """One serial of one issuer and everything the ledger knows about it."""

    id: int
    issuer_id: int
    serial: int
    state: SerialState
    request_id: str | None
    tbs_der: bytes | None
    precert_der: bytes | None
    cert_der: bytes | None
    not_before: datetime
    not_after: datetime
    crl_shard: int
    revoked_at: datetime | None
    revocation_reason: RevocationReason | None
    created_at: datetime
    updated_at: datetime
    kind: CertificateKind = CertificateKind.SUBSCRIBER

    @property
    def serial_hex(self) -> str:
        """The serial as stored: lowercase minimal hex."""
        return format(self.serial, "x")

    @classmethod
    def from_row(cls, row: RowMapping) -> SerialRecord:
        """Build from a ``serials`` row, parsing the hex serial and the enums."""
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["serial"] = serial_from_hex(row["serial"])
        values["state"] = SerialState(row["state"])
        values["kind"] = CertificateKind(row["kind"])
        reason = row["revocation_reason"]
        values["revocation_reason"] = None if reason is None else RevocationReason(reason)
        return cls(**values)


@dataclass(frozen=True)
class Event:
    """One entry of the append-only journal."""

    id: int
    issuer_id: int
    serial_id: int | None
    serial: int | None
    at: datetime
    actor: str
    action: str
    from_state: SerialState | None
    to_state: SerialState | None
    detail: Mapping[str, Any]

    @classmethod
    def from_row(cls, row: RowMapping) -> Event:
        """Build from an ``events`` row joined with its serial's hex (column ``serial``)."""
        detail = json.loads(row["detail"])
        return cls(
            id=row["id"],
            issuer_id=row["issuer_id"],
            serial_id=row["serial_id"],
            serial=None if row["serial"] is None else serial_from_hex(row["serial"]),
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            from_state=None if row["from_state"] is None else SerialState(row["from_state"]),
            to_state=None if row["to_state"] is None else SerialState(row["to_state"]),
            detail=detail,
        )
