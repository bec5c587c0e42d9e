"""CA certificates as serials of their issuer (issue #13): recorded without a precertificate,
answerable, revocable; the database refuses the same shortcut for subscriber serials; revision
0003 backfills the CA certificates an existing ledger already has, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ctstatus.clock import FrozenClock
from ctstatus.ledger import (
    CertificateKind,
    DuplicateSerial,
    Ledger,
    RevocationReason,
    SerialState,
    create_ledger_engine,
    ensure_current,
    migrate,
)
from ctstatus.ledger.schema import events, serials
from ctstatus.status.answer import Verdict, verdict

from .conftest import T0, TestCA, make_test_ca


def subordinate(root: TestCA, serial: int | None = None, name: str = "Sub CA") -> x509.Certificate:
    """A CA certificate ``root`` signs (what `ctstatus init` makes for the issuing CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(root.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(T0 + timedelta(days=1800))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(root.key, hashes.SHA256())
    )


def _journal(ledger: Ledger, issuer_id: int, serial: int) -> list[tuple[str, str | None]]:
    return [
        (e.action, None if e.to_state is None else e.to_state.value)
        for e in ledger.events(issuer_id=issuer_id, serial=serial)
    ]


def test_a_ca_certificate_is_recorded_issued_in_one_step_and_can_be_revoked(
    ledger: Ledger, clock: FrozenClock
) -> None:
    root = make_test_ca()
    issuer = ledger.add_issuer(
        f"root-{root.certificate.serial_number % 10**8}", root.certificate, actor="test"
    )
    sub = subordinate(root)
    record = ledger.record_certificate(issuer.id, sub, CertificateKind.CA, actor="test")
    assert record.state is SerialState.ISSUED
    assert record.kind is CertificateKind.CA
    assert record.cert_der == sub.public_bytes(Encoding.DER)
    assert record.precert_der is None
    assert record.not_after == sub.not_valid_after_utc
    assert verdict(record.state) is Verdict.GOOD
    assert _journal(ledger, issuer.id, sub.serial_number) == [
        ("reserve", "reserved"),
        ("issued", "issued"),
    ]
    # Idempotent: the same certificate again changes nothing.
    again = ledger.record_certificate(issuer.id, sub, CertificateKind.CA, actor="test")
    assert again == record
    assert len(ledger.events(issuer_id=issuer.id, serial=sub.serial_number)) == 2
    # Another certificate with that serial is refused.
    with pytest.raises(DuplicateSerial):
        ledger.record_certificate(
            issuer.id, subordinate(root, sub.serial_number, "Other"), CertificateKind.CA, actor="t"
        )
    revoked = ledger.revoke(
        issuer.id, sub.serial_number, RevocationReason.KEY_COMPROMISE, actor="t"
    )
    assert revoked.state is SerialState.REVOKED
    assert revoked.kind is CertificateKind.CA


def test_only_certificates_the_issuer_signed_and_never_subscriber_ones(ledger: Ledger) -> None:
    root, other = make_test_ca(), make_test_ca()
    issuer = ledger.add_issuer(
        f"root-{root.certificate.serial_number % 10**8}", root.certificate, actor="test"
    )
    with pytest.raises(ValueError, match="was not signed by issuer"):
        ledger.record_certificate(issuer.id, subordinate(other), CertificateKind.CA, actor="t")
    with pytest.raises(ValueError, match="through a precertificate"):
        ledger.record_certificate(
            issuer.id, subordinate(root), CertificateKind.SUBSCRIBER, actor="t"
        )
    assert ledger.serials(issuer_id=issuer.id) == []


def test_the_database_refuses_reserved_to_issued_for_a_subscriber_serial(
    ledger_engine: sa.Engine, ledger: Ledger
) -> None:
    """The shortcut is only for kinds without a precertificate; SQL cannot take it either."""
    root = make_test_ca()
    issuer = ledger.add_issuer(
        f"root-{root.certificate.serial_number % 10**8}", root.certificate, actor="test"
    )
    serial = x509.random_serial_number()
    ledger.reserve(
        issuer.id, serial, not_before=T0, not_after=T0 + timedelta(days=90), crl_shard=0, actor="t"
    )
    with pytest.raises(sa.exc.IntegrityError), ledger_engine.begin() as conn:
        conn.execute(
            sa.update(serials)
            .where(serials.c.issuer_id == issuer.id, serials.c.serial == f"{serial:x}")
            .values(state="issued", cert_der=root.cert(serial))
        )
    # And a CA row can never get a precertificate.
    sub = subordinate(root)
    ledger.record_certificate(issuer.id, sub, CertificateKind.CA, actor="test")
    with pytest.raises(sa.exc.IntegrityError), ledger_engine.begin() as conn:
        conn.execute(
            sa.update(serials)
            .where(serials.c.issuer_id == issuer.id, serials.c.serial == f"{sub.serial_number:x}")
            .values(state="revoked", precert_der=b"\x30\x00", revoked_at=T0, revocation_reason=0)
        )


def test_revision_0003_backfills_the_ca_certificates_of_an_existing_ledger(
    fresh_ledger_url: str,
) -> None:
    root = make_test_ca("Backfill Root")
    sub = subordinate(root, name="Backfill Issuing CA")
    engine = create_ledger_engine(fresh_ledger_url)
    try:
        migrate(engine, "0002")
        old = Ledger(engine, FrozenClock(T0), check=False)  # a ledger made before 0003
        root_issuer = old.add_issuer("root-ca", root.certificate, actor="init")
        sub_issuer = old.add_issuer("issuing-ca", sub, actor="init")
        leaf = x509.random_serial_number()
        # Insert the subscriber row the way 0002's code did (no kind column yet).
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO serials (issuer_id, serial, state, not_before, not_after, "
                    "crl_shard, created_at, updated_at) VALUES (:i, :s, 'reserved', :nb, :na, 0, "
                    ":t, :t)"
                ),
                {
                    "i": sub_issuer.id,
                    "s": f"{leaf:x}",
                    "nb": T0,
                    "na": T0 + timedelta(days=90),
                    "t": T0,
                },
            )
            leaf_id = conn.scalar(
                sa.text("SELECT id FROM serials WHERE serial = :s"), {"s": f"{leaf:x}"}
            )
            conn.execute(
                sa.insert(events).values(
                    issuer_id=sub_issuer.id,
                    serial_id=leaf_id,
                    at=T0,
                    actor="issuance",
                    action="reserve",
                    from_state=None,
                    to_state="reserved",
                    detail="{}",
                )
            )

        migrate(engine)
        ensure_current(engine)
        ledger = Ledger(engine, FrozenClock(T0 + timedelta(minutes=1)))
        record = ledger.get(root_issuer.id, sub.serial_number)
        assert record is not None
        assert record.state is SerialState.ISSUED
        assert record.kind is CertificateKind.CA
        assert record.cert_der == sub.public_bytes(Encoding.DER)
        backfill = ledger.events(issuer_id=root_issuer.id, serial=sub.serial_number)
        assert [(e.action, e.actor) for e in backfill] == [
            ("reserve", "ledger-migrate-0003"),
            ("issued", "ledger-migrate-0003"),
        ]
        # The root itself is nobody's serial; the subscriber row kept its id, kind and journal.
        assert ledger.get(root_issuer.id, root.certificate.serial_number) is None
        kept = ledger.get(sub_issuer.id, leaf)
        assert kept is not None
        assert (kept.id, kept.kind, kept.state) == (
            leaf_id,
            CertificateKind.SUBSCRIBER,
            SerialState.RESERVED,
        )
        assert [e.action for e in ledger.events(issuer_id=sub_issuer.id, serial=leaf)] == [
            "reserve"
        ]
        # The migrated ledger works as a new one: the shortcut still needs a non-subscriber.
        ledger.mark_never_signed(sub_issuer.id, leaf, "test", actor="t")
        revoked = ledger.revoke(
            root_issuer.id, sub.serial_number, RevocationReason.KEY_COMPROMISE, actor="t"
        )
        assert revoked.state is SerialState.REVOKED
        # Recording it again (as init would) is a no-op; migrating again backfills nothing.
        migrate(engine)
        assert len(ledger.events(issuer_id=root_issuer.id, serial=sub.serial_number)) == 3
    finally:
        engine.dispose()
