"""The state machine table itself, and that everything derived from it agrees with it."""

from __future__ import annotations

import itertools

from ctstatus.ledger import triggers
from ctstatus.ledger.states import (
    HAS_PRECERT,
    INITIAL_STATE,
    MAY_HAVE_CERT,
    TERMINAL_STATES,
    TRANSITIONS,
    SerialState,
    can_transition,
    path_to,
    predecessors,
    reachable_from,
)


def test_table_matches_design() -> None:
    """DESIGN.md's diagram, edge for edge; a change here must be deliberate."""
    s = SerialState
    edges = {(a, b) for a, nexts in TRANSITIONS.items() for b in nexts}
    assert edges == {
        (s.RESERVED, s.PRECERT_SIGNED),
        (s.RESERVED, s.NEVER_SIGNED),
        (s.PRECERT_SIGNED, s.ISSUED),
        (s.PRECERT_SIGNED, s.ABANDONED),
        (s.PRECERT_SIGNED, s.REVOKED),
        (s.ISSUED, s.REVOKED),
        (s.ABANDONED, s.REVOKED),
    }
    assert set(TRANSITIONS) == set(SerialState)
    assert {s.NEVER_SIGNED, s.REVOKED} == TERMINAL_STATES


def test_no_self_loops_and_acyclic() -> None:
    for state in SerialState:
        assert not can_transition(state, state)
        assert all(state not in reachable_from(nxt) for nxt in TRANSITIONS[state])


def test_every_state_reachable_from_initial() -> None:
    assert reachable_from(INITIAL_STATE) == set(SerialState)
    for state in SerialState:
        path = path_to(state)
        assert path[0] is INITIAL_STATE
        assert path[-1] is state
        assert all(can_transition(a, b) for a, b in itertools.pairwise(path))


def test_derived_sets() -> None:
    s = SerialState
    assert predecessors(s.REVOKED) == {s.PRECERT_SIGNED, s.ISSUED, s.ABANDONED}
    assert predecessors(INITIAL_STATE) == set()
    assert {s.PRECERT_SIGNED, s.ISSUED, s.ABANDONED, s.REVOKED} == HAS_PRECERT
    assert {s.ISSUED, s.REVOKED} == MAY_HAVE_CERT


def test_trigger_condition_lists_exactly_the_edges() -> None:
    """The SQL condition, evaluated in Python, accepts exactly the table's edges."""
    condition = triggers.transition_condition("old", "new")
    for old, new in itertools.product(SerialState, repeat=2):
        clauses = [c.strip(" ()") for c in condition.split(" OR ")]
        accepted = any(
            c.startswith(f"old = '{old.value}' AND new IN")
            and f"'{new.value}'" in c.split(" IN ", 1)[1]
            for c in clauses
        )
        assert accepted == can_transition(old, new), (old, new)
