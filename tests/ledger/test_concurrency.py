"""Races between two engines (two processes' worth of connections): exactly one writer wins."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ctstatus.ledger import (
    InvalidTransition,
    Ledger,
    LedgerConflict,
    RequestHasSerial,
    SerialState,
    create_ledger_engine,
)

ROUNDS = 8


@pytest.fixture
def second_ledger(ledger_url: str, ledger_engine, clock) -> Iterator[Ledger]:
    """A Ledger on its own engine (own pool, own connections) against the same database."""
    engine = create_ledger_engine(ledger_url)
    yield Ledger(engine, clock)
    engine.dispose()


def _race(first: Callable[[], Any], second: Callable[[], Any]) -> list[Any]:
    """Run both at once (released together by a barrier); return results or exceptions."""
    barrier = threading.Barrier(2)

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except LedgerConflict as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        return [f.result() for f in [pool.submit(run, first), pool.submit(run, second)]]


def test_same_serial_reserved_twice_at_once(ledger, second_ledger, issuer) -> None:
    for _ in range(ROUNDS):
        serial = issuer.new_serial()
        calls = [
            functools.partial(
                lg.reserve,
                issuer.id,
                serial,
                not_before=issuer.not_before,
                not_after=issuer.not_after,
                crl_shard=0,
                actor="race",
            )
            for lg in (ledger, second_ledger)
        ]
        results = _race(*calls)
        assert sorted(type(r).__name__ for r in results) == ["DuplicateSerial", "SerialRecord"]
        assert [e.action for e in ledger.events(issuer_id=issuer.id, serial=serial)] == ["reserve"]


def test_same_request_reserved_twice_at_once(ledger, second_ledger, issuer) -> None:
    for n in range(ROUNDS):
        request = f"order-race-{issuer.id}-{n}"
        calls = [
            functools.partial(
                lg.reserve,
                issuer.id,
                issuer.new_serial(),
                not_before=issuer.not_before,
                not_after=issuer.not_after,
                crl_shard=0,
                request_id=request,
                actor="race",
            )
            for lg in (ledger, second_ledger)
        ]
        results = _race(*calls)
        losers = [r for r in results if isinstance(r, Exception)]
        assert len(losers) == 1, results
        assert isinstance(losers[0], RequestHasSerial)
        assert len(ledger.by_request(request)) == 1


def test_competing_transitions(ledger, second_ledger, issuer) -> None:
    """Finishing and abandoning the same precert at once: one wins, the journal agrees."""
    for _ in range(ROUNDS):
        serial = issuer.drive_to(SerialState.PRECERT_SIGNED).serial
        results = _race(
            functools.partial(
                ledger.mark_issued, issuer.id, serial, issuer.ca.cert(serial), actor="a"
            ),
            functools.partial(
                second_ledger.mark_abandoned, issuer.id, serial, "timeout", actor="b"
            ),
        )
        winners = [r for r in results if not isinstance(r, Exception)]
        losers = [r for r in results if isinstance(r, Exception)]
        assert len(winners) == 1
        assert len(losers) == 1
        assert isinstance(losers[0], InvalidTransition)
        assert losers[0].current is winners[0].state
        journal = ledger.events(issuer_id=issuer.id, serial=serial)
        assert [e.to_state for e in journal] == [
            SerialState.RESERVED,
            SerialState.PRECERT_SIGNED,
            winners[0].state,
        ]
