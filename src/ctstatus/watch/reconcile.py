"""What CT shows against what our ledger says, for our own issuers (anchors.md §6.3).

* A serial seen in a log that the ledger does not hold (or holds as never signed) is an
  **orphan**: a precertificate exists that our status services cannot answer for -- the
  Microsec incident. Critical.
* ``--fix`` imports each orphan from its CT entry: reserve → precert_signed (the precertificate
  DER from the log) → abandoned → revoked per ``[issuance] abandon``, each step journaled in
  the ledger with the cause. Only a precertificate can be imported this way; a final-only
  orphan is reported for a person to handle.
* A ledger precertificate not seen in any followed log after the maximum merge delay is a
  warning: precertificates must be logged, or the CT record is incomplete. One made before a
  log was started mid-log (``start = "end"``) may sit in the prefix never read: not judged.

The ledger is reached through its own API (its triggers keep every row moving forward); this
module never imports ``ca``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509

from ctstatus.ledger import Ledger, RevocationReason, SerialState
from ctstatus.watch.problems import Code, Finding
from ctstatus.watch.store import WatchStore

ACTOR = "watch:reconcile"
ANSWERED = (
    SerialState.PRECERT_SIGNED,
    SerialState.ISSUED,
    SerialState.ABANDONED,
    SerialState.REVOKED,
)


@dataclass
class ReconcileResult:
    orphans: list[tuple[str, str]] = field(default_factory=list)  # (issuer name, serial hex)
    fixed: list[tuple[str, str]] = field(default_factory=list)
    unfixable: list[tuple[str, str, str]] = field(default_factory=list)
    unlogged: list[tuple[str, str]] = field(default_factory=list)


def abandon_reason(name: str) -> RevocationReason:
    """``[issuance] abandon_reason`` (camelCase, as in RFC 5280) as a ledger reason."""
    snake = "".join(f"_{c}" if c.isupper() else c for c in name).upper()
    return RevocationReason[snake]


def reconcile(
    ledger: Ledger,
    store: WatchStore,
    now: datetime,
    *,
    mmd: timedelta,
    crl_shards: int,
    abandon: Literal["revoke", "keep"],
    reason: RevocationReason,
    fix: bool = False,
) -> ReconcileResult:
    result = ReconcileResult()
    stamp = now.timestamp()
    unread_ms = store.unread_until_ms()
    unread_until = None if unread_ms is None else datetime.fromtimestamp(unread_ms / 1000, UTC)
    for issuer in ledger.issuers():
        key = issuer.spki_sha256.hex()
        seen = store.serials_seen(key)
        for serial_hex, (timestamp_ms, der, precert) in sorted(seen.items()):
            serial = int(serial_hex, 16)
            record = ledger.get(issuer.id, serial)
            subject = f"reconcile:{issuer.name}:{serial_hex}"
            if record is not None and record.state in ANSWERED:
                store.record(subject, issuer.name, [], stamp, family="reconcile.orphan")
                continue
            state = "absent" if record is None else record.state.value
            result.orphans.append((issuer.name, serial_hex))
            finding = Finding(
                Code.ORPHAN,
                f"serial {serial_hex} is in CT but the ledger has it {state}",
                {"serial": serial_hex, "ledger_state": state, "ct_timestamp_ms": timestamp_ms},
            )
            if fix and record is None and der is not None and precert:
                _import(ledger, issuer.id, serial, der, crl_shards, abandon, reason)
                result.fixed.append((issuer.name, serial_hex))
                store.record(subject, issuer.name, [], stamp, family="reconcile.orphan")
                continue
            if fix:
                why = "only a final certificate was logged" if not precert else f"ledger {state}"
                result.unfixable.append((issuer.name, serial_hex, why))
            store.record(subject, issuer.name, [finding], stamp, family="reconcile.orphan")
        for record in ledger.serials(
            state=ANSWERED, issuer_id=issuer.id, updated_before=now, limit=1_000_000
        ):
            serial_hex = format(record.serial, "x")
            subject = f"unlogged:{issuer.name}:{serial_hex}"
            late = record.precert_der is not None and record.created_at + mmd < now
            if unread_until is not None and record.created_at <= unread_until:
                late = False  # it may be in a log's prefix that the watcher never read
            findings = []
            if late and serial_hex not in seen:
                result.unlogged.append((issuer.name, serial_hex))
                findings.append(
                    Finding(
                        Code.UNLOGGED,
                        f"precertificate {serial_hex} is in no followed log after the MMD",
                        {"serial": serial_hex, "created_at": record.created_at.isoformat()},
                    )
                )
            store.record(subject, issuer.name, findings, stamp, family="reconcile.unlogged")
    return result


def _import(
    ledger: Ledger,
    issuer_id: int,
    serial: int,
    precert_der: bytes,
    crl_shards: int,
    abandon: str,
    reason: RevocationReason,
) -> None:
    """The remedy the incident report describes: give the orphan a status, then revoke it."""
    certificate = x509.load_der_x509_certificate(precert_der)
    ledger.reserve(
        issuer_id,
        serial,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        crl_shard=serial % crl_shards,
        actor=ACTOR,
    )
    ledger.mark_precert_signed(issuer_id, serial, precert_der, actor=ACTOR)
    ledger.mark_abandoned(
        issuer_id,
        serial,
        "orphan: precertificate found in CT with no ledger record; imported by reconcile --fix",
        actor=ACTOR,
    )
    if abandon == "revoke":
        ledger.revoke(issuer_id, serial, reason, actor=ACTOR)
