"""Engines for the ledger: SQLite (embedded default) or PostgreSQL, tuned for durability.

SQLite settings and why:

* ``journal_mode=WAL``: readers (OCSP, CRLs) never block the writer and vice versa.
* ``synchronous=FULL``: under WAL, NORMAL may lose the last commits on power loss; a committed
  ``precert_signed`` must survive it, since the precertificate may already be in a CT log.
* ``BEGIN IMMEDIATE`` for every transaction that may write: SQLite has one writer, and a deferred
  transaction that reads then writes can fail with SQLITE_BUSY half-way; IMMEDIATE takes the write
  lock up front and waits (``busy_timeout``) instead. Read-only work opts into a plain deferred
  ``BEGIN`` with the :data:`READ_ONLY` execution option so it does not queue behind writers.
* ``foreign_keys=ON``; ``recursive_triggers=ON`` so that ``INSERT OR REPLACE`` fires the
  no-delete triggers.

Connection failures become one-line :class:`~ctstatus.errors.LedgerError`\\ s; passwords never
appear in them (URLs are rendered with the password hidden).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from ctstatus.errors import LedgerError

READ_ONLY: Final = "ctstatus_ledger_read_only"
"""Execution option: ``conn.execution_options(**{READ_ONLY: True})`` before the first statement
makes the transaction a deferred (non-locking) one on SQLite. Writing in it may then fail."""

BUSY_TIMEOUT_MS: Final = 10_000
CONNECT_TIMEOUT_S: Final = 10

_SQLITE_PRAGMAS: Final = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA recursive_triggers = ON",
)


def describe(url: URL | Engine) -> str:
    """The URL as it may appear in messages and logs: password hidden."""
    if isinstance(url, Engine):
        url = url.url
    return url.render_as_string(hide_password=True)


def create_ledger_engine(url: str, password: str | None = None, *, check: bool = True) -> Engine:
    """An Engine for the ledger at ``url``; with ``check`` it connects once to fail early.

    ``url`` is ``sqlite:///path/to/ledger.db`` or ``postgresql+psycopg://user@host/db``
    (``postgresql://`` is taken to mean psycopg). ``password``, if given, replaces any password in
    the URL so that it can live in a separate secret rather than in the config file (SQLite has
    no password; it is ignored there).
    """
    try:
        sa_url = make_url(url)
    except ArgumentError as exc:
        raise LedgerError(
            f"the ledger url {url.split('@')[-1]!r} is not a database URL",
            "use sqlite:///path/to/ledger.db or postgresql+psycopg://user@host/dbname",
        ) from exc
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(sa_url)
    elif backend == "postgresql":
        if sa_url.get_driver_name() not in ("psycopg", "postgresql"):
            raise LedgerError(
                f"unsupported PostgreSQL driver in {describe(sa_url)}",
                "use postgresql+psycopg://",
            )
        sa_url = sa_url.set(drivername="postgresql+psycopg")
        if password is not None:
            sa_url = sa_url.set(password=password)
        engine = _postgresql_engine(sa_url)
    else:
        raise LedgerError(
            f"unsupported ledger database {describe(sa_url)}",
            "use sqlite:/// or postgresql+psycopg://",
        )
    if check:
        check_connection(engine)
    return engine


def check_connection(engine: Engine) -> None:
    """Connect once; turn any failure into a one-line LedgerError."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        engine.dispose()
        raise connection_error(engine, exc) from exc


def connection_error(engine: Engine, exc: DBAPIError, action: str = "connect to") -> LedgerError:
    """A LedgerError naming the database (password hidden) and the driver's first line."""
    reason = _reason(exc)
    if engine.dialect.name == "sqlite":
        hint = "check that the directory exists and is writable, and [ledger] url"
    elif "does not exist" in reason:
        hint = "create the database (createdb) or fix [ledger] url"
    elif "password" in reason or "authentication" in reason:
        hint = "check the ledger user and password"
    else:
        hint = "is PostgreSQL running and is [ledger] url right?"
    return LedgerError(f"cannot {action} the ledger at {describe(engine)}: {reason}", hint)


def _reason(exc: DBAPIError) -> str:
    """The useful part of a driver message: first line, without libpq's preamble."""
    lines = str(exc.orig).strip().splitlines() or ["unknown error"]
    reason = lines[0].rsplit("failed: ", 1)[-1].strip()
    reason = reason.removeprefix("FATAL:").strip()
    return reason[:1].lower() + reason[1:]


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise LedgerError(
            f"the ledger must be a SQLite file, not {describe(url)}",
            "use sqlite:///path/to/ledger.db",
        )
    directory = Path(database).expanduser().resolve().parent
    if not directory.is_dir():
        raise LedgerError(
            f"cannot open the ledger at {describe(url)}: directory {directory} does not exist",
            "create the directory or fix [ledger] url",
        )
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """Take transaction control away from the sqlite3 module and set the pragmas."""
    assert isinstance(dbapi_connection, sqlite3.Connection)
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        (mode,) = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot enable WAL journal mode (got {mode})")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    """Emit our own BEGIN: IMMEDIATE unless the connection declared itself read-only."""
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _postgresql_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One write transaction; an unreachable or failing database is a :class:`LedgerError`."""
    try:
        with engine.begin() as conn:
            yield conn
    except OperationalError as exc:
        raise connection_error(engine, exc, "write to") from exc


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction (:data:`READ_ONLY`: it does not queue behind writers)."""
    try:
        with engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            yield conn
    except OperationalError as exc:
        raise connection_error(engine, exc, "read") from exc
