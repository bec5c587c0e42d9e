"""The watcher's database: its engine, and its schema brought to head by alembic on open.

The engine is the ledger's (SQLite: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``; PostgreSQL:
psycopg), but every error names the *watcher database* and its ``database`` key, not the ledger.

Migrations live in ``watch/migrations`` with their own version table,
:data:`VERSION_TABLE`, so a watcher can share a PostgreSQL database with the ledger (whose table
is ``ledger_alembic_version``). Unlike the ledger, which waits for ``ctstatus ledger migrate``,
the watcher upgrades its own database when it opens it: the database is the watcher's alone and
its data can be rebuilt from the logs. A database made by the ``create_all`` of earlier versions
(watch tables, no version row) is recognised and stamped at the baseline, its data kept.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from ctstatus.errors import LedgerError, UserError
from ctstatus.ledger.engine import create_ledger_engine, describe
from ctstatus.ledger.migrate import alembic_config, newest_revision

VERSION_TABLE: Final = "watch_alembic_version"
"""Alembic's version table for the watcher, distinct from the ledger's."""

SCRIPT_LOCATION: Final = str(Path(__file__).with_name("migrations"))
BASELINE: Final = "0001"
TABLE_PREFIX: Final = "watch_"
_MIGRATE_LOCK: Final = 0x77617463685F6462  # "watch_db": the advisory lock key of migrate()
_SETTING: Final = "`database` in watch.toml"
_URL_HINT: Final = "use sqlite:///path/to/watch.sqlite3 or postgresql+psycopg://user@host/dbname"

log = logging.getLogger(__name__)


class WatchDatabaseError(UserError):
    """The watcher's database cannot be opened, reached or migrated."""


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic filter: only the watcher's own tables (not the ledger's, in a shared database)."""
    return type_ != "table" or (name or "").startswith(TABLE_PREFIX)


def create_watch_engine(url: str) -> Engine:
    """A tuned Engine for the watcher's database at ``url``, connected once to fail early."""
    try:
        sa_url = make_url(url)
    except ArgumentError:
        raise WatchDatabaseError(
            f"the watcher database url {url.split('@')[-1]!r} is not a database URL", _URL_HINT
        ) from None
    _check_url(sa_url)
    try:
        engine = create_ledger_engine(url, check=False)
    except LedgerError as exc:  # pragma: no cover - _check_url refuses what it would refuse
        raise WatchDatabaseError(f"cannot open the watcher database at {describe(sa_url)}") from exc
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        engine.dispose()
        raise _connection_error(engine, exc) from exc
    return engine


def _check_url(url: URL) -> None:
    """What the ledger's engine factory would refuse, refused in the watcher's words."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise WatchDatabaseError(
                f"the watcher database must be a SQLite file, not {describe(url)}", _URL_HINT
            )
        directory = Path(database).expanduser().resolve().parent
        if not directory.is_dir():
            raise WatchDatabaseError(
                f"cannot open the watcher database at {describe(url)}: "
                f"directory {directory} does not exist",
                f"create the directory or fix {_SETTING}",
            )
    elif backend == "postgresql":
        if url.get_driver_name() not in ("psycopg", "postgresql"):
            raise WatchDatabaseError(
                f"unsupported PostgreSQL driver in the watcher database url {describe(url)}",
                "use postgresql+psycopg://",
            )
    else:
        raise WatchDatabaseError(
            f"unsupported watcher database {describe(url)}",
            "use sqlite:/// or postgresql+psycopg://",
        )


def _connection_error(
    engine: Engine, exc: DBAPIError, action: str = "connect to"
) -> WatchDatabaseError:
    lines = str(exc.orig).strip().splitlines() or ["unknown error"]
    reason = lines[0].rsplit("failed: ", 1)[-1].strip().removeprefix("FATAL:").strip()
    reason = reason[:1].lower() + reason[1:]
    if engine.dialect.name == "sqlite":
        hint = f"check that the directory exists and is writable, and {_SETTING}"
    elif "does not exist" in reason:
        hint = f"create the database (createdb) or fix {_SETTING}"
    elif "password" in reason or "authentication" in reason:
        hint = f"check the user and password in {_SETTING}"
    else:
        hint = f"is PostgreSQL running and is {_SETTING} right?"
    return WatchDatabaseError(
        f"cannot {action} the watcher database at {describe(engine)}: {reason}", hint
    )


def _config(script_location: str | None) -> Config:
    return alembic_config(script_location or SCRIPT_LOCATION)


def head_revision(*, script_location: str | None = None) -> str:
    """The newest revision this code knows."""
    return newest_revision(script_location or SCRIPT_LOCATION)


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    try:
        with engine.connect() as conn:
            return _current(conn)
    except DBAPIError as exc:
        raise _connection_error(engine, exc) from exc


def legacy_tables(conn: Connection) -> list[str]:
    """The watcher tables of a database that has no version row (made by ``create_all``)."""
    if _current(conn) is not None:
        return []
    return sorted(n for n in inspect(conn).get_table_names() if n.startswith(TABLE_PREFIX))


def migrate(engine: Engine, *, script_location: str | None = None) -> str:
    """Bring the watcher's database to head in one transaction; return the revision.

    Concurrent openers serialise (PostgreSQL advisory lock, SQLite ``BEGIN IMMEDIATE``); a
    revision newer than this code knows is refused, never touched.
    """
    config = _config(script_location)
    head = head_revision(script_location=script_location)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK})
            current = _current(conn)
            if current == head:
                return head
            if current is not None:
                script = ScriptDirectory.from_config(config)
                if current not in {rev.revision for rev in script.walk_revisions()}:
                    raise WatchDatabaseError(
                        f"the watcher database at {describe(engine)} is at schema revision "
                        f"{current}, newer than this ctstatus knows (its newest is {head})",
                        f"upgrade ctstatus, or check {_SETTING}",
                    )
            # A pre-migration database (tables, no version row) goes through the baseline
            # like an empty one; the baseline keeps existing tables, so this stamps it.
            legacy = legacy_tables(conn)
            if legacy:
                log.info(
                    "watcher database at %s has tables but no schema version (%s): stamping "
                    "it at revision %s, data kept",
                    describe(engine),
                    ", ".join(legacy),
                    BASELINE,
                )
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            return _current(conn) or head
    except DBAPIError as exc:
        raise _connection_error(engine, exc, "migrate") from exc
    except CommandError as exc:
        raise WatchDatabaseError(
            f"cannot migrate the watcher database at {describe(engine)}: {exc}"
        ) from exc
