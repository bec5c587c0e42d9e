"""ACME server state: accounts, orders, authorizations, challenges, nonces, rate events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

State of the ACME front door (``ctstatus.acme``), kept in the ledger database so that ACME
servers over one PostgreSQL are stateless. None of it is status truth: an order names its
serial by hex; the serial's state lives in ``serials``. No triggers guard these tables (nonces
are deleted when used; orders and authorizations change status).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    """Create the seven ACME tables and their indexes."""
    op.create_table(
        "acme_accounts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("thumbprint", sa.String(64), nullable=False),
        sa.Column("jwk", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("eab_kid", sa.String(255), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_accounts"),
        sa.UniqueConstraint("thumbprint", name="uq_acme_accounts_thumbprint"),
        sa.CheckConstraint(
            _in("status", ("valid", "deactivated", "revoked")),
            name=op.f("ck_acme_accounts_status"),
        ),
    )
    op.create_table(
        "acme_orders",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("replaces", sa.String(255), nullable=True),
        sa.Column("expires", _TS, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("serial", sa.String(40), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_orders"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["acme_accounts.id"], name="fk_acme_orders_account_id"
        ),
        sa.CheckConstraint(
            _in("status", ("pending", "ready", "processing", "valid", "invalid")),
            name=op.f("ck_acme_orders_status"),
        ),
        sa.CheckConstraint(
            "status <> 'valid' OR serial IS NOT NULL", name=op.f("ck_acme_orders_valid_serial")
        ),
    )
    op.create_index(
        "ix_acme_orders_account_id_created_at", "acme_orders", ["account_id", "created_at"]
    )
    op.create_index("ix_acme_orders_serial", "acme_orders", ["serial"])
    op.create_index("ix_acme_orders_replaces", "acme_orders", ["replaces"])
    op.create_table(
        "acme_authorizations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("identifier_type", sa.String(8), nullable=False),
        sa.Column("identifier_value", sa.String(255), nullable=False),
        sa.Column("wildcard", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_authorizations"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["acme_accounts.id"], name="fk_acme_authorizations_account_id"
        ),
        sa.CheckConstraint(
            _in("status", ("pending", "valid", "invalid", "deactivated", "expired", "revoked")),
            name=op.f("ck_acme_authorizations_status"),
        ),
        sa.CheckConstraint(
            _in("identifier_type", ("dns", "ip")),
            name=op.f("ck_acme_authorizations_identifier_type"),
        ),
    )
    op.create_index(
        "ix_acme_authorizations_account_id_identifier_value_status",
        "acme_authorizations",
        ["account_id", "identifier_value", "status"],
    )
    op.create_table(
        "acme_order_authorizations",
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("authz_id", sa.String(32), nullable=False),
        sa.Column("position", _BIG_ID, nullable=False),
        sa.PrimaryKeyConstraint("order_id", "authz_id", name="pk_acme_order_authorizations"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["acme_orders.id"], name="fk_acme_order_authorizations_order_id"
        ),
        sa.ForeignKeyConstraint(
            ["authz_id"],
            ["acme_authorizations.id"],
            name="fk_acme_order_authorizations_authz_id",
        ),
    )
    op.create_table(
        "acme_challenges",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("authz_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validated_at", _TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_acme_challenges"),
        sa.ForeignKeyConstraint(
            ["authz_id"], ["acme_authorizations.id"], name="fk_acme_challenges_authz_id"
        ),
        sa.CheckConstraint(
            _in("status", ("pending", "processing", "valid", "invalid")),
            name=op.f("ck_acme_challenges_status"),
        ),
        sa.CheckConstraint(
            _in("type", ("http-01", "dns-01", "tls-alpn-01")),
            name=op.f("ck_acme_challenges_type"),
        ),
    )
    op.create_index("ix_acme_challenges_authz_id", "acme_challenges", ["authz_id"])
    op.create_table(
        "acme_nonces",
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("expires", _TS, nullable=False),
        sa.PrimaryKeyConstraint("nonce", name="pk_acme_nonces"),
    )
    op.create_index("ix_acme_nonces_expires", "acme_nonces", ["expires"])
    op.create_table(
        "acme_rate_events",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_rate_events"),
    )
    op.create_index(
        "ix_acme_rate_events_kind_subject_at", "acme_rate_events", ["kind", "subject", "at"]
    )


def downgrade() -> None:
    """The ledger is never migrated backwards (restore a backup instead)."""
    raise NotImplementedError("the ledger is never downgraded; restore a backup instead")
