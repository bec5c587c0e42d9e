"""Status outputs: pre-signed OCSP responses and published CRLs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-07-15

Both tables are caches or outputs derived from ``serials``, never the truth: the status services
check every stored response against the serial's current state before serving it, and a CRL is
rebuilt from the ledger each time it is published. So unlike the ledger's own tables they may be
updated (a refreshed response replaces the old one) and no trigger guards them.

On PostgreSQL an AFTER INSERT statement trigger on ``events`` sends ``NOTIFY ctstatus_events``
(no payload, no data change), so every responder learns of a status change within milliseconds
(``ctstatus.status.freshness``). It is deliberately not named ``ctstatus_*``: the ledger's
trigger inventory (``triggers.py``) covers only its own guards.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_STATES = "('reserved', 'precert_signed', 'issued', 'abandoned', 'never_signed', 'revoked')"


def upgrade() -> None:
    """Create ``ocsp_responses`` and ``crls``."""
    op.create_table(
        "ocsp_responses",
        sa.Column("serial_id", _BIG_ID, nullable=False),
        sa.Column("hash_algorithm", sa.String(8), nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column("serial_state", sa.String(16), nullable=False),
        sa.Column("this_update", _TS, nullable=False),
        sa.Column("next_update", _TS, nullable=False),
        sa.Column("refresh_at", _TS, nullable=False),
        sa.Column("responder", sa.String(64), nullable=False),
        sa.Column("response_der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("serial_id", "hash_algorithm", name="pk_ocsp_responses"),
        sa.ForeignKeyConstraint(["serial_id"], ["serials.id"], name="fk_ocsp_responses_serial_id"),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"], name="fk_ocsp_responses_issuer_id"),
        sa.CheckConstraint(
            "hash_algorithm IN ('sha1', 'sha256', 'sha384', 'sha512')",
            name=op.f("ck_ocsp_responses_hash_algorithm"),
        ),
        sa.CheckConstraint(
            f"serial_state IN {_STATES}", name=op.f("ck_ocsp_responses_serial_state")
        ),
        sa.CheckConstraint(
            "this_update <= refresh_at AND refresh_at < next_update",
            name=op.f("ck_ocsp_responses_times"),
        ),
    )
    op.create_index("ix_ocsp_responses_refresh_at", "ocsp_responses", ["refresh_at"])
    op.create_index(
        "ix_ocsp_responses_issuer_id_serial_id", "ocsp_responses", ["issuer_id", "serial_id"]
    )

    op.create_table(
        "crls",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("partitioned", sa.Boolean(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("this_update", _TS, nullable=False),
        sa.Column("next_update", _TS, nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("entries_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("crl_der", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crls"),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"], name="fk_crls_issuer_id"),
        sa.UniqueConstraint(
            "issuer_id", "shard", "crl_number", name="uq_crls_issuer_id_shard_crl_number"
        ),
        sa.CheckConstraint("shard >= 0", name=op.f("ck_crls_shard")),
        sa.CheckConstraint("crl_number >= 0", name=op.f("ck_crls_crl_number")),
        sa.CheckConstraint("entries >= 0", name=op.f("ck_crls_entries")),
        sa.CheckConstraint("this_update < next_update", name=op.f("ck_crls_times")),
    )
    op.create_index("ix_crls_issuer_id_shard_id", "crls", ["issuer_id", "shard", "id"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION status_notify_events() RETURNS trigger LANGUAGE plpgsql AS "
            "$body$ BEGIN PERFORM pg_notify('ctstatus_events', ''); RETURN NULL; END $body$"
        )
        op.execute(
            "CREATE TRIGGER status_notify_events AFTER INSERT ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION status_notify_events()"
        )


def downgrade() -> None:
    """The ledger is never migrated backwards (restore a backup instead)."""
    raise NotImplementedError("the ledger is never downgraded; restore a backup instead")
