"""The responder and refresher against a real ledger (SQLite and PostgreSQL), clock injected.

What is proven here: each ledger state gets the answer DESIGN.md gives it; answers come from
memory once known and change as soon as the feed reports a change (invariant 3); stored
responses are only served while they agree with the ledger; responses are refreshed at
half-life; signing is capped; a broken database is ``tryLater``, never an exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ctstatus.clock import FrozenClock
from ctstatus.errors import LedgerError
from ctstatus.ledger import RevocationReason, SerialState
from ctstatus.ledger.schema import ocsp_responses
from ctstatus.status import db
from ctstatus.status.identities import CaIdentities
from ctstatus.status.issuers import cert_id_hashes
from ctstatus.status.responder import ResponderSettings
from ctstatus.status.service import StatusService

HASHES = {
    "sha1": hashes.SHA1(),  # noqa: S303 - OCSP CertIDs
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
}


def request_for(issuer: Any, serial: int, hash_name: str = "sha1") -> bytes:
    """A nonce-less request for ``serial`` of ``issuer`` with a ``hash_name`` CertID."""
    hashes_ = cert_id_hashes(issuer.issuer, hash_name)
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(hashes_.name_hash, hashes_.key_hash, serial, HASHES[hash_name])
        .build()
        .public_bytes(Encoding.DER)
    )


def ask(service: StatusService, der: bytes) -> tuple[ocsp.OCSPResponse, dict[bytes, bytes]]:
    body, headers = asyncio.run(service.responder.respond(der))
    return ocsp.load_der_ocsp_response(body), dict(headers)


def status_of(service: StatusService, issuer: Any, serial: int, hash_name: str = "sha1") -> str:
    response, _ = ask(service, request_for(issuer, serial, hash_name))
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return response.response_status.name.lower()
    return response.certificate_status.name.lower()


@pytest.fixture
def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the responder's database reads (the miss path)."""
    calls: list[int] = []
    original = db.serial_with_responses

    def counting(*args: Any) -> Any:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr("ctstatus.status.responder.serial_with_responses", counting)
    return calls


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (SerialState.RESERVED, "unauthorized"),
        (SerialState.PRECERT_SIGNED, "good"),
        (SerialState.ISSUED, "good"),
        (SerialState.ABANDONED, "good"),
        (SerialState.NEVER_SIGNED, "unauthorized"),
        (SerialState.REVOKED, "revoked"),
    ],
)
def test_each_state_gets_its_answer(
    make_issuer: Callable[..., Any], make_service: Any, state: SerialState, expected: str
) -> None:
    issuer = make_issuer()
    service = make_service([issuer])
    record = issuer.serial(state)
    for hash_name in ("sha1", "sha256", "sha384"):
        assert status_of(service, issuer, record.serial, hash_name) == expected


def test_response_profile_echoes_the_request(make_issuer: Any, make_service: Any) -> None:
    issuer = make_issuer()
    service = make_service([issuer], validity=timedelta(hours=96))
    record = issuer.serial(SerialState.REVOKED, reason=RevocationReason.KEY_COMPROMISE)
    for hash_name in ("sha1", "sha256"):
        response, headers = ask(service, request_for(issuer, record.serial, hash_name))
        assert response.hash_algorithm.name == hash_name
        assert response.serial_number == record.serial
        assert response.responder_key_hash == issuer.issuer.key_hash_sha1  # byKey, the CA's key
        assert response.responder_name is None
        assert len(list(response.responses)) == 1
        assert response.certificates == []  # the CA signs: no certs
        assert response.revocation_reason is x509.ReasonFlags.key_compromise
        assert response.revocation_time_utc == record.revoked_at
        assert response.this_update_utc == response.produced_at_utc
        assert response.next_update_utc - response.this_update_utc == timedelta(
            hours=96, seconds=-1
        )  # 96 h counted inclusively (BR §4.9.9)
        assert len(response.extensions) == 0  # no nonce, no extensions
        issuer.certificate.public_key().verify(
            response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
        )
        assert headers[b"content-type"] == b"application/ocsp-response"
        assert headers[b"cache-control"] == b"max-age=3600, public, no-transform, must-revalidate"
        assert headers[b"etag"].startswith(b'"')
        assert len(headers[b"etag"]) == 66
        assert b"expires" in headers
        assert b"last-modified" in headers


def test_unspecified_reason_is_left_out(make_issuer: Any, make_service: Any) -> None:
    issuer = make_issuer()
    service = make_service([issuer])
    record = issuer.serial(SerialState.REVOKED, reason=RevocationReason.UNSPECIFIED)
    response, _ = ask(service, request_for(issuer, record.serial))
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is None


def test_unauthorized_is_the_unsigned_error_and_not_cached_by_http(
    make_issuer: Any, make_service: Any
) -> None:
    issuer, other = make_issuer(), make_issuer()
    service = make_service([issuer])
    body, headers = asyncio.run(service.responder.respond(request_for(issuer, 12345)))
    assert body == bytes.fromhex("3003 0a01 06")
    assert dict(headers)[b"cache-control"] == b"no-cache"
    # an issuer the ledger knows but nobody signs for here, and an issuer nobody knows
    body, _ = asyncio.run(service.responder.respond(request_for(other, 12345)))
    assert body == bytes.fromhex("30030a0106")


def test_several_issuers_each_signed_by_its_own_key(make_issuer: Any, make_service: Any) -> None:
    one, two = make_issuer(), make_issuer()
    service = make_service([one, two])
    for issuer in (one, two):
        record = issuer.serial(SerialState.ISSUED)
        response, _ = ask(service, request_for(issuer, record.serial, "sha256"))
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert response.responder_key_hash == issuer.issuer.key_hash_sha1
        assert response.issuer_key_hash == issuer.issuer.key_hash_sha256
        # the other issuer's CertID for the same serial is not this serial
        other = two if issuer is one else one
        assert status_of(service, other, record.serial) == "unauthorized"


def test_answers_come_from_memory_once_known(
    make_issuer: Any, make_service: Any, counted_reads: list[int]
) -> None:
    issuer = make_issuer()
    service = make_service([issuer])
    good = issuer.serial(SerialState.ISSUED)
    unknown = 987654321
    for _ in range(5):
        assert status_of(service, issuer, good.serial) == "good"
        assert status_of(service, issuer, unknown) == "unauthorized"
    assert len(counted_reads) == 2


def test_revocation_reaches_memory_through_the_feed(
    make_issuer: Any, make_service: Any, counted_reads: list[int]
) -> None:
    issuer = make_issuer()
    service = make_service([issuer])
    record = issuer.serial(SerialState.ISSUED)
    assert status_of(service, issuer, record.serial) == "good"
    issuer.ledger.revoke(issuer.id, record.serial, RevocationReason.KEY_COMPROMISE, actor="test")
    keys = asyncio.run(service.poll_once())
    assert (issuer.id, record.serial) in keys
    reads = len(counted_reads)
    assert status_of(service, issuer, record.serial) == "revoked"
    assert status_of(service, issuer, record.serial, "sha256") == "revoked"
    assert len(counted_reads) == reads  # the refresher signed both at once, into memory
    stored = _stored(service.engine, record.id)
    assert {s.hash_algorithm for s in stored} == {"sha1", "sha256"}
    assert {s.serial_state for s in stored} == {SerialState.REVOKED}


def test_precertificate_signed_after_unauthorized_turns_good(
    make_issuer: Any, make_service: Any
) -> None:
    """An unauthorized answer cached in memory must not outlive the precertificate."""
    issuer = make_issuer()
    service = make_service([issuer])
    record = issuer.serial(SerialState.RESERVED)
    assert status_of(service, issuer, record.serial) == "unauthorized"
    issuer.ledger.mark_precert_signed(
        issuer.id, record.serial, _precert(issuer, record.serial), actor="test"
    )
    asyncio.run(service.poll_once())
    assert status_of(service, issuer, record.serial) == "good"


def _precert(issuer: Any, serial: int) -> bytes:
    from ctstatus.keys.assemble import sign_certificate

    builder = issuer._builder(serial, issuer.ledger_now() - timedelta(hours=1), 90)
    return sign_certificate(
        builder.add_extension(x509.PrecertPoison(), critical=True), issuer.signer
    ).public_bytes(Encoding.DER)


def _stored(engine: sa.Engine, serial_id: int) -> list[db.StoredResponse]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ocsp_responses).where(ocsp_responses.c.serial_id == serial_id)
        ).mappings()
        return [db.StoredResponse.from_row(r) for r in rows]


def test_a_stored_response_that_contradicts_the_ledger_is_never_served(
    make_issuer: Any, make_service: Any
) -> None:
    """A responder that missed the change (no feed) finds a stored 'good' for a revoked serial."""
    issuer = make_issuer()
    first = make_service([issuer])
    record = issuer.serial(SerialState.ISSUED)
    assert asyncio.run(first.sweep_all()) >= 2
    issuer.ledger.revoke(issuer.id, record.serial, RevocationReason.SUPERSEDED, actor="test")
    assert {s.serial_state for s in _stored(first.engine, record.id)} == {SerialState.ISSUED}
    second = make_service([issuer])  # its cache is empty: it reads the ledger and the store
    assert status_of(second, issuer, record.serial) == "revoked"


def test_stored_responses_are_served_without_signing(
    make_issuer: Any, make_service: Any, frozen: FrozenClock
) -> None:
    issuer = make_issuer(frozen)
    signer = make_service([issuer], frozen)
    record = issuer.serial(SerialState.ABANDONED)
    asyncio.run(signer.sweep_all())
    stored = {s.hash_algorithm: s for s in _stored(signer.engine, record.id)}
    nokey = StatusService(signer.engine, frozen, CaIdentities({}))
    nokey.prepare()
    body, _ = asyncio.run(nokey.responder.respond(request_for(issuer, record.serial, "sha256")))
    assert body == stored["sha256"].response_der


def test_refresh_at_half_life(make_issuer: Any, make_service: Any, frozen: FrozenClock) -> None:
    issuer = make_issuer(frozen)
    service = make_service([issuer], frozen, validity=timedelta(hours=96))
    record = issuer.serial(SerialState.ISSUED)
    asyncio.run(service.sweep_all())
    first = {s.hash_algorithm: s for s in _stored(service.engine, record.id)}
    assert first["sha1"].refresh_at == first["sha1"].this_update + timedelta(hours=48, seconds=-0.5)
    response, _ = ask(service, request_for(issuer, record.serial))
    assert response.this_update_utc == first["sha1"].this_update
    frozen.advance(hours=47)
    assert asyncio.run(service.sweep_once()) == 0  # not due yet
    frozen.advance(hours=1, seconds=1)
    assert asyncio.run(service.sweep_all()) >= 2
    second = {s.hash_algorithm: s for s in _stored(service.engine, record.id)}
    assert second["sha1"].this_update == frozen.now
    response, _ = ask(service, request_for(issuer, record.serial))
    assert response.this_update_utc == frozen.now  # memory was updated by the sweep


def test_ten_day_validity_refreshes_within_four_days(
    make_issuer: Any, make_service: Any, frozen: FrozenClock
) -> None:
    issuer = make_issuer(frozen)
    service = make_service([issuer], frozen, validity=timedelta(days=10))
    record = issuer.serial(SerialState.ISSUED)
    asyncio.run(service.sweep_all())
    stored = _stored(service.engine, record.id)[0]
    assert stored.next_update - stored.this_update == timedelta(days=10, seconds=-1)
    assert stored.refresh_at - stored.this_update <= timedelta(days=4)  # BR §4.9.9
    assert stored.next_update - stored.refresh_at >= timedelta(hours=8)


def test_memory_stops_serving_a_response_after_its_refresh_time(
    make_issuer: Any, make_service: Any, frozen: FrozenClock, counted_reads: list[int]
) -> None:
    """Without a refresher, the responder re-signs on demand once a response is due."""
    issuer = make_issuer(frozen)
    service = make_service([issuer], frozen, refresher=False)
    record = issuer.serial(SerialState.ISSUED)
    first, _ = ask(service, request_for(issuer, record.serial))
    frozen.advance(hours=49)
    second, _ = ask(service, request_for(issuer, record.serial))
    assert len(counted_reads) == 2
    assert second.this_update_utc == first.this_update_utc + timedelta(hours=49)


def test_live_signing_is_capped(make_issuer: Any, make_service: Any) -> None:
    issuer = make_issuer()
    service = make_service([issuer], responder=ResponderSettings(live_signing_limit=0))
    record = issuer.serial(SerialState.ISSUED)
    assert status_of(service, issuer, record.serial) == "try_later"
    assert status_of(service, issuer, 424242) == "unauthorized"  # needs no signature


def test_concurrent_misses_share_one_read(
    make_issuer: Any, make_service: Any, counted_reads: list[int]
) -> None:
    issuer = make_issuer()
    service = make_service([issuer])
    record = issuer.serial(SerialState.ISSUED)
    der = request_for(issuer, record.serial)

    async def many() -> list[bytes]:
        replies = await asyncio.gather(*(service.responder.respond(der) for _ in range(20)))
        return [body for body, _ in replies]

    bodies = asyncio.run(many())
    assert len(set(bodies)) == 1
    assert len(counted_reads) == 1


def test_database_failure_is_try_later(
    make_issuer: Any, make_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = make_issuer()
    service = make_service([issuer])

    def down(*args: Any) -> Any:
        raise LedgerError("cannot read the ledger: connection refused")

    monkeypatch.setattr("ctstatus.status.responder.serial_with_responses", down)
    assert status_of(service, issuer, 5555) == "try_later"

    def bug(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("ctstatus.status.responder.serial_with_responses", bug)
    assert status_of(service, issuer, 5555) == "internal_error"


def test_new_issuers_are_learned_from_the_feed(
    make_issuer: Any, make_service: Any, status_engine: sa.Engine
) -> None:
    first = make_issuer()
    service = make_service([first])
    late = make_issuer()
    record = late.serial(SerialState.ISSUED)
    assert status_of(service, late, record.serial) == "unauthorized"  # not known yet
    asyncio.run(service.poll_once())
    assert service.issuers.by_id(late.id) is not None
    # known now, but nobody here holds its key, and nothing is stored: tryLater, never good
    assert status_of(service, late, record.serial) == "try_later"


def test_sqlite_memory_is_never_behind_the_ledger(
    make_issuer: Any, make_service: Any, status_engine: sa.Engine
) -> None:
    """On SQLite each lookup first checks PRAGMA data_version: no poll is needed at all.

    (On PostgreSQL the same happens within milliseconds, through NOTIFY; here: one poll.)
    """
    issuer = make_issuer()
    service = make_service([issuer])
    record = issuer.serial(SerialState.ISSUED)
    assert status_of(service, issuer, record.serial) == "good"
    issuer.ledger.revoke(issuer.id, record.serial, RevocationReason.KEY_COMPROMISE, actor="test")
    if status_engine.dialect.name != "sqlite":
        asyncio.run(service.apply_changes())
    assert status_of(service, issuer, record.serial) == "revoked"
