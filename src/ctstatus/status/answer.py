"""The one place that maps a serial's ledger state to what the status services say about it.

DESIGN.md invariant 2: never ``good`` for an unassigned serial, never ``unknown`` for an assigned
one. A serial is *assigned* once a precertificate was signed with it (BR §4.9.9), so
``precert_signed``, ``issued`` and ``abandoned`` answer ``good``, ``revoked`` answers
``revoked``, and ``reserved``, ``never_signed`` and serials the ledger does not hold get the
unsigned ``unauthorized`` response (RFC 9919 §2.2.3: no authoritative record). OCSP, the
pre-signer, the export and the CRL publisher all ask this module; none decides on its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final, assert_never

from ctstatus.ledger import RevocationReason, SerialRecord, SerialState


class Verdict(enum.Enum):
    """What a relying party is told about a serial."""

    GOOD = "good"
    REVOKED = "revoked"
    UNAUTHORIZED = "unauthorized"


def verdict(state: SerialState | None) -> Verdict:
    """The answer for a serial in ``state`` (``None``: the ledger does not know the serial)."""
    if state is None:
        return Verdict.UNAUTHORIZED
    match state:
        case SerialState.PRECERT_SIGNED | SerialState.ISSUED | SerialState.ABANDONED:
            return Verdict.GOOD
        case SerialState.REVOKED:
            return Verdict.REVOKED
        case SerialState.RESERVED | SerialState.NEVER_SIGNED:
            return Verdict.UNAUTHORIZED
        case _:  # pragma: no cover - mypy proves this unreachable
            assert_never(state)


@dataclass(frozen=True)
class Answer:
    """A verdict with what a ``revoked`` answer carries (time and reason, never certificateHold)."""

    verdict: Verdict
    revoked_at: datetime | None = None
    reason: RevocationReason | None = None

    @property
    def signed(self) -> bool:
        """Whether this answer is a signed response (``unauthorized`` is the unsigned error)."""
        return self.verdict is not Verdict.UNAUTHORIZED


UNAUTHORIZED: Final = Answer(Verdict.UNAUTHORIZED)
GOOD: Final = Answer(Verdict.GOOD)


def answer_for(record: SerialRecord | None) -> Answer:
    """The answer for a ledger record (``None`` when the issuer or serial is unknown)."""
    result = verdict(None if record is None else record.state)
    if result is Verdict.REVOKED:
        assert record is not None
        assert record.revoked_at is not None
        return Answer(result, record.revoked_at, record.revocation_reason)
    return GOOD if result is Verdict.GOOD else UNAUTHORIZED


def same_answer(signed_for: SerialState, now_in: SerialState) -> bool:
    """Whether a response signed while the serial was ``signed_for`` still holds ``now_in``.

    ``revoked`` is terminal and its time and reason are immutable in the ledger, so equal
    verdicts mean equal answers.
    """
    return verdict(signed_for) is verdict(now_in)


ANSWERED_STATES: Final = frozenset(s for s in SerialState if verdict(s) is not Verdict.UNAUTHORIZED)
"""States that get a signed response: the ones the pre-signer keeps responses for."""

REVOKED_STATES: Final = frozenset(s for s in SerialState if verdict(s) is Verdict.REVOKED)
"""States whose serials are listed on CRLs."""
