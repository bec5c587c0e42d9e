"""Engine creation: durability settings, BEGIN IMMEDIATE, and one-line connection errors."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from ctstatus.errors import LedgerError
from ctstatus.ledger import READ_ONLY, create_ledger_engine, describe


def _one_line(exc: LedgerError) -> str:
    text = str(exc)
    assert "\n" not in text
    assert "Traceback" not in text
    return text


def test_unreachable_postgres_is_one_clear_line() -> None:
    with pytest.raises(LedgerError) as info:
        create_ledger_engine("postgresql+psycopg://ctstatus@127.0.0.1:1/x", password="s3cret-pw")
    text = _one_line(info.value)
    assert info.value.message == (
        "cannot connect to the ledger at postgresql+psycopg://ctstatus:***@127.0.0.1:1/x: "
        "connection refused"
    )
    assert info.value.hint == "is PostgreSQL running and is [ledger] url right?"
    assert "s3cret-pw" not in text


@pytest.mark.postgres
def test_missing_postgres_database_is_one_clear_line(postgres_admin: sa.Engine) -> None:
    url = postgres_admin.url.set(database="ctstatus_no_such_db").render_as_string(False)
    with pytest.raises(LedgerError) as info:
        create_ledger_engine(url)
    assert 'database "ctstatus_no_such_db" does not exist' in _one_line(info.value)
    assert info.value.hint is not None
    assert "createdb" in info.value.hint


def test_missing_sqlite_directory_is_one_clear_line(tmp_path) -> None:
    with pytest.raises(LedgerError) as info:
        create_ledger_engine(f"sqlite:///{tmp_path}/absent/ledger.db")
    assert f"directory {tmp_path}/absent does not exist" in _one_line(info.value)


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db", "not a url", "postgresql+pg8000://h/d"],
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(LedgerError):
        create_ledger_engine(url, check=False)


def test_password_is_injected_and_never_rendered() -> None:
    engine = create_ledger_engine(
        "postgresql://ctstatus:old@db.example/ledger", password="n3w:p@ss/word", check=False
    )
    assert engine.url.password == "n3w:p@ss/word"
    assert engine.url.drivername == "postgresql+psycopg"
    assert describe(engine) == "postgresql+psycopg://ctstatus:***@db.example/ledger"


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = create_ledger_engine(f"sqlite:///{tmp_path}/ledger.db")
    yield engine
    engine.dispose()


def test_sqlite_pragmas(sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.connect() as conn:

        def pragma(name: str) -> object:
            return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL: a committed precert_signed survives power loss
        assert pragma("foreign_keys") == 1
        assert pragma("recursive_triggers") == 1
        assert pragma("busy_timeout") == 10_000


def test_sqlite_write_transactions_take_the_lock_at_begin(
    sqlite_engine: sa.Engine, tmp_path
) -> None:
    """BEGIN IMMEDIATE: the write lock is held from the start, not acquired on first write."""
    other = sqlite3.connect(f"{tmp_path}/ledger.db", timeout=0, isolation_level=None)
    try:
        with sqlite_engine.begin() as conn:
            conn.exec_driver_sql("SELECT 1")  # only a read so far
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_sqlite_read_only_transactions_do_not_lock(sqlite_engine: sa.Engine, tmp_path) -> None:
    """Readers (OCSP, CRLs) opt into a deferred BEGIN so they never queue behind the writer."""
    other = sqlite3.connect(f"{tmp_path}/ledger.db", timeout=0, isolation_level=None)
    try:
        with sqlite_engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            conn.exec_driver_sql("SELECT 1")
            assert conn.in_transaction()
            other.execute("BEGIN IMMEDIATE")  # a writer can still start
            other.execute("ROLLBACK")
    finally:
        other.close()
