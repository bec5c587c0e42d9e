"""Initial ledger: issuers, serials, events, and the triggers that keep them append-only.

Revision ID: 0001
Revises:
Create Date: 2026-07-01

Tables and CHECK constraints are written out literally (a migration is a snapshot; a test compares
the result with ``ctstatus.ledger.schema``). The triggers are generated from ``states.py`` by
``ctstatus.ledger.triggers`` -- the one place the state machine lives -- and ``migrate()``
re-synchronises them after every upgrade. CHECK names are wrapped in ``op.f()``: they are final,
and the metadata's naming convention must not prefix them a second time.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ctstatus.ledger import triggers

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_STATES = "('reserved', 'precert_signed', 'issued', 'abandoned', 'never_signed', 'revoked')"
_WITH_PRECERT = "('precert_signed', 'issued', 'abandoned', 'revoked')"
_REQUEST_HELD = "request_id IS NOT NULL AND state IN ('reserved', 'precert_signed', 'issued')"


def upgrade() -> None:
    """Create the three tables, their indexes and the triggers."""
    op.create_table(
        "issuers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("cert_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("spki_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("subject_key_id", sa.LargeBinary(), nullable=False),
        sa.Column("name_hash_sha1", sa.LargeBinary(), nullable=False),
        sa.Column("key_hash_sha1", sa.LargeBinary(), nullable=False),
        sa.Column("name_hash_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("key_hash_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("not_after", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_issuers"),
        sa.UniqueConstraint("name", name="uq_issuers_name"),
        sa.UniqueConstraint("cert_sha256", name="uq_issuers_cert_sha256"),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 64", name=op.f("ck_issuers_name")),
        sa.CheckConstraint("length(cert_sha256) = 32", name=op.f("ck_issuers_cert_sha256")),
        sa.CheckConstraint("length(spki_sha256) = 32", name=op.f("ck_issuers_spki_sha256")),
        sa.CheckConstraint(
            "length(name_hash_sha1) = 20 AND length(key_hash_sha1) = 20",
            name=op.f("ck_issuers_sha1"),
        ),
        sa.CheckConstraint(
            "length(name_hash_sha256) = 32 AND length(key_hash_sha256) = 32",
            name=op.f("ck_issuers_sha256"),
        ),
    )
    op.create_index(
        "ix_issuers_name_hash_sha1_key_hash_sha1",
        "issuers",
        ["name_hash_sha1", "key_hash_sha1"],
        unique=True,
    )
    op.create_index(
        "ix_issuers_name_hash_sha256_key_hash_sha256",
        "issuers",
        ["name_hash_sha256", "key_hash_sha256"],
        unique=True,
    )
    op.create_index("ix_issuers_spki_sha256", "issuers", ["spki_sha256"])

    op.create_table(
        "serials",
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
        sa.PrimaryKeyConstraint("id", name="pk_serials"),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"], name="fk_serials_issuer_id"),
        sa.UniqueConstraint("issuer_id", "serial", name="uq_serials_issuer_id_serial"),
        sa.CheckConstraint(
            "length(serial) BETWEEN 1 AND 40 AND substr(serial, 1, 1) <> '0'"
            " AND ltrim(serial, '0123456789abcdef') = ''",
            name=op.f("ck_serials_serial_hex"),
        ),
        sa.CheckConstraint(f"state IN {_STATES}", name=op.f("ck_serials_state")),
        sa.CheckConstraint(
            f"(state IN {_WITH_PRECERT} AND precert_der IS NOT NULL)"
            f" OR (state NOT IN {_WITH_PRECERT} AND precert_der IS NULL)",
            name=op.f("ck_serials_precert"),
        ),
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
        postgresql_where=sa.text(_REQUEST_HELD),
    )

    op.create_table(
        "events",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column("serial_id", _BIG_ID, nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"], name="fk_events_issuer_id"),
        sa.ForeignKeyConstraint(["serial_id"], ["serials.id"], name="fk_events_serial_id"),
        sa.CheckConstraint(
            f"from_state IS NULL OR from_state IN {_STATES}", name=op.f("ck_events_from_state")
        ),
        sa.CheckConstraint(
            f"to_state IS NULL OR to_state IN {_STATES}", name=op.f("ck_events_to_state")
        ),
    )
    op.create_index("ix_events_serial_id_id", "events", ["serial_id", "id"])
    op.create_index("ix_events_issuer_id_id", "events", ["issuer_id", "id"])

    triggers.install(op.get_bind())


def downgrade() -> None:
    """The ledger is append-only: it is never migrated backwards (restore a backup instead)."""
    raise NotImplementedError("the ledger is never downgraded; restore a backup instead")
