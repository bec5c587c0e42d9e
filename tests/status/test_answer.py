"""The state -> answer mapping: DESIGN.md's table, exhaustively, and nothing else decides."""

from __future__ import annotations

import pytest

from ctstatus.ledger import SerialState
from ctstatus.status.answer import (
    ANSWERED_STATES,
    REVOKED_STATES,
    UNAUTHORIZED,
    Verdict,
    answer_for,
    same_answer,
    verdict,
)

EXPECTED = {
    SerialState.RESERVED: Verdict.UNAUTHORIZED,
    SerialState.PRECERT_SIGNED: Verdict.GOOD,
    SerialState.ISSUED: Verdict.GOOD,
    SerialState.ABANDONED: Verdict.GOOD,
    SerialState.NEVER_SIGNED: Verdict.UNAUTHORIZED,
    SerialState.REVOKED: Verdict.REVOKED,
}


@pytest.mark.parametrize("state", list(SerialState))
def test_every_state_has_the_design_answer(state: SerialState) -> None:
    assert verdict(state) is EXPECTED[state]


def test_unknown_serials_are_unauthorized_never_good_or_unknown() -> None:
    assert verdict(None) is Verdict.UNAUTHORIZED
    assert answer_for(None) == UNAUTHORIZED
    assert not UNAUTHORIZED.signed
    assert {v.value for v in Verdict} == {"good", "revoked", "unauthorized"}  # no "unknown"


def test_derived_sets_follow_the_mapping() -> None:
    assert {s for s, v in EXPECTED.items() if v is not Verdict.UNAUTHORIZED} == ANSWERED_STATES
    assert {SerialState.REVOKED} == REVOKED_STATES


def test_same_answer_compares_verdicts() -> None:
    assert same_answer(SerialState.PRECERT_SIGNED, SerialState.ISSUED)
    assert same_answer(SerialState.ISSUED, SerialState.ABANDONED)
    assert not same_answer(SerialState.ISSUED, SerialState.REVOKED)
