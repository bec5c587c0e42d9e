"""The success path over real logs, on SQLite and PostgreSQL: what the ledger and the logs hold.

Peers (openssl, pkilint, certspotter, ``ctstatus ct verify-scts``) judge the result in
``test_peers.py``.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ct.sct import tbs_for_ct, verify_sct
from ctstatus.ledger import Ledger, SerialState

from .conftest import Stack, assert_logged_precerts_answered, journal, unique_name


def test_issued_certificate_has_verified_scts_of_two_operators_and_the_ledger_has_both(
    stack: Stack, ledger: Ledger
) -> None:
    name = unique_name("success")
    result = stack.issue(ledger, [name, f"www.{name}"])

    record = ledger.get(stack.issuer_id, result.serial)
    assert record is not None
    assert record.state is SerialState.ISSUED
    assert record.precert_der == result.precertificate.public_bytes(Encoding.DER)
    assert record.cert_der == result.certificate.public_bytes(Encoding.DER)
    assert journal(ledger, stack.issuer_id, result.serial) == [
        "reserved",
        "precert_signed",
        "issued",
    ]
    # The final certificate is the precertificate, poison out and SCT list in.
    assert tbs_for_ct(result.certificate) == tbs_for_ct(result.precertificate)

    # SCTs of at least two distinct operators, each valid for the final certificate under the
    # key the log list gives for its log.
    log_list = stack.log_list()
    operators = set()
    for logged in result.scts:
        log = log_list.by_id(logged.sct.log_id)
        assert log is not None
        assert (log.description, log.operator) == (logged.log_name, logged.operator)
        operators.add(log.operator)
        verify_sct(
            logged.sct,
            log.public_key(),
            certificate=result.certificate,
            issuer=stack.issuing_certificate,
            now_ms=int(result.certificate.not_valid_before_utc.timestamp() * 1000) + 3_600_000,
        )
    assert len(result.scts) >= 2
    assert len(operators) == len(result.scts)

    # Every log that gave an SCT holds exactly the precertificate the ledger stored.
    logged = assert_logged_precerts_answered(stack, ledger)
    holders = {name.split()[1] for name in (s.log_name for s in result.scts)}
    assert holders <= set(logged[result.serial])
    assert set(result.timings) == {"reserve", "lint", "precertificate", "ct", "certificate"}
    steps = list(result.timings.values())
    assert steps == sorted(steps)
