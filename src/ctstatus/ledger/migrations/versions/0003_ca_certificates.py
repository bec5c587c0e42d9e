"""CA certificates are serials of their issuer: ``serials.kind``, and the backfill.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Until now only subscriber certificates had ledger rows, so the root's OCSP could not answer for
the subordinate CA it signed and ``ctstatus revoke --issuer root-ca`` knew no serial to revoke.
A CA certificate has no precertificate (it is not logged to CT), so ``serials`` gains ``kind``
(``subscriber``, ``ca``, ``ocsp_responder``; existing rows are ``subscriber``) and the precert
CHECK becomes: subscriber rows as before; other kinds never carry a precertificate and are only
``reserved``, ``issued``, ``revoked`` or ``never_signed``. The triggers allow the one extra edge
``reserved -> issued`` for kinds other than subscriber (``migrate()`` re-installs them).

Backfill: every issuer certificate in the ledger that another registered issuer signed (the
issuing CA under the root) is recorded as an ``issued`` serial of that issuer, journaled with
the actor ``ledger-migrate-0003``. It is done here, in the upgrade's one transaction, rather
than at some later start-up: an operator who ran ``ctstatus ledger migrate`` expects the ledger
to be complete at once -- the root's OCSP answers ``good`` for the subordinate and it can be
revoked from that moment, with no other command that must first have run.

SQLite cannot change a CHECK in place, so ``serials`` is rebuilt (SQLite's documented 12-step
procedure; ``migrate()`` turns foreign keys off around the transaction and checks them before
the commit). Rows keep their ids, so ``events`` and ``ocsp_responses`` still point at them.
PostgreSQL alters the table in place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ledger import triggers
from ctstatus.ledger.timestamps import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTOR = "ledger-migrate-0003"

_TS = sa.DateTime(timezone=True)
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_STATES = "('reserved', 'precert_signed', 'issued', 'abandoned', 'never_signed', 'revoked')"
_WITH_PRECERT = "('precert_signed', 'issued', 'abandoned', 'revoked')"
_DIRECT_STATES = "('reserved', 'issued', 'never_signed', 'revoked')"
_REQUEST_HELD = "request_id IS NOT NULL AND state IN ('reserved', 'precert_signed', 'issued')"
_KIND_CHECK = "kind IN ('subscriber', 'ca', 'ocsp_responder')"
_PRECERT_CHECK = (
    f"(kind = 'subscriber' AND ((state IN {_WITH_PRECERT} AND precert_der IS NOT NULL)"
    f" OR (state NOT IN {_WITH_PRECERT} AND precert_der IS NULL)))"
    f" OR (kind <> 'subscriber' AND precert_der IS NULL AND state IN {_DIRECT_STATES})"
)
_COLUMNS = (
    "id, issuer_id, serial, state, request_id, tbs_der, precert_der, cert_der, not_before, "
    "not_after, crl_shard, revoked_at, revocation_reason, created_at, updated_at"
)


def upgrade() -> None:
    """Add ``serials.kind`` with the new CHECKs, then record the CA certificates."""
    bind = op.get_bind()
    triggers.drop(bind)  # re-installed by migrate(); the old ones refuse reserved -> issued
    if bind.dialect.name == "sqlite":
        _rebuild_serials_sqlite()
    else:
        op.add_column(
            "serials",
            sa.Column("kind", sa.String(16), nullable=False, server_default="subscriber"),
        )
        op.drop_constraint(op.f("ck_serials_precert"), "serials", type_="check")
        op.create_check_constraint(op.f("ck_serials_precert"), "serials", _PRECERT_CHECK)
        op.create_check_constraint(op.f("ck_serials_kind"), "serials", _KIND_CHECK)
    _backfill_ca_certificates(bind)


def _rebuild_serials_sqlite() -> None:
    op.create_table(
        "_serials_0003",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(255), nullable=True),
        sa.Column("tbs_der", sa.LargeBinary(), nullable=True),
        sa.Column("precert_der", sa.LargeBinary(), nullable=True),
        sa.Column("cert_der", sa.LargeBinary(), nullable=True),
        sa.Column("not_before", _TS, nullable=False),
        sa.Column("not_after", _TS, nullable=False),
        sa.Column("crl_shard", sa.Integer(), nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("revocation_reason", sa.SmallInteger(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, server_default="subscriber"),
        sa.PrimaryKeyConstraint("id", name="pk_serials"),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"], name="fk_serials_issuer_id"),
        sa.UniqueConstraint("issuer_id", "serial", name="uq_serials_issuer_id_serial"),
        sa.CheckConstraint(
            "length(serial) BETWEEN 1 AND 40 AND substr(serial, 1, 1) <> '0'"
            " AND ltrim(serial, '0123456789abcdef') = ''",
            name=op.f("ck_serials_serial_hex"),
        ),
        sa.CheckConstraint(f"state IN {_STATES}", name=op.f("ck_serials_state")),
        sa.CheckConstraint(_KIND_CHECK, name=op.f("ck_serials_kind")),
        sa.CheckConstraint(_PRECERT_CHECK, name=op.f("ck_serials_precert")),
        sa.CheckConstraint(
            "cert_der IS NULL OR state IN ('issued', 'revoked')",
            name=op.f("ck_serials_cert_allowed"),
        ),
        sa.CheckConstraint(
            "state <> 'issued' OR cert_der IS NOT NULL", name=op.f("ck_serials_cert_required")
        ),
        sa.CheckConstraint(
            "(state = 'revoked' AND revoked_at IS NOT NULL AND revocation_reason IS NOT NULL)"
            " OR (state <> 'revoked' AND revoked_at IS NULL AND revocation_reason IS NULL)",
            name=op.f("ck_serials_revoked"),
        ),
        sa.CheckConstraint(
            "revocation_reason IS NULL OR revocation_reason IN (0, 1, 3, 4, 5, 9)",
            name=op.f("ck_serials_reason"),
        ),
        sa.CheckConstraint("crl_shard >= 0", name=op.f("ck_serials_crl_shard")),
        sa.CheckConstraint("not_before < not_after", name=op.f("ck_serials_validity")),
    )
    op.execute(
        f"INSERT INTO _serials_0003 ({_COLUMNS}, kind) "  # noqa: S608 - our own names
        f"SELECT {_COLUMNS}, 'subscriber' FROM serials"
    )
    op.drop_table("serials")  # its indexes go with it; foreign keys are off (migrate())
    op.rename_table("_serials_0003", "serials")
    op.create_index("ix_serials_state_updated_at", "serials", ["state", "updated_at"])
    op.create_index(
        "ix_serials_issuer_id_crl_shard_state", "serials", ["issuer_id", "crl_shard", "state"]
    )
    op.create_index(
        "ix_serials_request_held",
        "serials",
        ["request_id"],
        unique=True,
        sqlite_where=sa.text(_REQUEST_HELD),
    )


_issuers = sa.table(
    "issuers",
    sa.column("id", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("certificate_der", sa.LargeBinary()),
)
_serials = sa.table(
    "serials",
    sa.column("id", _BIG_ID),
    sa.column("issuer_id", sa.Integer()),
    sa.column("serial", sa.String()),
    sa.column("state", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("tbs_der", sa.LargeBinary()),
    sa.column("cert_der", sa.LargeBinary()),
    sa.column("not_before", UTCDateTime()),
    sa.column("not_after", UTCDateTime()),
    sa.column("crl_shard", sa.Integer()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
_events = sa.table(
    "events",
    sa.column("issuer_id", sa.Integer()),
    sa.column("serial_id", _BIG_ID),
    sa.column("at", UTCDateTime()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("from_state", sa.String()),
    sa.column("to_state", sa.String()),
    sa.column("detail", sa.Text()),
)


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _backfill_ca_certificates(bind: sa.Connection) -> None:
    """Record each registered issuer certificate as an ``issued`` serial of its signer."""
    rows = bind.execute(sa.select(_issuers.c.id, _issuers.c.certificate_der)).all()
    certificates = {issuer_id: x509.load_der_x509_certificate(der) for issuer_id, der in rows}
    now = datetime.now(UTC)
    for child_id, child in certificates.items():
        for parent_id, parent in certificates.items():
            if parent_id == child_id or not _signed_by(child, parent):
                continue
            _record(bind, parent_id, child, now)


def _record(
    bind: sa.Connection, issuer_id: int, certificate: x509.Certificate, now: datetime
) -> None:
    der = certificate.public_bytes(Encoding.DER)
    serial_hex = format(certificate.serial_number, "x")
    existing = bind.execute(
        sa.select(_serials.c.cert_der).where(
            _serials.c.issuer_id == issuer_id, _serials.c.serial == serial_hex
        )
    ).first()
    if existing is not None:
        if existing[0] == der:
            return
        raise RuntimeError(
            f"issuer {issuer_id} already has serial {serial_hex} for another certificate than "
            f"the CA certificate {certificate.subject.rfc4514_string()}; resolve it by hand"
        )
    serial_id = bind.execute(
        sa.insert(_serials)
        .values(
            issuer_id=issuer_id,
            serial=serial_hex,
            state="issued",
            kind="ca",
            tbs_der=certificate.tbs_certificate_bytes,
            cert_der=der,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            crl_shard=0,
            created_at=now,
            updated_at=now,
        )
        .returning(_serials.c.id)
    ).scalar_one()
    detail = {"kind": "ca", "subject": certificate.subject.rfc4514_string(), "backfill": True}
    for action, from_state, to_state, extra in (
        ("reserve", None, "reserved", {"crl_shard": 0}),
        ("issued", "reserved", "issued", {"cert_sha256": hashlib.sha256(der).hexdigest()}),
    ):
        bind.execute(
            sa.insert(_events).values(
                issuer_id=issuer_id,
                serial_id=serial_id,
                at=now,
                actor=ACTOR,
                action=action,
                from_state=from_state,
                to_state=to_state,
                detail=json.dumps({**detail, **extra}, sort_keys=True),
            )
        )


def downgrade() -> None:
    """The ledger is never migrated backwards (restore a backup instead)."""
    raise NotImplementedError("the ledger is never downgraded; restore a backup instead")
