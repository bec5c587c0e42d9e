"""Every way issuance fails over real logs, on SQLite and PostgreSQL: the exact message the user
reads, and the serial left with a status the OCSP responder and CRLs answer for.

After the precertificate is signed, every failure must end in the one abandon path: the journal
reads ``reserved → precert_signed → abandoned → revoked``, and whatever a log received is in the
ledger byte for byte. Before it is signed, nothing may reach a log and the serial is
``never_signed`` (answered ``unauthorized``: it was never assigned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from ctstatus.ca.issuance import IssuanceError, LintFailed
from ctstatus.ca.lint import Finding
from ctstatus.ca.recover import recover
from ctstatus.clock import FrozenClock, system_clock
from ctstatus.ct.client import signed_entry_for
from ctstatus.ct.loglist import LogList, LogState, TemporalInterval
from ctstatus.ct.sct import verify_sct_for_entry
from ctstatus.ct.submit import PolicyNotMet
from ctstatus.errors import LedgerError, SigningKeyError
from ctstatus.keys import Signer
from ctstatus.ledger import Ledger, RevocationReason, SerialState
from ctstatus.status.answer import Verdict, verdict

from .conftest import (
    ABANDONED_JOURNAL,
    RETRIED_503,
    RETRIED_REFUSAL,
    TIMED_OUT,
    Stack,
    abandoned_message,
    assert_every_serial_consistent,
    assert_logged_precerts_answered,
    describe_log,
    journal,
    reasons,
    request_for,
    timeouts_normalised,
    unique_name,
)


def expect_abandoned_and_revoked(
    stack: Stack, ledger: Ledger, serial: int, *, logs: Sequence[str] = ()
) -> bytes:
    """The serial is revoked through the abandon path; ``logs`` hold its precertificate."""
    record = ledger.get(stack.issuer_id, serial)
    assert record is not None
    assert record.state is SerialState.REVOKED
    assert verdict(record.state) is Verdict.REVOKED
    assert record.revocation_reason is RevocationReason.UNSPECIFIED
    assert record.revoked_at is not None
    assert record.precert_der is not None
    assert record.cert_der is None
    assert journal(ledger, stack.issuer_id, serial) == ABANDONED_JOURNAL
    held = assert_logged_precerts_answered(stack, ledger).get(serial, {})
    assert set(logs) <= set(held), held
    return record.precert_der


def settle(ledger: Ledger) -> dict[int, SerialState]:
    """``ctstatus recover`` as if run after the grace period."""
    later = FrozenClock(system_clock() + timedelta(minutes=11))
    return {item.serial: item.after for item in recover(ledger, later)}


# ------------------------------------------------------------------------------ CT failures

TWO_LOGS_FAIL = {
    "503+hang": (
        {"bravo": {"down": "503"}, "charlie": {"hang": True}},
        (("bravo", RETRIED_503), ("charlie", TIMED_OUT)),
    ),
    "refuse+503": (
        {"bravo": {"down": "refuse"}, "charlie": {"reject_status": 503}},
        (("bravo", RETRIED_REFUSAL), ("charlie", RETRIED_503)),
    ),
    "hang+refuse": (
        {"bravo": {"hang": True}, "charlie": {"down": "refuse"}},
        (("bravo", TIMED_OUT), ("charlie", RETRIED_REFUSAL)),
    ),
}


@pytest.mark.parametrize("combo", list(TWO_LOGS_FAIL))
def test_two_of_three_logs_failing_abandons_and_revokes_with_a_clear_error(
    stack: Stack, ledger: Ledger, combo: str
) -> None:
    faults, failed = TWO_LOGS_FAIL[combo]
    for log, fault in faults.items():
        stack.set_faults(log, **fault)
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, [unique_name("two-fail")])
    error = caught.value
    assert error.serial is not None
    assert error.state == "abandoned and revoked"
    assert timeouts_normalised(error.message) in [
        abandoned_message(f"CT policy not met: 1 of 2 SCTs ({text})", error.serial)
        for text in reasons(*failed)
    ]
    expect_abandoned_and_revoked(stack, ledger, error.serial, logs=["alpha"])


def test_quorum_missed_after_one_sct_is_the_microsec_case_and_leaves_nothing_unanswered(
    stack: Stack, ledger: Ledger
) -> None:
    """One log accepts and publishes the precertificate; quorum fails; it must be revoked."""
    before = stack.tree_sizes()
    stack.set_faults("bravo", reject_status=503)
    stack.set_faults("charlie", reject_status=503)
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, [unique_name("microsec")])
    serial = caught.value.serial
    assert serial is not None
    assert timeouts_normalised(caught.value.message) in [
        abandoned_message(f"CT policy not met: 1 of 2 SCTs ({text})", serial)
        for text in reasons(("bravo", RETRIED_503), ("charlie", RETRIED_503))
    ]
    # The SCT that was received is kept on the error: alpha has published this precertificate.
    cause = caught.value.__cause__
    assert isinstance(cause, PolicyNotMet)
    assert [received.log.name for received in cause.scts] == [describe_log("alpha")]

    precert = expect_abandoned_and_revoked(stack, ledger, serial, logs=["alpha"])
    # alpha's log holds exactly the bytes the ledger stored, and only alpha grew.
    held = stack.precerts_in_logs()[serial]
    assert held == {"alpha": precert}
    after = stack.tree_sizes()
    assert after == {**before, "alpha": before["alpha"] + 1}
    # The SCT alpha returned is valid for that entry under alpha's key.
    alpha = stack.log_list(["alpha"]).logs[0]
    entry = signed_entry_for(
        [precert, stack.issuing_certificate.public_bytes(Encoding.DER)], precert=True
    )
    verify_sct_for_entry(
        cause.scts[0].sct,
        alpha.public_key(),
        entry_type=entry.entry_type,
        signed_entry=entry.signed_entry,
        issuer_key_hash=entry.issuer_key_hash,
        now_ms=cause.scts[0].sct.timestamp_ms + 1,
    )
    # The journal says why it was abandoned, in the words the user read.
    abandon = [
        e for e in ledger.events(issuer_id=stack.issuer_id, serial=serial) if e.action == "abandon"
    ]
    assert abandon[0].detail["cause"].startswith("PolicyNotMet: CT policy not met: 1 of 2 SCTs")


def test_an_invalid_sct_does_not_count_and_three_logs_still_meet_the_policy(
    stack: Stack, ledger: Ledger
) -> None:
    # alpha's SCTs have a flipped signature byte. bravo answers after the hedge (1 s), so
    # whichever two logs are started first, alpha is always asked too. (A longer deadline than
    # the module's 2 s, so that a busy machine cannot turn bravo's 1.3 s into a timeout.)
    stack.set_faults("alpha", corrupt_sct_signature=True)
    stack.set_faults("bravo", delay_ms=1300)
    result = stack.issue(ledger, [unique_name("corrupt-3")], deadline=10)
    assert sorted(s.log_name for s in result.scts) == [
        describe_log("bravo"),
        describe_log("charlie"),
    ]
    record = ledger.get(stack.issuer_id, result.serial)
    assert record is not None
    assert record.state is SerialState.ISSUED
    # alpha stored the entry (only the SCT it sent was corrupted): it is public, and answered.
    held = assert_logged_precerts_answered(stack, ledger)[result.serial]
    assert set(held) == {"alpha", "bravo", "charlie"}


def test_an_invalid_sct_does_not_count_and_two_logs_then_fail(stack: Stack, ledger: Ledger) -> None:
    stack.set_faults("alpha", corrupt_sct_signature=True)
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, [unique_name("corrupt-2")], only_logs=["alpha", "bravo"])
    serial = caught.value.serial
    assert serial is not None
    assert caught.value.message == abandoned_message(
        f"CT policy not met: 1 of 2 SCTs (log {describe_log('alpha')}: invalid SCT "
        "(bad_signature))",
        serial,
    )
    # Both logs hold it (alpha's stored SCT is good; only the one it sent was not).
    expect_abandoned_and_revoked(stack, ledger, serial, logs=["alpha", "bravo"])


# ---------------------------------------------------------------------------------- lint


@pytest.mark.parametrize("name", ["*.com", "co.uk", "*.co.uk", "*.github.io", "github.io"])
def test_a_public_suffix_is_refused_before_a_serial_is_taken(
    stack: Stack, ledger: Ledger, name: str
) -> None:
    """No one can prove control of a public suffix: refused at step 0, whoever asks (API,
    CLI, ACME), before a serial is reserved or anything is linted, signed or sent."""
    before = stack.tree_sizes()
    serials = len(ledger.serials(issuer_id=stack.issuer_id, limit=1_000_000))
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, [name, unique_name("beside-a-suffix")])
    error = caught.value
    suffix = name.lower().removeprefix("*.")
    assert error.message == (
        f"cannot certify {name!r}: {suffix!r} is a public suffix (Public Suffix List), "
        "which no one can prove control of (BR §3.2.2.6)"
    )
    assert error.serial is None
    assert len(ledger.serials(issuer_id=stack.issuer_id, limit=1_000_000)) == serials
    assert stack.tree_sizes() == before


def test_a_lint_failure_signs_nothing_and_sends_nothing(stack: Stack, ledger: Ledger) -> None:
    name = f"{unique_name('internal').split('.')[0]}.local"
    before = stack.tree_sizes()
    with pytest.raises(LintFailed) as caught:
        stack.issue(ledger, [name])
    error = caught.value
    assert error.message == (
        "the certificate would break the Baseline Requirements: ERROR cabf.internal_domain_name "
        "at certificate.tbsCertificate.extensions.7.extnValue.subjectAltName.0.dNSName: "
        f'Internal domain name: "{name}"'
    )
    assert error.hint == "nothing was signed; change the request or the profile"
    assert stack.tree_sizes() == before  # no log received anything
    assert error.serial is not None
    record = ledger.get(stack.issuer_id, error.serial)
    assert record is not None
    assert record.state is SerialState.NEVER_SIGNED
    assert verdict(record.state) is Verdict.UNAUTHORIZED
    assert record.precert_der is None
    assert journal(ledger, stack.issuer_id, error.serial) == ["reserved", "never_signed"]


def test_a_lint_failure_of_the_final_certificate_abandons_the_logged_precertificate(
    stack: Stack, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final certificate is linted too; if that fails, the precertificate is public."""
    from ctstatus.ca import issuance

    real = issuance.lint_certificate
    finding = Finding("ERROR", "test.final_only", "injected", "certificate.tbsCertificate")

    def lint(der: bytes) -> tuple[str, list[Finding]]:
        kind, findings = real(der)
        return (
            (kind, [*findings, finding]) if kind.endswith("FINAL_CERTIFICATE") else (kind, findings)
        )

    monkeypatch.setattr(issuance, "lint_certificate", lint)
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, [unique_name("final-lint")])
    serial = caught.value.serial
    assert serial is not None
    assert caught.value.message == abandoned_message(
        "the final certificate fails lint: ERROR test.final_only at certificate.tbsCertificate: "
        "injected",
        serial,
    )
    held = stack.precerts_in_logs()[serial]
    assert len(held) >= 2
    expect_abandoned_and_revoked(stack, ledger, serial, logs=list(held))


# ------------------------------------------------------------------ CT policy feasibility


def _logs(stack: Stack, **changes: dict[str, Any]) -> LogList:
    """The stack's log list with fields of some logs changed (what a stale or edited list has)."""
    logs = stack.log_list()
    return replace(
        logs,
        logs=tuple(
            replace(log, **changes.get(log.description.split()[1], {})) for log in logs.logs
        ),
    )


def _shard(start: datetime, end: datetime) -> dict[str, Any]:
    return {"temporal_interval": TemporalInterval(start, end)}


NOW = system_clock()
PAST_SHARD = _shard(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
NEXT_YEAR = _shard(NOW, NOW + timedelta(days=365))
LATER_SHARD = _shard(NOW + timedelta(days=365), NOW + timedelta(days=730))
ONE_OPERATOR = "SCTs from 1 operator(s); at least 2 needed"

INFEASIBLE: dict[str, tuple[dict[str, dict[str, Any]], int, str, list[str]]] = {
    # name: (changes per log, lifetime days, the policy's problems, why logs are not usable)
    "retired-rejected": (
        {"bravo": {"state": LogState.RETIRED}, "charlie": {"state": LogState.REJECTED}},
        90,
        f"1 of 2 SCTs from distinct logs; {ONE_OPERATOR}",
        ["bravo: retired", "charlie: rejected"],
    ),
    "readonly": (
        {"alpha": {"state": LogState.READONLY}, "bravo": {"state": LogState.READONLY}},
        90,
        f"1 of 2 SCTs from distinct logs; {ONE_OPERATOR}",
        ["alpha: readonly", "bravo: readonly"],
    ),
    "shards": (
        {"alpha": NEXT_YEAR, "bravo": PAST_SHARD, "charlie": LATER_SHARD},
        90,
        f"1 of 2 SCTs from distinct logs; {ONE_OPERATOR}",
        ["bravo: its temporal interval", "charlie: its temporal interval"],
    ),
    "no-log-at-all": (
        {name: {"state": LogState.PENDING} for name in ("alpha", "bravo", "charlie")},
        90,
        "no SCT from a log that is Qualified, Usable or ReadOnly now; "
        "0 of 2 SCTs from distinct logs; SCTs from 0 operator(s); at least 2 needed",
        ["alpha: pending", "bravo: pending", "charlie: pending"],
    ),
    "one-operator": (
        {
            "alpha": {"operator": "one operator"},
            "bravo": {"operator": "one operator"},
            "charlie": {"state": LogState.RETIRED},
        },
        90,
        ONE_OPERATOR,
        ["charlie: retired"],
    ),
    "long-lifetime-needs-three": (
        {"charlie": {"state": LogState.RETIRED}},
        181,
        "2 of 3 SCTs from distinct logs",
        ["charlie: retired"],
    ),
}


@pytest.mark.parametrize("case", list(INFEASIBLE))
def test_a_log_list_that_cannot_meet_the_policy_signs_nothing(
    stack: Stack, ledger: Ledger, case: str
) -> None:
    changes, days, problems, excluded = INFEASIBLE[case]
    before = stack.tree_sizes()
    request = replace(request_for([unique_name(case)]), lifetime_days=days)
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, request, log_list=_logs(stack, **changes))
    error = caught.value
    assert error.serial is not None
    assert error.state == "never_signed"
    assert error.message.startswith(
        f"the configured CT logs cannot meet the chrome CT policy: {problems} ("
    ), error.message
    for text in excluded:
        name, why = text.split(": ", 1)
        assert f"log {describe_log(name)}: {why}" in error.message, error.message
    assert error.message.endswith(f"; nothing was signed (serial {error.serial:x} is never_signed)")
    assert error.hint is not None
    assert "[issuance] log_list" in error.hint
    assert stack.tree_sizes() == before  # no log received anything
    record = ledger.get(stack.issuer_id, error.serial)
    assert record is not None
    assert record.state is SerialState.NEVER_SIGNED
    assert record.precert_der is None
    assert journal(ledger, stack.issuer_id, error.serial) == ["reserved", "never_signed"]
    [event_] = [
        e
        for e in ledger.events(issuer_id=stack.issuer_id, serial=error.serial)
        if e.action == "never_signed"
    ]
    assert event_.detail["cause"].startswith("ct policy cannot be met: the configured CT logs")


def test_logs_whose_shards_cover_notafter_still_issue(stack: Stack, ledger: Ledger) -> None:
    """The positive control: temporal shards that cover notAfter, one log retired, 2 left."""
    logs = _logs(stack, alpha=NEXT_YEAR, bravo=NEXT_YEAR, charlie={"state": LogState.RETIRED})
    result = stack.issue(ledger, [unique_name("shards-ok")], log_list=logs)
    assert {sct.log_name for sct in result.scts} == {describe_log("alpha"), describe_log("bravo")}


# ------------------------------------------------------------------------- ledger failures


def ledger_down(stack: Stack) -> LedgerError:
    return LedgerError(
        f"cannot write to the ledger at {stack.instance.ledger_url()}: disk I/O error",
        "check that the directory exists and is writable, and [ledger] url",
    )


def fail_at(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, method: str, error: Exception
) -> list[int]:
    """Make ``ledger.<method>`` raise ``error``; returns the serials it was called for."""
    calls: list[int] = []

    def failing(issuer_id: int, serial: int, *args: Any, **kwargs: Any) -> Any:
        calls.append(serial)
        raise error

    monkeypatch.setattr(ledger, method, failing)
    return calls


def final_not_stored(error: Exception) -> str:
    """What the user and the journal are told when the final certificate's commit fails."""
    return (
        f"the final certificate was signed but the ledger did not store it ({error}); it was "
        "discarded and never left the CA"
    )


# method -> (CT must fail first?, state left by issuance, state after recover, precert public?)
LEDGER_WRITES = {
    "reserve": (False, None, None, False),
    "mark_never_signed": (False, SerialState.RESERVED, SerialState.NEVER_SIGNED, False),
    "mark_precert_signed": (False, SerialState.RESERVED, SerialState.NEVER_SIGNED, False),
    "mark_issued": (False, SerialState.REVOKED, SerialState.REVOKED, True),
    "mark_abandoned": (True, SerialState.PRECERT_SIGNED, SerialState.REVOKED, True),
    "revoke": (True, SerialState.ABANDONED, SerialState.REVOKED, True),
}


@pytest.mark.parametrize("method", list(LEDGER_WRITES))
def test_a_ledger_failure_at_each_write_never_leaves_a_logged_precertificate_unanswered(
    stack: Stack, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    ct_fails, left, settled, public = LEDGER_WRITES[method]
    before = stack.tree_sizes()
    if ct_fails:  # the abandon path is reached through a quorum failure (4xx: no retries)
        stack.set_faults("bravo", reject_status=400)
        stack.set_faults("charlie", reject_status=400)
    names = [unique_name(method.replace("_", "-"))]
    if method == "mark_never_signed":  # reached through a lint failure
        names = [f"{names[0].split('.')[0]}.local"]
    down = ledger_down(stack)
    calls = fail_at(monkeypatch, ledger, method, down)
    reserved: list[int] = []
    real_reserve = ledger.reserve
    if method != "reserve":

        def spy(issuer_id: int, serial: int, **kwargs: Any) -> Any:
            reserved.append(serial)
            return real_reserve(issuer_id, serial, **kwargs)

        monkeypatch.setattr(ledger, "reserve", spy)

    with pytest.raises((IssuanceError, LedgerError)) as caught:
        stack.issue(ledger, names)
    monkeypatch.undo()
    assert len(calls) == 1
    error = caught.value
    if left is None:  # nothing was reserved, so nothing was signed or sent
        assert type(error) is LedgerError
        assert error is down
        assert stack.tree_sizes() == before
        return
    serial = reserved[0]
    record = ledger.get(stack.issuer_id, serial)
    assert record is not None
    assert record.state is left
    if not public:
        # The ledger refused before the precertificate was stored: it never left the process.
        assert type(error) is LedgerError
        assert error is down
        assert stack.tree_sizes() == before
        assert record.precert_der is None
    else:
        assert isinstance(error, IssuanceError)
        assert error.serial == serial
        refused = f"the ledger refused the abandon path: {down}; `ctstatus recover` will settle it"
        expected_state = {
            "mark_issued": "abandoned and revoked",
            "mark_abandoned": f"precert_signed ({refused})",
            "revoke": f"abandoned ({refused})",
        }[method]
        if ct_fails:
            causes = [
                f"CT policy not met: 1 of 2 SCTs ({text})"
                for text in reasons(
                    ("bravo", "rejected, HTTP 400: rejected (injected fault)"),
                    ("charlie", "rejected, HTTP 400: rejected (injected fault)"),
                )
            ]
        elif method == "mark_issued":
            causes = [final_not_stored(down)]
        else:
            causes = [str(down)]
        assert error.message in [abandoned_message(c, serial, expected_state) for c in causes]
        # Whatever the logs hold is answered, now, before any recover.
        held = assert_logged_precerts_answered(stack, ledger)
        assert serial in held
        assert verdict(record.state) is not Verdict.UNAUTHORIZED
    # recover settles what the outage left, the way the design says.
    if left is not settled:
        assert settle(ledger)[serial] is settled
    record = ledger.get(stack.issuer_id, serial)
    assert record is not None
    assert record.state is settled
    if public:
        assert journal(ledger, stack.issuer_id, serial) == ABANDONED_JOURNAL
    assert_every_serial_consistent(stack, ledger)


def test_a_ledger_down_for_the_rest_of_the_attempt_leaves_the_precertificate_good_until_recover(
    stack: Stack, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write after the precertificate was stored fails: it stays ``precert_signed``."""
    down = ledger_down(stack)
    for method in ("mark_issued", "mark_abandoned", "revoke"):
        fail_at(monkeypatch, ledger, method, down)
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, [unique_name("ledger-down")])
    monkeypatch.undo()
    serial = caught.value.serial
    assert serial is not None
    assert caught.value.message == abandoned_message(
        final_not_stored(down),
        serial,
        f"precert_signed (the ledger refused the abandon path: {down}; `ctstatus recover` "
        "will settle it)",
    )
    assert serial in assert_logged_precerts_answered(stack, ledger)
    assert settle(ledger)[serial] is SerialState.REVOKED
    expect_abandoned_and_revoked(stack, ledger, serial)


def test_a_database_fault_storing_the_final_certificate_abandons_with_the_true_cause(
    stack: Stack, ledger: Ledger
) -> None:
    """The database itself fails the ``issued`` UPDATE (after CT quorum, after the final
    certificate was signed): the certificate never leaves, the precertificate the logs hold is
    abandoned and revoked, and the journal says exactly which step failed and why."""
    failed: list[str] = []

    def disk_error(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        # The SET state = 'issued' parameter: first (SQLite's qmark) or named (psycopg).
        sets = parameters.get("state") if isinstance(parameters, dict) else parameters[:1]
        if statement.lstrip().upper().startswith("UPDATE SERIALS") and sets in (
            "issued",
            ("issued",),
        ):
            failed.append(statement)
            raise OperationalError(statement, parameters, Exception("disk I/O error"))

    event.listen(ledger.engine, "before_cursor_execute", disk_error)
    try:
        with pytest.raises(IssuanceError) as caught:
            stack.issue(ledger, [unique_name("final-not-stored")])
    finally:
        event.remove(ledger.engine, "before_cursor_execute", disk_error)
    assert len(failed) == 1
    error = caught.value
    assert error.serial is not None
    assert error.state == "abandoned and revoked"
    cause = error.message.removesuffix(
        f". The precertificate (serial {error.serial:x}) is abandoned and revoked"
    )
    assert cause.startswith("the final certificate was signed but the ledger did not store it (")
    assert "disk I/O error" in cause
    assert cause.endswith("); it was discarded and never left the CA")
    expect_abandoned_and_revoked(stack, ledger, error.serial)
    assert len(stack.precerts_in_logs()[error.serial]) >= 2  # quorum was met first
    [abandon] = [
        e
        for e in ledger.events(issuer_id=stack.issuer_id, serial=error.serial)
        if e.action == "abandon"
    ]
    assert abandon.detail["cause"] == f"final certificate not stored: {cause}"


def test_a_lost_acknowledgement_of_the_final_certificate_commit_is_not_an_abandon(
    stack: Stack, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit landed but its answer was lost: the ledger holds exactly the certificate we
    signed, so the issuance succeeded and the serial is not abandoned."""
    real = ledger.mark_issued
    down = ledger_down(stack)

    def committed_then_lost(issuer_id: int, serial: int, cert_der: bytes, **kwargs: Any) -> Any:
        real(issuer_id, serial, cert_der, **kwargs)
        raise down

    monkeypatch.setattr(ledger, "mark_issued", committed_then_lost)
    result = stack.issue(ledger, [unique_name("final-ack-lost")])
    monkeypatch.undo()
    record = ledger.get(stack.issuer_id, result.serial)
    assert record is not None
    assert record.state is SerialState.ISSUED
    assert record.cert_der == result.certificate.public_bytes(Encoding.DER)
    assert journal(ledger, stack.issuer_id, result.serial) == [
        "reserved",
        "precert_signed",
        "issued",
    ]


# ---------------------------------------------------------------------------------- signer


class FailingSigner:
    """The issuing key, as a token that fails at its ``fail_at``-th signature (1-based)."""

    def __init__(self, signer: Signer, fail_at: int) -> None:
        self._signer = signer
        self._fail_at = fail_at
        self.calls = 0

    @property
    def algorithm(self) -> Any:
        return self._signer.algorithm

    @property
    def description(self) -> str:
        return "pkcs11:token=test;object=issuing-ca"

    def public_key(self) -> Any:
        return self._signer.public_key()

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        if self.calls == self._fail_at:
            raise SigningKeyError("the token failed to sign: CKR_DEVICE_ERROR")
        return self._signer.sign(data)

    def private_key(self) -> None:
        return None  # as with a token: builders sign through sign()

    def close(self) -> None:
        pass


def test_a_signer_failure_at_the_precertificate_signs_nothing_and_frees_the_request(
    stack: Stack, ledger: Ledger
) -> None:
    before = stack.tree_sizes()
    signer = FailingSigner(stack.signer, fail_at=1)
    request = request_for([unique_name("signer-precert")], request_id=unique_name("order"))
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, request, signer=signer)
    serial = caught.value.serial
    assert serial is not None
    assert caught.value.message == (
        "the token failed to sign: CKR_DEVICE_ERROR. The precertificate was not signed and "
        f"nothing left the CA (serial {serial:x} is never_signed)"
    )
    assert stack.tree_sizes() == before
    record = ledger.get(stack.issuer_id, serial)
    assert record is not None
    assert record.state is SerialState.NEVER_SIGNED
    assert journal(ledger, stack.issuer_id, serial) == ["reserved", "never_signed"]
    # The order is free again at once: a retry gets a new serial (no wait for recover).
    retry = stack.issue(ledger, request)
    assert retry.serial != serial


def test_a_lint_crash_signs_nothing_and_frees_the_request(
    stack: Stack, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctstatus.ca import issuance

    def crash(der: bytes) -> tuple[str, list[Finding]]:
        raise ValueError("pkilint: unexpected end of substrate")

    monkeypatch.setattr(issuance, "lint_certificate", crash)
    request = request_for([unique_name("lint-crash")], request_id=unique_name("order"))
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, request)
    monkeypatch.undo()
    serial = caught.value.serial
    assert serial is not None
    assert caught.value.message == (
        "pkilint: unexpected end of substrate. The precertificate was not signed and nothing "
        f"left the CA (serial {serial:x} is never_signed)"
    )
    assert journal(ledger, stack.issuer_id, serial) == ["reserved", "never_signed"]
    assert stack.issue(ledger, request).serial != serial


def test_a_signer_failure_at_the_final_certificate_abandons_the_logged_precertificate(
    stack: Stack, ledger: Ledger
) -> None:
    signer = FailingSigner(stack.signer, fail_at=2)
    with pytest.raises(IssuanceError) as caught:
        stack.issue(ledger, [unique_name("signer-final")], signer=signer)
    serial = caught.value.serial
    assert serial is not None
    assert caught.value.message == abandoned_message(
        "the token failed to sign: CKR_DEVICE_ERROR", serial
    )
    held = stack.precerts_in_logs()[serial]
    assert len(held) >= 2
    expect_abandoned_and_revoked(stack, ledger, serial, logs=list(held))


def test_every_serial_of_this_module_is_consistent(stack: Stack, ledger: Ledger) -> None:
    """Across all the failures above: answered serials have signed evidence, logged ones are
    answered."""
    assert_every_serial_consistent(stack, ledger)
    assert_logged_precerts_answered(stack, ledger)
