"""Index serials of watched entries only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

The (issuer key, serial) index serves reconciliation (the serials of our own issuers, which are
always watched) and a serial's timeline on the dashboard; neither asks about unwatched entries.
Indexing every entry of a log by serial cost about a third of following it (random inserts all
over the index for certificates nobody watches). A partial index keeps the lookups and drops that.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same predicate text SQLAlchemy renders for ``entries.c.watched.is_(True)`` in queries, so
# the planners see the query implies it.
_SQLITE_WHERE = sa.text("watched IS 1")
_POSTGRESQL_WHERE = sa.text("watched IS true")


def upgrade() -> None:
    op.drop_index("watch_entries_serial", table_name="watch_entries")
    op.create_index(
        "watch_entries_watched_serial",
        "watch_entries",
        ["issuer_key", "serial"],
        sqlite_where=_SQLITE_WHERE,
        postgresql_where=_POSTGRESQL_WHERE,
    )


def downgrade() -> None:
    op.drop_index("watch_entries_watched_serial", table_name="watch_entries")
    op.create_index("watch_entries_serial", "watch_entries", ["issuer_key", "serial"])
