"""No moment without status: from the instant a log receives a precertificate, its serial is
answered authoritatively (DESIGN.md invariant 1), on SQLite and PostgreSQL.

Two observers watch while several issuances run against slow logs:

* inside the log server, at the instant a log receives an add-pre-chain (before it sequences
  it), the serial's ledger row is read on a connection of its own;
* a poller thread samples every serial of the issuer from yet another connection, all the time.

The ledger state is turned into the answer relying parties get by the status services' own
mapping (``ctstatus.status.answer.verdict``). The observers must never see an assigned serial
answered ``unauthorized`` (or absent) once any log has it, nor a state going backwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509

from ctstatus.ca.issuance import IssuanceError, IssuanceResult
from ctstatus.ct.transport import new_http_session
from ctstatus.ledger import Ledger, SerialState
from ctstatus.status.answer import Verdict, verdict

from .conftest import Stack, request_for, unique_name

# The order of states along the arrows of the state machine (never backwards).
RANK = {
    SerialState.RESERVED: 0,
    SerialState.NEVER_SIGNED: 1,
    SerialState.PRECERT_SIGNED: 1,
    SerialState.ISSUED: 2,
    SerialState.ABANDONED: 2,
    SerialState.REVOKED: 3,
}
SLOW = {"delay_ms": 300}
SCENARIOS = {
    "issued": ({"alpha": SLOW, "bravo": SLOW, "charlie": SLOW}, SerialState.ISSUED),
    "quorum-missed": (
        {
            "alpha": SLOW,
            "bravo": {**SLOW, "reject_status": 400},
            "charlie": {**SLOW, "reject_status": 400},
        },
        SerialState.REVOKED,
    ),
}
CONCURRENT = 3


@dataclass(frozen=True)
class Receipt:
    """What the ledger said at the instant a log received a precertificate."""

    at: float
    log: str
    serial: int
    state: SerialState | None
    same_bytes: bool


@dataclass
class Poller:
    """Samples every serial of the issuer from its own connection until stopped."""

    stack: Stack
    samples: list[tuple[float, dict[int, SerialState]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        ledger = self.stack.open_ledger()
        try:
            while True:
                last = self.stop.is_set()  # one more sample after the issuances ended
                began = time.monotonic()
                rows = ledger.serials(issuer_id=self.stack.issuer_id, limit=100_000)
                self.samples.append((began, {row.serial: row.state for row in rows}))
                if last:
                    return
                self.stop.wait(0.005)  # pacing while the issuances run
        except BaseException as exc:
            self.error = exc
        finally:
            ledger.close()


@pytest.fixture
def receipts(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Receipt]]:
    """Hook every log's add(): read the ledger at the instant a precertificate arrives."""
    seen: list[Receipt] = []
    ledger = stack.open_ledger()  # used only from the log server's thread
    for name, log in stack.prepared.logs.items():
        original = log.add

        async def add(body: bytes, *, precert: bool, _add: Any = original, _log: str = name) -> Any:
            if precert:
                at = time.monotonic()
                der = base64.b64decode(json.loads(body)["chain"][0])
                serial = x509.load_der_x509_certificate(der).serial_number
                record = ledger.get(stack.issuer_id, serial)
                state = None if record is None else record.state
                same = record is not None and record.precert_der == der
                seen.append(Receipt(at, _log, serial, state, same))
            return await _add(body, precert=precert)

        monkeypatch.setattr(log, "add", add)
    yield seen
    monkeypatch.undo()
    ledger.close()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_moment_without_status_while_issuance_runs_against_slow_logs(
    stack: Stack, ledger: Ledger, receipts: list[Receipt], scenario: str
) -> None:
    faults, final = SCENARIOS[scenario]
    for log, fault in faults.items():
        stack.set_faults(log, **fault)
    poller = Poller(stack)
    thread = threading.Thread(target=poller.run, name="ledger-poller")

    async def issue_all() -> list[IssuanceResult | BaseException]:
        async with new_http_session() as http:
            ca = stack.issuing_ca(ledger, http, deadline=20)  # slow logs, maybe a busy machine
            return await asyncio.gather(
                *(ca.issue(request_for([unique_name(scenario)])) for _ in range(CONCURRENT)),
                return_exceptions=True,
            )

    thread.start()
    try:
        outcomes = asyncio.run(issue_all())
    finally:
        poller.stop.set()
        thread.join(timeout=30)
    assert poller.error is None, poller.error
    serials = set()
    for outcome in outcomes:
        if final is SerialState.ISSUED:
            assert isinstance(outcome, IssuanceResult), outcome
            serials.add(outcome.serial)
        else:
            assert isinstance(outcome, IssuanceError), outcome
            assert outcome.state == "abandoned and revoked"
            assert outcome.serial is not None
            serials.add(outcome.serial)
    assert len(serials) == CONCURRENT

    # At the instant each log received a precertificate, the ledger already answered for it,
    # with exactly the bytes the log received.
    ours = [r for r in receipts if r.serial in serials]
    assert {r.serial for r in ours} == serials
    for receipt in ours:
        assert receipt.state is SerialState.PRECERT_SIGNED, receipt
        assert verdict(receipt.state) is Verdict.GOOD
        assert receipt.same_bytes, receipt

    # From the first receipt on, every sample answers for the serial; states never go back.
    first = {s: min(r.at for r in ours if r.serial == s) for s in serials}
    watched = dict.fromkeys(serials, 0)
    for began, snapshot in poller.samples:
        for serial in serials:
            state = snapshot.get(serial)
            if began >= first[serial]:
                assert state is not None, f"serial {serial:x} absent after a log received it"
                assert verdict(state) is not Verdict.UNAUTHORIZED, (serial, state)
                watched[serial] += 1
    for serial in serials:
        states = [snap[serial] for _, snap in poller.samples if serial in snap]
        ranks = [RANK[state] for state in states]
        assert ranks == sorted(ranks), (serial, states)
        assert states[-1] is final
        # The poller really watched the window between a log's receipt and the end.
        assert watched[serial] >= 2, (serial, watched[serial])
