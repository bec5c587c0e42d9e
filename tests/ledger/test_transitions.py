"""Every (state, state) pair, through the API and through raw SQL, against ``states.py``.

Allowed edges must succeed and everything else must fail, in both layers, on both backends: the
matrix is derived from TRANSITIONS, so it grows with the state machine.
"""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from ctstatus.ledger import DuplicateSerial, InvalidTransition, SerialState, can_transition
from ctstatus.ledger.schema import serials
from ctstatus.ledger.states import HAS_PRECERT

S = SerialState
PAIRS = [pytest.param(a, b, id=f"{a.value}->{b.value}") for a, b in itertools.product(S, repeat=2)]


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_api_transition_matrix(ledger, issuer, source: S, target: S) -> None:
    record = issuer.drive_to(source)
    journal = ledger.events(issuer_id=issuer.id, serial=record.serial)
    if target is S.RESERVED:  # the only way "into" reserved is a new reservation
        with pytest.raises(DuplicateSerial):
            issuer.step(record.serial, target)
    elif can_transition(source, target):
        moved = issuer.step(record.serial, target)
        assert moved.state is target
        [event] = ledger.events(issuer_id=issuer.id, serial=record.serial, after_id=journal[-1].id)
        assert (event.from_state, event.to_state) == (source, target)
        return
    else:
        with pytest.raises(InvalidTransition) as info:
            issuer.step(record.serial, target)
        assert (info.value.current, info.value.attempted) == (source, target)
    assert ledger.get(issuer.id, record.serial) == record
    assert ledger.events(issuer_id=issuer.id, serial=record.serial) == journal


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_sql_transition_matrix(ledger_engine, issuer, source: S, target: S) -> None:
    """A raw UPDATE that supplies what ``target`` needs succeeds iff the edge exists."""
    record = issuer.drive_to(source)
    values: dict[str, object] = {"state": target.value}
    if target in HAS_PRECERT and record.precert_der is None:
        values["precert_der"] = issuer.ca.precert(record.serial)
    if target is S.ISSUED and record.cert_der is None:
        values["cert_der"] = issuer.ca.cert(record.serial)
    if target is S.REVOKED and record.revoked_at is None:
        values.update(revoked_at=issuer.not_before, revocation_reason=1)
    statement = sa.update(serials).where(serials.c.id == record.id).values(**values)
    if can_transition(source, target):
        with ledger_engine.begin() as conn:
            assert conn.execute(statement).rowcount == 1
    else:
        with (
            pytest.raises(sa.exc.IntegrityError, match="ctstatus ledger: illegal state transition"),
            ledger_engine.begin() as conn,
        ):
            conn.execute(statement)
