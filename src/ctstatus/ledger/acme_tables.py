"""The ACME server's state (accounts, orders, authorizations, challenges, nonces, rate events).

They live in the ledger database so that several ACME servers over one PostgreSQL are stateless:
any of them can answer any request. They sit on the ledger's ``metadata`` (migration 0004
builds them) but are not part of the append-only truth: no trigger guards them, and an order
only points at a serial by its hex; the serial's status stays in ``serials``.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ctstatus.ledger.schema import BigId, metadata, sql_in
from ctstatus.ledger.timestamps import UTCDateTime

ACCOUNT_STATUSES = ("valid", "deactivated", "revoked")
ORDER_STATUSES = ("pending", "ready", "processing", "valid", "invalid")
AUTHZ_STATUSES = ("pending", "valid", "invalid", "deactivated", "expired", "revoked")
CHALLENGE_STATUSES = ("pending", "processing", "valid", "invalid")
CHALLENGE_TYPES = ("http-01", "dns-01", "tls-alpn-01")

acme_accounts = Table(
    "acme_accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("thumbprint", String(64), nullable=False),
    Column("jwk", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("contact", Text, nullable=False),
    Column("eab_kid", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("thumbprint"),
    CheckConstraint(sql_in("status", ACCOUNT_STATUSES), name="status"),
)

acme_orders = Table(
    "acme_orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("acme_accounts.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("identifiers", Text, nullable=False),
    Column("profile", String(64), nullable=False),
    Column("replaces", String(255), nullable=True),
    Column("expires", UTCDateTime, nullable=False),
    Column("error", Text, nullable=True),
    Column("serial", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(sql_in("status", ORDER_STATUSES), name="status"),
    CheckConstraint("status <> 'valid' OR serial IS NOT NULL", name="valid_serial"),
    Index(None, "account_id", "created_at"),
    Index(None, "serial"),
    Index(None, "replaces"),
)

acme_authorizations = Table(
    "acme_authorizations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("acme_accounts.id"), nullable=False),
    Column("identifier_type", String(8), nullable=False),
    Column("identifier_value", String(255), nullable=False),
    Column("wildcard", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(sql_in("status", AUTHZ_STATUSES), name="status"),
    CheckConstraint(sql_in("identifier_type", ("dns", "ip")), name="identifier_type"),
    Index(None, "account_id", "identifier_value", "status"),
)

acme_order_authorizations = Table(
    "acme_order_authorizations",
    metadata,
    Column("order_id", String(32), ForeignKey("acme_orders.id"), nullable=False),
    Column("authz_id", String(32), ForeignKey("acme_authorizations.id"), nullable=False),
    Column("position", BigId, nullable=False),
    PrimaryKeyConstraint("order_id", "authz_id"),
)

acme_challenges = Table(
    "acme_challenges",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("authz_id", String(32), ForeignKey("acme_authorizations.id"), nullable=False),
    Column("type", String(16), nullable=False),
    Column("token", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("validated_at", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),
    CheckConstraint(sql_in("status", CHALLENGE_STATUSES), name="status"),
    CheckConstraint(sql_in("type", CHALLENGE_TYPES), name="type"),
    Index(None, "authz_id"),
)

acme_nonces = Table(
    "acme_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires", UTCDateTime, nullable=False),
    Index(None, "expires"),
)
"""Issued, unused nonces: using one deletes its row, so a replay finds nothing."""

acme_rate_events = Table(
    "acme_rate_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index(None, "kind", "subject", "at"),
)
"""One row per counted event (a new order, a failed validation); limits count rows in a window."""

ACME_TABLES = (
    acme_accounts,
    acme_orders,
    acme_authorizations,
    acme_order_authorizations,
    acme_challenges,
    acme_nonces,
    acme_rate_events,
)
