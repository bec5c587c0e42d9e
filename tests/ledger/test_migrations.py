"""Migrations: head matches schema.py, old and unknown revisions are refused with clear errors."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ctstatus.errors import LedgerError
from ctstatus.ledger import (
    Ledger,
    create_ledger_engine,
    current_revision,
    ensure_current,
    head_revision,
    migrate,
    triggers,
)
from ctstatus.ledger.migrate import SCRIPT_LOCATION
from ctstatus.ledger.schema import VERSION_TABLE, metadata

MIGRATE_HINT = "run `ctstatus ledger migrate`"


@pytest.fixture
def engine(fresh_ledger_url: str):
    engine = create_ledger_engine(fresh_ledger_url)
    yield engine
    engine.dispose()


def test_unmigrated_ledger_refuses_to_open(engine: sa.Engine) -> None:
    assert current_revision(engine) is None
    with pytest.raises(LedgerError, match="has no schema yet") as info:
        Ledger(engine)
    assert info.value.hint == MIGRATE_HINT


def test_migrate_reaches_head_and_is_idempotent(engine: sa.Engine) -> None:
    assert migrate(engine) == head_revision()
    assert migrate(engine) == head_revision()
    assert current_revision(engine) == head_revision()
    ensure_current(engine)
    Ledger(engine)


def test_concurrent_migrations_serialise(fresh_ledger_url: str) -> None:
    """Two `ctstatus ledger migrate` at once: one migrates, the other waits and finds it done."""
    engines = [create_ledger_engine(fresh_ledger_url) for _ in range(2)]
    try:
        barrier = threading.Barrier(2)

        def run(engine: sa.Engine) -> str | None:
            barrier.wait()
            return migrate(engine)

        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(run, engines)) == [head_revision()] * 2
        ensure_current(engines[0])
    finally:
        for engine in engines:
            engine.dispose()


def test_migrated_schema_matches_metadata(engine: sa.Engine) -> None:
    """Alembic autogenerate finds nothing to do: migrations and schema.py agree."""
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []


def test_check_constraints_match_metadata(engine: sa.Engine) -> None:
    """Autogenerate ignores CHECKs, so compare them here: names everywhere, SQL text on SQLite
    (PostgreSQL rewrites the text; the invariant tests prove its CHECKs by behaviour)."""
    migrate(engine)
    inspector = sa.inspect(engine)
    dialect = engine.dialect
    for table in metadata.sorted_tables:
        reflected = {c["name"]: c["sqltext"] for c in inspector.get_check_constraints(table.name)}
        declared = {
            str(c.name): str(c.sqltext.compile(dialect=dialect))
            for c in table.constraints
            if isinstance(c, sa.CheckConstraint)
        }
        assert set(reflected) == set(declared), table.name
        if dialect.name == "sqlite":
            assert reflected == declared, table.name


def test_installed_triggers_are_generated_from_states(engine: sa.Engine) -> None:
    migrate(engine)
    with engine.connect() as conn:
        installed = triggers.installed(conn)
    assert installed == triggers.expected(engine.dialect.name)
    assert installed  # and not vacuously


def _tamper(conn: sa.Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER ctstatus_serials_transition")
    else:
        conn.exec_driver_sql("ALTER TABLE serials DISABLE TRIGGER ctstatus_serials_update")


def test_tampered_triggers_are_refused_and_migrate_repairs_them(engine: sa.Engine) -> None:
    migrate(engine)
    with engine.begin() as conn:
        _tamper(conn)
    with pytest.raises(LedgerError, match="triggers that differ") as info:
        Ledger(engine)
    assert info.value.hint == MIGRATE_HINT
    migrate(engine)
    ensure_current(engine)


LATER = "9999"


@pytest.fixture
def scripts_with_later(tmp_path: Path) -> str:
    """A copy of the migrations plus an empty revision after head: this code 'one version later'."""
    location = tmp_path / "migrations"
    shutil.copytree(SCRIPT_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / f"{LATER}_later.py").write_text(
        '"""A later revision."""\n'
        f'revision = "{LATER}"\ndown_revision = "{head_revision()}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    return str(location)


def test_older_revision_asks_for_migrate(engine: sa.Engine, scripts_with_later: str) -> None:
    migrate(engine)  # at the head of the shipped migrations
    head = head_revision()
    with pytest.raises(
        LedgerError, match=f"is at schema revision {head}; this ctstatus needs {LATER}"
    ) as info:
        ensure_current(engine, script_location=scripts_with_later)
    assert info.value.hint == MIGRATE_HINT
    assert migrate(engine, script_location=scripts_with_later) == LATER
    ensure_current(engine, script_location=scripts_with_later)


def test_newer_revision_is_refused_clearly(engine: sa.Engine, scripts_with_later: str) -> None:
    """A ledger migrated by a newer ctstatus: opening and migrating both refuse, saying why."""
    migrate(engine, script_location=scripts_with_later)
    for attempt in (lambda: Ledger(engine), lambda: migrate(engine)):
        with pytest.raises(
            LedgerError, match=f"revision {LATER}, newer than this ctstatus knows"
        ) as info:
            attempt()
        assert info.value.hint is not None
        assert "upgrade ctstatus" in info.value.hint
    assert current_revision(engine) == LATER  # migrate() changed nothing
