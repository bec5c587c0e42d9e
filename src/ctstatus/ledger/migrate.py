"""Schema versioning: bring a ledger to head, and refuse to open one at any other revision.

Alembic runs programmatically (no alembic.ini): the script directory is inside this package and
the connection is handed over through ``config.attributes``. An upgrade is one transaction on both
backends (DDL is transactional in SQLite and PostgreSQL), followed by re-synchronising the
triggers with ``states.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from ctstatus.errors import LedgerError
from ctstatus.ledger import triggers
from ctstatus.ledger.engine import connection_error, describe
from ctstatus.ledger.schema import VERSION_TABLE

SCRIPT_LOCATION: Final = str(Path(__file__).with_name("migrations"))
MIGRATE_HINT: Final = "run `ctstatus ledger migrate`"
_MIGRATE_LOCK: Final = 0x63747374617475  # "ctstatu": the advisory lock key of migrate()


def alembic_config(script_location: str) -> Config:
    """An alembic Config for a migrations folder (the ledger's, or the watcher's)."""
    config = Config()
    # Config values go through configparser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", script_location.replace("%", "%%"))
    return config


def newest_revision(script_location: str) -> str:
    """The newest revision in a migrations folder."""
    head = ScriptDirectory.from_config(alembic_config(script_location)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships at least one revision
        raise RuntimeError(f"{script_location} has no revisions")
    return head


def _config(script_location: str | None) -> Config:
    return alembic_config(script_location or SCRIPT_LOCATION)


def head_revision(*, script_location: str | None = None) -> str:
    """The newest revision this code knows."""
    return newest_revision(script_location or SCRIPT_LOCATION)


def _current(conn: Connection) -> str | None:
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    try:
        with engine.connect() as conn:
            return _current(conn)
    except DBAPIError as exc:
        raise connection_error(engine, exc) from exc


def migrate(
    engine: Engine, revision: str = "head", *, script_location: str | None = None
) -> str | None:
    """Upgrade the ledger to ``revision`` (default head) in one transaction; return the new one.

    Never downgrades: the ledger is append-only, and so is its history.
    """
    config = _config(script_location)
    try:
        with _foreign_keys_off_on_sqlite(engine) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                # Two `ctstatus ledger migrate` at once: the second waits, then finds nothing to
                # do. (On SQLite, BEGIN IMMEDIATE already serialises them.)
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK})
            _refuse_unknown(conn, engine, script_location)
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            if revision == "head" or revision == head_revision(script_location=script_location):
                triggers.sync(conn)
            if conn.dialect.name == "sqlite":
                _check_foreign_keys(conn, engine)
            return _current(conn)
    except OperationalError as exc:
        raise connection_error(engine, exc, "migrate") from exc
    except CommandError as exc:
        raise LedgerError(f"cannot migrate the ledger at {describe(engine)}: {exc}") from exc


@contextmanager
def _foreign_keys_off_on_sqlite(engine: Engine) -> Iterator[Connection]:
    """A connection for migrating; on SQLite with foreign keys off until it is returned.

    Rebuilding a table (SQLite cannot alter a CHECK, revision 0003) drops the table other
    tables reference; SQLite's procedure for that needs ``foreign_keys = OFF``, which only takes
    effect outside a transaction, so it is set on the driver connection before BEGIN.
    :func:`_check_foreign_keys` then proves nothing dangles before the COMMIT.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            yield conn
            return
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA foreign_keys = OFF")
        try:
            yield conn
        finally:
            if conn.in_transaction():
                conn.rollback()
            driver.execute("PRAGMA foreign_keys = ON")


def _check_foreign_keys(conn: Connection, engine: Engine) -> None:
    dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if dangling:
        raise LedgerError(
            f"migrating the ledger at {describe(engine)} would leave {len(dangling)} rows "
            f"pointing at rows that do not exist (first: {tuple(dangling[0])}); nothing changed"
        )


def _refuse_unknown(conn: Connection, engine: Engine, script_location: str | None) -> None:
    current = _current(conn)
    if current is None:
        return
    script = ScriptDirectory.from_config(_config(script_location))
    if current not in {rev.revision for rev in script.walk_revisions()}:
        raise _newer_error(engine, current, head_revision(script_location=script_location))


def _newer_error(engine: Engine, current: str, head: str) -> LedgerError:
    return LedgerError(
        f"the ledger at {describe(engine)} is at schema revision {current}, newer than this "
        f"ctstatus knows (its newest is {head})",
        "upgrade ctstatus, or check that [ledger] url points at the right database",
    )


def ensure_current(engine: Engine, *, script_location: str | None = None) -> None:
    """Raise LedgerError unless the database is exactly at head with the expected triggers."""
    head = head_revision(script_location=script_location)
    try:
        with engine.connect() as conn:
            current = _current(conn)
            installed = triggers.installed(conn) if current == head else None
    except DBAPIError as exc:
        raise connection_error(engine, exc) from exc
    where = describe(engine)
    if current is None:
        raise LedgerError(f"the ledger at {where} has no schema yet", MIGRATE_HINT)
    if current != head:
        known = {
            rev.revision
            for rev in ScriptDirectory.from_config(_config(script_location)).walk_revisions()
        }
        if current not in known:
            raise _newer_error(engine, current, head)
        raise LedgerError(
            f"the ledger at {where} is at schema revision {current}; this ctstatus needs {head}",
            MIGRATE_HINT,
        )
    if installed != triggers.expected(engine.dialect.name):
        raise LedgerError(
            f"the ledger at {where} has triggers that differ from this ctstatus's state machine",
            MIGRATE_HINT,
        )
