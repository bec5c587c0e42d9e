"""The ledger: the one source of truth for every serial's status (DESIGN.md, invariants 1-4).

Typical use::

    engine = create_ledger_engine("sqlite:////var/lib/ctstatus/ledger.db")
    migrate(engine)                      # `ctstatus ledger migrate`
    ledger = Ledger(engine, clock)       # refuses a schema other than head
    issuer = ledger.add_issuer("issuing-ca-2026", ca_cert, actor="cli:add-issuer")
    ledger.reserve(issuer.id, serial, not_before=..., not_after=..., crl_shard=3, actor="issuance")
"""

# The ACME tables share the ledger metadata (migration 0004); importing them registers them.
from ctstatus.ledger import acme_tables as acme_tables
from ctstatus.ledger.engine import READ_ONLY, create_ledger_engine, describe
from ctstatus.ledger.errors import (
    DuplicateSerial,
    InvalidTransition,
    IssuerConflict,
    LedgerConflict,
    RequestHasSerial,
    UnknownIssuer,
    UnknownSerial,
)
from ctstatus.ledger.hashes import IssuerHashes, raw_public_key
from ctstatus.ledger.migrate import current_revision, ensure_current, head_revision, migrate
from ctstatus.ledger.reasons import RevocationReason
from ctstatus.ledger.records import Event, Issuer, SerialRecord
from ctstatus.ledger.serialnum import (
    SERIAL_LIMIT,
    InvalidSerial,
    check_serial,
    serial_from_hex,
    serial_to_hex,
)
from ctstatus.ledger.states import TRANSITIONS, CertificateKind, SerialState, can_transition
from ctstatus.ledger.store import Ledger

__all__ = [
    "READ_ONLY",
    "SERIAL_LIMIT",
    "TRANSITIONS",
    "CertificateKind",
    "DuplicateSerial",
    "Event",
    "InvalidSerial",
    "InvalidTransition",
    "Issuer",
    "IssuerConflict",
    "IssuerHashes",
    "Ledger",
    "LedgerConflict",
    "RequestHasSerial",
    "RevocationReason",
    "SerialRecord",
    "SerialState",
    "UnknownIssuer",
    "UnknownSerial",
    "can_transition",
    "check_serial",
    "create_ledger_engine",
    "current_revision",
    "describe",
    "ensure_current",
    "head_revision",
    "migrate",
    "raw_public_key",
    "serial_from_hex",
    "serial_to_hex",
]
