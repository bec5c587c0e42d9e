"""Random sequences of API calls never leave a serial off the state machine, and the journal
replays to the stored state."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctstatus.ledger import (
    DuplicateSerial,
    InvalidTransition,
    SerialState,
    UnknownSerial,
    can_transition,
)
from ctstatus.ledger.states import INITIAL_STATE, reachable_from

SERIALS_PER_EXAMPLE = 3
calls = st.lists(
    st.tuples(st.sampled_from(list(SerialState)), st.integers(0, SERIALS_PER_EXAMPLE - 1)),
    max_size=14,
)


@settings(
    max_examples=100,
    deadline=None,
    # The issuer is shared by all examples on purpose; each example uses fresh serials.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(calls)
def test_random_calls_stay_on_the_state_machine(ledger, issuer, sequence) -> None:
    serials = [issuer.new_serial() for _ in range(SERIALS_PER_EXAMPLE)]
    model: dict[int, SerialState | None] = dict.fromkeys(serials)
    for target, index in sequence:
        serial = serials[index]
        before = model[serial]
        try:
            outcome: object = issuer.step(serial, target)
        except (DuplicateSerial, UnknownSerial, InvalidTransition) as exc:
            outcome = exc
        if isinstance(outcome, DuplicateSerial):
            assert before is not None
            assert target is INITIAL_STATE
        elif isinstance(outcome, UnknownSerial):
            assert before is None
            assert target is not INITIAL_STATE
        elif isinstance(outcome, InvalidTransition):
            assert outcome.current is before
            assert not can_transition(before, target)
        else:
            assert outcome.state is target
            assert (before is None and target is INITIAL_STATE) or can_transition(before, target)
            model[serial] = target

    for serial, expected in model.items():
        record = ledger.get(issuer.id, serial)
        assert (record.state if record else None) is expected
        replayed: SerialState | None = None
        for event in ledger.events(issuer_id=issuer.id, serial=serial):
            assert event.from_state is replayed
            assert (replayed is None and event.to_state is INITIAL_STATE) or can_transition(
                replayed, event.to_state
            )
            replayed = event.to_state
        assert replayed is expected
        assert expected is None or expected in reachable_from(INITIAL_STATE)
