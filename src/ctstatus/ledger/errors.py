"""Exceptions the store raises when the ledger's contents forbid an operation.

They derive from :class:`~ctstatus.errors.LedgerError` (a user-facing error) because each has a
clear one-line cause an operator can act on ("serial 1f is revoked, cannot revoke it"). Callers
that react to one case, such as issuance retrying on :class:`DuplicateSerial`, catch it by class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctstatus.errors import LedgerError

if TYPE_CHECKING:
    from ctstatus.ledger.records import SerialRecord
    from ctstatus.ledger.states import SerialState


class LedgerConflict(LedgerError):
    """The ledger holds data that forbids this operation (not a connection or schema problem)."""


class UnknownIssuer(LedgerConflict):
    """No issuer with that id or name."""

    def __init__(self, issuer: int | str) -> None:
        super().__init__(f"no issuer {issuer!r} in the ledger")
        self.issuer = issuer


class IssuerConflict(LedgerConflict):
    """An issuer name or certificate (or its subject and key) is already registered differently."""


class UnknownSerial(LedgerConflict):
    """No row for that (issuer, serial)."""

    def __init__(self, issuer_id: int, serial: int) -> None:
        super().__init__(f"serial {serial:x} of issuer {issuer_id} is not in the ledger")
        self.issuer_id = issuer_id
        self.serial = serial


class DuplicateSerial(LedgerConflict):
    """The (issuer, serial) pair is already reserved; allocate another serial."""

    def __init__(self, issuer_id: int, serial: int) -> None:
        super().__init__(f"serial {serial:x} of issuer {issuer_id} is already in the ledger")
        self.issuer_id = issuer_id
        self.serial = serial


class RequestHasSerial(LedgerConflict):
    """The request already has a live serial; a retry must reuse it (invariant 4)."""

    def __init__(self, request_id: str, existing: SerialRecord) -> None:
        super().__init__(
            f"request {request_id!r} already holds serial {existing.serial:x} "
            f"of issuer {existing.issuer_id} ({existing.state})",
            "reuse that serial, or abandon it first",
        )
        self.request_id = request_id
        self.existing = existing


class InvalidTransition(LedgerConflict):
    """The serial is not in a state from which the requested state can be reached."""

    def __init__(
        self, issuer_id: int, serial: int, current: SerialState, attempted: SerialState
    ) -> None:
        super().__init__(
            f"serial {serial:x} of issuer {issuer_id} is {current}; it cannot become {attempted}"
        )
        self.issuer_id = issuer_id
        self.serial = serial
        self.current = current
        self.attempted = attempted
