"""Alembic environment for the ledger: online only, on the connection ``migrate()`` hands over.

There is no alembic.ini: :func:`ctstatus.ledger.migrate` builds the configuration in code and puts
an open connection (already inside a transaction) in ``config.attributes["connection"]``, so the
whole upgrade commits or rolls back as one unit.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ctstatus.ledger.schema import VERSION_TABLE, metadata


def run() -> None:
    """Run the pending migrations on the handed-over connection."""
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError(
            "ledger migrations run through ctstatus.ledger.migrate() (`ctstatus ledger migrate`), "
            "not the alembic command line"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
