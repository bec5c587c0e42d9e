"""Operations: retry back-off, the settings a queue was planned with, log leases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

* ``watch_certs.failures``: how many checks of the certificate in a row found a problem, so
  the next one is retried after 1, 2, 4, … minutes (capped) rather than after
  ``recheck_seconds``; a clean check sets it back to 0.
* ``watch_meta``: small named values, here the grace and own issuers the queue was planned
  with, so a config change re-plans it at the next start.
* ``watch_leases`` and ``watch_members``: several watcher processes on one PostgreSQL database
  split the logs between them by lease (``SELECT … FOR UPDATE SKIP LOCKED``), each lease renewed
  while its holder follows the log; a member row is a process's heartbeat, which sets the fair
  share of logs each takes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("watch_certs") as batch:
        batch.add_column(
            sa.Column("failures", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.create_table(
        "watch_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "watch_leases",
        sa.Column("log_id", sa.String(64), primary_key=True),
        sa.Column("holder", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "watch_members",
        sa.Column("holder", sa.String(200), primary_key=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("watch_members")
    op.drop_table("watch_leases")
    op.drop_table("watch_meta")
    with op.batch_alter_table("watch_certs") as batch:
        batch.drop_column("failures")
