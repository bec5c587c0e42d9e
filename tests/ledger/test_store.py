"""The Ledger API: issuers, reservations, transitions, journal and queries."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.errors import LedgerError
from ctstatus.ledger import (
    SERIAL_LIMIT,
    DuplicateSerial,
    InvalidSerial,
    InvalidTransition,
    IssuerConflict,
    IssuerHashes,
    RequestHasSerial,
    RevocationReason,
    SerialState,
    UnknownIssuer,
    UnknownSerial,
)
from ctstatus.ledger.schema import serials

S = SerialState


# ------------------------------------------------------------------------------------ issuers


def test_add_issuer_stores_the_hashes(ledger, make_ca, clock) -> None:
    ca = make_ca()
    issuer = ledger.add_issuer("issuing-ca-2026x", ca.certificate, actor="init")
    hashes_ = IssuerHashes.from_certificate(ca.certificate)
    assert issuer.name == "issuing-ca-2026x"
    assert issuer.certificate_der == ca.certificate.public_bytes(Encoding.DER)
    assert issuer.certificate == ca.certificate
    for field in vars(hashes_):
        assert getattr(issuer, field) == getattr(hashes_, field), field
    assert issuer.created_at == clock.now
    assert issuer.created_at.tzinfo is UTC
    assert ledger.issuer(issuer.id) == issuer
    assert ledger.issuer_by_name("issuing-ca-2026x") == issuer
    assert issuer in ledger.issuers()
    [event] = ledger.events(issuer_id=issuer.id)
    assert (event.action, event.actor, event.serial_id, event.serial) == (
        "issuer_added",
        "init",
        None,
        None,
    )
    assert event.detail["cert_sha256"] == hashes_.cert_sha256.hex()


def test_add_issuer_is_idempotent(ledger, make_ca) -> None:
    ca = make_ca()
    first = ledger.add_issuer("ca-idem", ca.certificate, actor="init")
    assert ledger.add_issuer("ca-idem", ca.certificate, actor="init") == first
    assert len(ledger.events(issuer_id=first.id)) == 1


def test_issuer_conflicts(ledger, make_ca) -> None:
    ca, other = make_ca(), make_ca()
    ledger.add_issuer("ca-conflict", ca.certificate, actor="init")
    with pytest.raises(IssuerConflict, match="already used by another certificate"):
        ledger.add_issuer("ca-conflict", other.certificate, actor="init")
    with pytest.raises(IssuerConflict, match="already registered as issuer 'ca-conflict'"):
        ledger.add_issuer("ca-conflict-2", ca.certificate, actor="init")
    # Same subject and key, new certificate (e.g. renewed validity): one CertID, so one issuer.
    renewed = (
        x509.CertificateBuilder()
        .subject_name(ca.certificate.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(ca.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca.certificate.not_valid_before_utc)
        .not_valid_after(ca.certificate.not_valid_after_utc + timedelta(days=1))
        .sign(ca.key, hashes.SHA256())
    )
    with pytest.raises(IssuerConflict, match="same subject and key"):
        ledger.add_issuer("ca-conflict-3", renewed, actor="init")


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "has space", "a" * 65, "ünï"])
def test_issuer_names_are_slugs(ledger, make_ca, name: str) -> None:
    with pytest.raises(LedgerError, match="invalid issuer name"):
        ledger.add_issuer(name, make_ca().certificate, actor="init")


def test_issuer_by_key_hash(ledger, make_ca) -> None:
    ca = make_ca(rsa_key=True)
    issuer = ledger.add_issuer("ca-rsa-lookup", ca.certificate, actor="init")
    assert ledger.issuer_by_key_hash("sha1", issuer.name_hash_sha1, issuer.key_hash_sha1) == issuer
    assert (
        ledger.issuer_by_key_hash("sha256", issuer.name_hash_sha256, issuer.key_hash_sha256)
        == issuer
    )
    assert ledger.issuer_by_key_hash("sha256", issuer.name_hash_sha256, issuer.spki_sha256) is None
    assert (
        ledger.issuer_by_key_hash("sha1", issuer.name_hash_sha256, issuer.key_hash_sha256) is None
    )
    with pytest.raises(ValueError, match="unsupported"):
        ledger.issuer_by_key_hash("md5", b"", b"")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- reservation


def test_reserve_round_trip(ledger, issuer, clock) -> None:
    serial = issuer.new_serial()
    nb = datetime(2026, 7, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))  # 12:00 UTC
    record = ledger.reserve(
        issuer.id,
        serial,
        not_before=nb,
        not_after=nb + timedelta(days=90),
        crl_shard=17,
        tbs_der=b"\x30\x03tbs",
        request_id="order-1",
        actor="issuance",
    )
    assert record == ledger.get(issuer.id, serial)
    assert (record.serial, record.serial_hex, record.state) == (serial, f"{serial:x}", S.RESERVED)
    assert (record.crl_shard, record.tbs_der, record.request_id) == (17, b"\x30\x03tbs", "order-1")
    assert record.not_before == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    for ts in (record.not_before, record.not_after, record.created_at, record.updated_at):
        assert ts.tzinfo is UTC
    assert record.created_at == record.updated_at == clock.now
    assert record.precert_der is record.cert_der is record.revoked_at is None


def test_serials_are_stored_as_canonical_hex(ledger, issuer, ledger_engine) -> None:
    for serial in (1, 0xABCDEF, SERIAL_LIMIT - 1):
        issuer.reserve(serial)
        with ledger_engine.connect() as conn:
            stored = conn.scalar(
                sa.select(serials.c.serial).where(
                    serials.c.issuer_id == issuer.id, serials.c.serial == format(serial, "x")
                )
            )
        assert stored == format(serial, "x")
        assert ledger.get(issuer.id, serial).serial == serial
    assert ledger.get(issuer.id, SERIAL_LIMIT - 1).serial_hex == "7" + "f" * 39


@pytest.mark.parametrize("bad", [0, -1, SERIAL_LIMIT, 2**160])
def test_reserve_refuses_out_of_range_serials(issuer, ledger, bad: int) -> None:
    with pytest.raises(InvalidSerial):
        issuer.reserve(bad)
    assert ledger.get(issuer.id, bad) is None  # lookups of impossible serials just miss


def test_reserve_argument_checks(issuer) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        issuer.reserve(not_before=datetime(2026, 7, 1))
    with pytest.raises(ValueError, match="before not_after"):
        issuer.reserve(not_after=issuer.not_before)
    with pytest.raises(ValueError, match="crl_shard"):
        issuer.reserve(crl_shard=-1)
    with pytest.raises(ValueError, match="request_id"):
        issuer.reserve(request_id="")
    with pytest.raises(ValueError, match="actor"):
        issuer.reserve(actor="")


def test_duplicate_serial(ledger, issuer, make_ca) -> None:
    serial = issuer.reserve().serial
    with pytest.raises(DuplicateSerial) as info:
        issuer.reserve(serial)
    assert (info.value.issuer_id, info.value.serial) == (issuer.id, serial)
    other = ledger.add_issuer("ca-dup-other", make_ca().certificate, actor="init")
    ledger.reserve(  # the same number under another issuer is another serial
        other.id,
        serial,
        not_before=issuer.not_before,
        not_after=issuer.not_after,
        crl_shard=0,
        actor="test",
    )


def test_unknown_issuer_and_serial(ledger, issuer) -> None:
    with pytest.raises(UnknownIssuer):
        ledger.reserve(
            10**9,
            1,
            not_before=issuer.not_before,
            not_after=issuer.not_after,
            crl_shard=0,
            actor="test",
        )
    serial = issuer.new_serial()
    with pytest.raises(UnknownSerial):
        ledger.mark_abandoned(issuer.id, serial, "x", actor="test")
    assert ledger.get(issuer.id, serial) is None


def test_a_request_keeps_its_serial_until_released(ledger, issuer) -> None:
    """Invariant 4: a retry cannot take a new serial while the old one is live."""
    first = issuer.reserve(request_id="order-42")
    ledger.mark_precert_signed(issuer.id, first.serial, issuer.ca.precert(first.serial), actor="t")
    with pytest.raises(RequestHasSerial) as info:
        issuer.reserve(request_id="order-42")
    assert info.value.existing.serial == first.serial
    assert info.value.existing.state is S.PRECERT_SIGNED
    ledger.mark_abandoned(issuer.id, first.serial, "ct timeout", actor="t")
    second = issuer.reserve(request_id="order-42")
    assert [r.serial for r in ledger.by_request("order-42")] == [first.serial, second.serial]


# ------------------------------------------------------------------------------- transitions


def test_full_lifecycle_and_journal(ledger, issuer, clock) -> None:
    serial = issuer.new_serial()
    issuer.reserve(serial)
    clock.advance(seconds=1)
    precert = issuer.ca.precert(serial)
    assert (
        ledger.mark_precert_signed(issuer.id, serial, precert, actor="issuance").precert_der
        == precert
    )
    clock.advance(seconds=1)
    cert = issuer.ca.cert(serial)
    issued = ledger.mark_issued(issuer.id, serial, cert, actor="issuance")
    assert (issued.state, issued.cert_der, issued.updated_at) == (S.ISSUED, cert, clock.now)
    clock.advance(seconds=1)
    revoked = ledger.revoke(issuer.id, serial, RevocationReason.KEY_COMPROMISE, actor="cli:revoke")
    assert revoked.revoked_at == clock.now
    assert revoked.revocation_reason is RevocationReason.KEY_COMPROMISE
    assert revoked.created_at == clock.now - timedelta(seconds=3)

    journal = ledger.events(issuer_id=issuer.id, serial=serial)
    assert [(e.action, e.from_state, e.to_state, e.actor) for e in journal] == [
        ("reserve", None, S.RESERVED, "test"),
        ("precert_signed", S.RESERVED, S.PRECERT_SIGNED, "issuance"),
        ("issued", S.PRECERT_SIGNED, S.ISSUED, "issuance"),
        ("revoke", S.ISSUED, S.REVOKED, "cli:revoke"),
    ]
    assert [e.at for e in journal] == [clock.now - timedelta(seconds=s) for s in (3, 2, 1, 0)]
    assert journal[1].detail == {"precert_sha256": hashlib.sha256(precert).hexdigest()}
    assert journal[3].detail == {"reason": "keyCompromise", "revoked_at": clock.now.isoformat()}
    assert all(e.serial == serial and e.serial_id == revoked.id for e in journal)


def test_abandon_and_never_signed_record_the_cause(ledger, issuer) -> None:
    abandoned = issuer.drive_to(S.ABANDONED)
    never = issuer.drive_to(S.NEVER_SIGNED)
    assert ledger.events(issuer_id=issuer.id, serial=abandoned.serial)[-1].detail == {
        "cause": "ct quorum not met"
    }
    assert ledger.events(issuer_id=issuer.id, serial=never.serial)[-1].detail == {
        "cause": "lint failed"
    }
    assert never.precert_der is None


def test_invalid_transition_names_everything(ledger, issuer) -> None:
    record = issuer.drive_to(S.REVOKED)
    with pytest.raises(InvalidTransition) as info:
        ledger.revoke(issuer.id, record.serial, RevocationReason.KEY_COMPROMISE, actor="cli:revoke")
    assert (info.value.current, info.value.attempted) == (S.REVOKED, S.REVOKED)
    assert info.value.message == (
        f"serial {record.serial:x} of issuer {issuer.id} is revoked; it cannot become revoked"
    )
    assert ledger.get(issuer.id, record.serial) == record  # the reason did not change


def test_revocation_time_and_reason(ledger, issuer, clock) -> None:
    record = issuer.drive_to(S.ISSUED)
    with pytest.raises(ValueError, match="in the future"):
        ledger.revoke(
            issuer.id,
            record.serial,
            RevocationReason.UNSPECIFIED,
            revoked_at=clock.now + timedelta(seconds=1),
            actor="t",
        )
    with pytest.raises(ValueError, match="6"):
        ledger.revoke(issuer.id, record.serial, 6, actor="t")  # type: ignore[arg-type]
    compromised = clock.now - timedelta(days=3)
    revoked = ledger.revoke(
        issuer.id, record.serial, RevocationReason.KEY_COMPROMISE, revoked_at=compromised, actor="t"
    )
    assert revoked.revoked_at == compromised
    assert revoked.updated_at == clock.now


def test_stored_der_must_belong_to_the_serial(ledger, issuer, make_ca) -> None:
    serial = issuer.reserve().serial
    cases = [
        (ledger.mark_precert_signed, issuer.ca.precert(serial + 1), "has serial"),
        (ledger.mark_precert_signed, issuer.ca.cert(serial), "must carry the CT poison"),
        (ledger.mark_precert_signed, make_ca().precert(serial), "names another issuer"),
        (ledger.mark_precert_signed, b"\x30\x00", "not valid DER"),
    ]
    for method, der, message in cases:
        with pytest.raises(ValueError, match=message):
            method(issuer.id, serial, der, actor="t")
    ledger.mark_precert_signed(issuer.id, serial, issuer.ca.precert(serial), actor="t")
    with pytest.raises(ValueError, match="must not carry the CT poison"):
        ledger.mark_issued(issuer.id, serial, issuer.ca.precert(serial), actor="t")
    assert ledger.get(issuer.id, serial).state is S.PRECERT_SIGNED


# ------------------------------------------------------------------------------------ queries


def test_counts_and_listings(ledger, issuer, clock) -> None:
    made = {state: issuer.drive_to(state) for state in S}
    clock.advance(seconds=10)
    extra = issuer.drive_to(S.RESERVED)
    counts = ledger.count_by_state(issuer.id)
    assert counts == {**dict.fromkeys(S, 1), S.RESERVED: 2}
    assert ledger.count_by_state()[S.RESERVED] >= 2

    stuck = ledger.serials(state=[S.RESERVED, S.PRECERT_SIGNED], issuer_id=issuer.id)
    assert [r.serial for r in stuck] == [
        made[S.RESERVED].serial,
        made[S.PRECERT_SIGNED].serial,
        extra.serial,
    ]
    old = ledger.serials(state=S.RESERVED, issuer_id=issuer.id, updated_before=clock.now)
    assert [r.serial for r in old] == [made[S.RESERVED].serial]
    assert ledger.serials(state="reserved", issuer_id=issuer.id) == [*old, extra]
    assert len(ledger.serials(issuer_id=issuer.id)) == 7
    assert len(ledger.serials(issuer_id=issuer.id, limit=2)) == 2


def test_events_paging(ledger, issuer) -> None:
    issuer.drive_to(S.REVOKED)
    journal = ledger.events(issuer_id=issuer.id)
    assert len(journal) == 1 + 3  # issuer_added + reserve, precert_signed, revoke
    assert [e.id for e in journal] == sorted(e.id for e in journal)
    assert ledger.events(issuer_id=issuer.id, after_id=journal[1].id, limit=2) == journal[2:4]
    with pytest.raises(ValueError, match="needs issuer_id"):
        ledger.events(serial=1)
    assert ledger.events(issuer_id=issuer.id, serial=0) == []
