"""Where following a log began: the cursor's compact tree can start mid-log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

A log followed from ``start = "end"`` (or an index or a time) begins with a verified compact
tree (its right edge) at that position, not at index 0, and stores rows only for watched
entries. ``start_index`` says where that was and ``start_sth_ms`` the timestamp of the head
it was proven against, so "not seen" can be told from "before we started" (every log followed
before this revision started at 0, which the default keeps). Rows of
unwatched entries written by earlier versions are kept and still read as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:  # a plain ADD COLUMN (with its default) on SQLite and PostgreSQL
    op.add_column(
        "watch_logs",
        sa.Column("start_index", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("watch_logs", sa.Column("start_sth_ms", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_logs") as batch:
        batch.drop_column("start_sth_ms")
        batch.drop_column("start_index")
