"""Baseline: the watcher's schema as ``metadata.create_all`` built it before migrations.

Revision ID: 0001
Revises:
Create Date: 2026-08-01

Written out literally (a migration is a snapshot; a test compares the result with the metadata in
``ctstatus.watch.store``). A database made by the old ``create_all`` has these tables already and
no version row: they are kept as they are, with their data, and only the tables it lacks (a
database last opened before ``watch_checks`` existed) are created -- upgrading it to this
revision is stamping it. A table of one of these names whose columns are not the watcher's is
refused rather than adopted.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ctstatus.watch.migrate import WatchDatabaseError

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: The snapshot: a MetaData of its own, never the live one in ``ctstatus.watch.store``.
_SNAPSHOT = sa.MetaData()

sa.Table(
    "watch_logs",
    _SNAPSHOT,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("download_size", sa.BigInteger(), nullable=False),
    sa.Column("download_nodes", sa.Text(), nullable=False),
    sa.Column("verified_size", sa.BigInteger(), nullable=False),
    sa.Column("verified_root", sa.LargeBinary(), nullable=True),
    sa.Column("verified_nodes", sa.Text(), nullable=False),
    sa.Column("verified_sth_ms", sa.BigInteger(), nullable=True),
    sa.Column("updated_at", sa.Float(), nullable=False),
)
sa.Table(
    "watch_issuers",
    _SNAPSHOT,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
)
_entries = sa.Table(
    "watch_entries",
    _SNAPSHOT,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("precert", sa.Boolean(), nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
    sa.Column("issuer_key", sa.String(64), nullable=True),
    sa.Column("serial", sa.String(42), nullable=True),
    sa.Column("tbs_sha256", sa.LargeBinary(), nullable=True),
    sa.Column("watched", sa.Boolean(), nullable=False),
    sa.Column("info", sa.Text(), nullable=True),
    sa.Column("der", sa.LargeBinary(), nullable=True),
)
sa.Index("watch_entries_serial", _entries.c.issuer_key, _entries.c.serial)
_certs = sa.Table(
    "watch_certs",
    _SNAPSHOT,
    sa.Column("issuer_key", sa.String(64), primary_key=True),
    sa.Column("serial", sa.String(42), primary_key=True),
    sa.Column("tbs_sha256", sa.LargeBinary(), nullable=False),
    sa.Column("has_precert", sa.Boolean(), nullable=False),
    sa.Column("has_final", sa.Boolean(), nullable=False),
    sa.Column("first_seen_ms", sa.BigInteger(), nullable=False),
    sa.Column("info", sa.Text(), nullable=False),
    sa.Column("due_at", sa.Float(), nullable=False),
    sa.Column("last_checked", sa.Float(), nullable=True),
    sa.Column("last_result", sa.Text(), nullable=True),
)
sa.Index("watch_certs_due", _certs.c.due_at)
_checks = sa.Table(
    "watch_checks",
    _SNAPSHOT,
    sa.Column("id", _BIG_ID, primary_key=True),
    sa.Column("issuer_key", sa.String(64), nullable=False),
    sa.Column("serial", sa.String(42), nullable=False),
    sa.Column("checked_at", sa.Float(), nullable=False),
    sa.Column("ocsp", sa.Text(), nullable=False),
    sa.Column("crl", sa.Text(), nullable=True),
    sa.Column("findings", sa.Text(), nullable=False),
)
sa.Index("watch_checks_serial", _checks.c.serial, _checks.c.checked_at)
_problems = sa.Table(
    "watch_problems",
    _SNAPSHOT,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text(), nullable=False),
    sa.Column("scope", sa.Text(), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("evidence", sa.Text(), nullable=False),
    sa.Column("first_seen", sa.Float(), nullable=False),
    sa.Column("last_seen", sa.Float(), nullable=False),
    sa.Column("resolved_at", sa.Float(), nullable=True),
    sa.Column("alerted_open", sa.Boolean(), nullable=False),
    sa.Column("alerted_resolved", sa.Boolean(), nullable=False),
)
sa.Index("watch_problems_open", _problems.c.subject, _problems.c.resolved_at)


def upgrade() -> None:
    """Create the six tables and their indexes, keeping any a pre-migration database has."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    present = set(inspector.get_table_names())
    for table in _SNAPSHOT.sorted_tables:
        if table.name not in present:
            table.create(bind)
            continue
        found = {column["name"] for column in inspector.get_columns(table.name)}
        if found != set(table.columns.keys()):
            raise WatchDatabaseError(
                f"table {table.name} exists but is not the watcher's (columns {sorted(found)})",
                "give the watcher a database of its own, or drop that table",
            )


def downgrade() -> None:
    """Not supported: restore a backup (or start a fresh watcher database) instead."""
    raise NotImplementedError("the watcher's database is never downgraded")
