"""kill -9 at every step of issuance, then ``recover``: no precertificate any log received is
ever without a status, and nothing is answered ``good`` without a signed document behind it.

Issuance runs in child processes (``crash_driver.py``: one warmed-up driver forks one child per
kill point) against the real logs of the test process; each child sends itself SIGKILL between
two steps, inside a ledger transaction before its COMMIT, or inside CT submission. One point is
killed from the log server itself, at the worst moment: the log has durably committed the
precertificate and the SCT has not reached the CA yet.

Then, reading every log like a monitor (verified STH, get-entries): every precertificate of our
CA that any log holds is in the ledger, with those exact bytes, in a state the status services
answer (``ctstatus.status.answer.verdict``); and every serial that is answered has a stored,
signed precertificate or certificate. ``recover`` then settles each row as the design says, a
second run changes nothing, and recover runs safely beside a live issuance and beside itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from ctstatus.ca.issuance import IssuanceResult
from ctstatus.ca.recover import Recovered, recover
from ctstatus.clock import system_clock
from ctstatus.ct.transport import new_http_session
from ctstatus.ledger import Ledger, SerialState
from ctstatus.status.answer import Verdict, verdict

from .conftest import (
    LOGS,
    Stack,
    assert_every_serial_consistent,
    assert_logged_precerts_answered,
    journal,
    request_for,
    unique_name,
)

DRIVER = Path(__file__).with_name("crash_driver.py")
CTSTATUS = Path(sys.executable).parent / "ctstatus"
BACKDATE = 3600  # the children's ledger clock: older than recover's grace (600 s)
SLOW = {log: {"delay_ms": 300} for log in LOGS}
QUORUM_FAILS = {"bravo": {"reject_status": 400}, "charlie": {"reject_status": 400}}

S = SerialState


@dataclass(frozen=True)
class Point:
    """Where the child dies, under which faults, what it leaves, what recover makes of it."""

    point: str
    left: SerialState | None
    settled: SerialState | None
    min_logs: int | None  # logs holding the precertificate (None: not checked)
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)


POINTS = [
    # Steps 1-3, before the precertificate is stored: it never left; never_signed.
    Point("reserve/before", None, None, 0),
    Point("reserve/after", S.RESERVED, S.NEVER_SIGNED, 0),
    Point("lint/after", S.RESERVED, S.NEVER_SIGNED, 0),
    Point("sign-precert/after", S.RESERVED, S.NEVER_SIGNED, 0),
    Point("mark_precert_signed/before", S.RESERVED, S.NEVER_SIGNED, 0),
    Point("mark_precert_signed/commit", S.RESERVED, S.NEVER_SIGNED, 0),
    # Stored: from here on a log may have it; abandoned and revoked by recover.
    Point("mark_precert_signed/after", S.PRECERT_SIGNED, S.REVOKED, 0),
    Point("add_pre_chain/in-flight", S.PRECERT_SIGNED, S.REVOKED, None, SLOW),
    Point("log/committed", S.PRECERT_SIGNED, S.REVOKED, 1),
    Point("add_pre_chain/first-sct", S.PRECERT_SIGNED, S.REVOKED, 1),
    Point("submit/after", S.PRECERT_SIGNED, S.REVOKED, 2),
    Point("sign-final/after", S.PRECERT_SIGNED, S.REVOKED, 2),
    Point("mark_issued/before", S.PRECERT_SIGNED, S.REVOKED, 2),
    Point("mark_issued/commit", S.PRECERT_SIGNED, S.REVOKED, 2),
    Point("mark_issued/after", S.ISSUED, S.ISSUED, 2),
    # The abandon path itself (quorum missed: alpha alone has the precertificate).
    Point("mark_abandoned/before", S.PRECERT_SIGNED, S.REVOKED, 1, QUORUM_FAILS),
    Point("mark_abandoned/after", S.ABANDONED, S.REVOKED, 1, QUORUM_FAILS),
    Point("revoke/commit", S.ABANDONED, S.REVOKED, 1, QUORUM_FAILS),
    Point("revoke/after", S.REVOKED, S.REVOKED, 1, QUORUM_FAILS),
]


def label(point: str) -> str:
    return point.replace("/", "-").replace("_", "-")


@dataclass
class LogSideKiller:
    """Kills the child once a log has committed a precertificate for a ``log-committed`` name."""

    workdir: Path | None = None
    killed: list[int] = field(default_factory=list)

    def after_commit(self, der: bytes) -> None:
        if self.workdir is None:
            return
        names = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        if not any(
            n.startswith(label("log/committed"))
            for n in names.value.get_values_for_type(x509.DNSName)
        ):
            return
        pid = int((self.workdir / "child.pid").read_text())
        if pid not in self.killed:
            self.killed.append(pid)
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def log_side_killer(stack: Stack) -> Iterator[LogSideKiller]:
    killer = LogSideKiller()
    originals = {}
    for log in stack.prepared.logs.values():
        original = originals[log] = log.add

        async def add(body: bytes, *, precert: bool, _add: Any = original) -> Any:
            sct = await _add(body, precert=precert)  # committed: the entry is durable now
            if precert:
                killer.after_commit(base64.b64decode(json.loads(body)["chain"][0]))
            return sct

        log.add = add  # type: ignore[method-assign]
    yield killer
    for log, original in originals.items():
        log.add = original  # type: ignore[method-assign]


def run_driver(
    stack: Stack, killer: LogSideKiller, workdir: Path, points: list[Point]
) -> dict[str, dict[str, Any]]:
    workdir.mkdir(parents=True, exist_ok=True)
    plan = {
        "instance": str(stack.directory),
        "admin": stack.base_url,
        "logs": list(LOGS),
        "backdate_seconds": BACKDATE,
        "workdir": str(workdir),
        "domain": f"{unique_name('crash')}",
        "points": [{"point": p.point, "faults": p.faults} for p in points],
    }
    (workdir / "plan.json").write_text(json.dumps(plan))
    killer.workdir = workdir
    try:
        done = subprocess.run(
            [sys.executable, str(DRIVER), str(workdir / "plan.json")],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        killer.workdir = None
    assert done.returncode == 0, done.stdout + done.stderr
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_point = {report["point"]: report for report in reports}
    assert list(by_point) == [p.point for p in points], done.stdout + done.stderr
    for report in reports:
        assert report["signal"] == signal.SIGKILL, report  # died at its point, kill -9
    return by_point


def serial_of(report: dict[str, Any]) -> int | None:
    return None if report["serial"] is None else int(report["serial"], 16)


def ctstatus(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI on the stack's instance (wide terminal: rich tables on one line each)."""
    return subprocess.run(
        [str(CTSTATUS), "-i", str(stack.directory), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
        check=False,
    )


def recover_beside_a_live_issuance(stack: Stack, ledger: Ledger) -> tuple[int, list[Recovered]]:
    """Two recovers start together while a live issuance's serial is ``precert_signed``.

    The live attempt is younger than the grace period: they must leave it alone. Returns its
    serial and everything the two recovers did.
    """
    for log, fault in SLOW.items():
        stack.set_faults(log, **fault)
    signed = threading.Event()
    real_mark = ledger.mark_precert_signed

    def mark_precert_signed(*args: Any, **kwargs: Any) -> Any:
        record = real_mark(*args, **kwargs)
        signed.set()
        return record

    ledger.mark_precert_signed = mark_precert_signed  # type: ignore[method-assign]
    start = threading.Barrier(2)
    results: list[Recovered] = []
    errors: list[BaseException] = []

    def recover_when_signed() -> None:
        own = stack.open_ledger()  # a connection (and on SQLite a writer) of its own
        try:
            assert signed.wait(timeout=30)
            start.wait(timeout=30)
            results.extend(recover(own, system_clock))
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=recover_when_signed) for _ in range(2)]
    for thread in threads:
        thread.start()

    async def live() -> IssuanceResult:
        async with new_http_session() as http:
            ca = stack.issuing_ca(ledger, http, deadline=20)  # slow logs, busy machine
            return await ca.issue(request_for([unique_name("live")]))

    try:
        result = asyncio.run(live())
    finally:
        signed.set()
        for thread in threads:
            thread.join(timeout=60)
        del ledger.mark_precert_signed
        stack.reset_faults()
    assert errors == []
    return result.serial, results


def test_kill_9_at_every_step_then_recover(
    stack: Stack, ledger: Ledger, log_side_killer: LogSideKiller, tmp_path: Path
) -> None:
    reports = run_driver(stack, log_side_killer, tmp_path / "driver", POINTS)
    serials = {p.point: serial_of(reports[p.point]) for p in POINTS}
    stale = {serials[p.point]: p for p in POINTS if p.left is not p.settled}

    # 1. Right after the kills: every logged precertificate is answered, and nothing is
    #    answered without a stored document; each point left what it should.
    logged = assert_logged_precerts_answered(stack, ledger)
    assert_every_serial_consistent(stack, ledger)
    assert log_side_killer.killed  # the log-side kill happened
    for p in POINTS:
        serial = serials[p.point]
        if p.left is None:
            assert serial is None, p
            continue
        assert serial is not None, p
        record = ledger.get(stack.issuer_id, serial)
        assert record is not None
        assert record.state is p.left, (p.point, record.state)
        held = logged.get(serial, {})
        if p.min_logs == 0:
            assert held == {}, (p.point, sorted(held))
        elif p.min_logs is not None:
            assert len(held) >= p.min_logs, (p.point, sorted(held))
        if p.point.endswith("/commit"):  # the killed transaction left nothing behind
            assert journal(ledger, stack.issuer_id, serial)[-1] == p.left.value

    # 2. `ctstatus recover --dry-run` says what it would do to each row, and changes nothing.
    dry = ctstatus(stack, "recover", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would become" in dry.stdout
    for serial, p in stale.items():
        assert serial is not None
        assert p.left is not None
        assert p.settled is not None
        line = next(row for row in dry.stdout.splitlines() if f" {serial:x} " in row)
        assert f" {p.left.value} " in line, line
        assert f" {p.settled.value} " in line, line
        record = ledger.get(stack.issuer_id, serial)
        assert record is not None
        assert record.state is p.left

    # 3. Two recovers at once, beside a live issuance: each stale row settled exactly once,
    #    the live one untouched (it finishes `issued`, journaled by issuance alone).
    live, results = recover_beside_a_live_issuance(stack, ledger)
    assert set(stale) <= {item.serial for item in results}
    assert live not in {item.serial for item in results}
    record = ledger.get(stack.issuer_id, live)
    assert record is not None
    assert record.state is S.ISSUED
    assert {e.actor for e in ledger.events(issuer_id=stack.issuer_id, serial=live)} == {"issuance"}

    # 4. Every row is where the design says, through the journal it says.
    for p in POINTS:
        serial = serials[p.point]
        if serial is None:
            continue
        record = ledger.get(stack.issuer_id, serial)
        assert record is not None
        assert record.state is p.settled, (p.point, record.state)
        events = ledger.events(issuer_id=stack.issuer_id, serial=serial)
        states = [e.to_state.value for e in events if e.to_state is not None]
        actions = [e.action for e in events]
        assert len(actions) == len(set(actions)), (p.point, actions)  # no step twice
        if p.left is p.settled:
            assert {e.actor for e in events} == {"issuance"}, p.point
        else:
            assert events[-1].actor == "recover", p.point
        if p.settled is S.NEVER_SIGNED:
            assert states == ["reserved", "never_signed"]
            assert verdict(record.state) is Verdict.UNAUTHORIZED
        elif p.settled is S.REVOKED:
            assert states == ["reserved", "precert_signed", "abandoned", "revoked"]
        else:
            assert states == ["reserved", "precert_signed", "issued"]
    assert_logged_precerts_answered(stack, ledger)
    assert_every_serial_consistent(stack, ledger)

    # 5. Idempotent: the real CLI, then the library, find nothing more to do.
    again = ctstatus(stack, "recover")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "nothing to recover"
    assert recover(ledger, system_clock) == []
