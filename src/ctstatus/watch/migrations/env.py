"""Alembic environment for the watcher's database: online only, on the connection
:func:`ctstatus.watch.migrate.migrate` hands over (there is no alembic.ini).

Only ``watch_*`` tables are the watcher's: a watcher sharing a PostgreSQL database with the ledger
must neither see the ledger's tables as strays nor touch them, and its version table has its own
name (:data:`~ctstatus.watch.migrate.VERSION_TABLE`).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ctstatus.watch.migrate import VERSION_TABLE, include_name
from ctstatus.watch.store import metadata


def run() -> None:
    """Run the pending migrations on the handed-over connection."""
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError(
            "watcher migrations run through ctstatus.watch.migrate.migrate() (opening the "
            "watcher's database does it), not the alembic command line"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
