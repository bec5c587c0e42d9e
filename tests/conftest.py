"""Fixtures shared by the whole suite: fresh databases on SQLite and PostgreSQL, a frozen clock.

PostgreSQL is the server at ``CTSTATUS_TEST_POSTGRES`` (default: user postgres on
127.0.0.1:5432, trust auth). Each database is created for the fixture that asks for it and
dropped ``WITH (FORCE)`` afterwards. If the server is unreachable its tests are skipped, unless
``CTSTATUS_REQUIRE_POSTGRES=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from ctstatus.clock import FrozenClock

PG_ADMIN_URL = os.environ.get(
    "CTSTATUS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

DatabaseFactory = Callable[[str], AbstractContextManager[str]]


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the server's maintenance database; skip or fail if unreachable."""
    engine = sa.create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        reason = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {str(exc.orig).splitlines()[0]}"
        if os.environ.get("CTSTATUS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (and CTSTATUS_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)  # only when the server is absent and not required
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def database_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DatabaseFactory:
    """``with database_factory("sqlite" | "postgresql") as url:`` a new empty database."""

    @contextlib.contextmanager
    def new_database(backend: str) -> Iterator[str]:
        name = f"ctstatus_test_{secrets.token_hex(6)}"
        if backend == "sqlite":
            yield f"sqlite:///{tmp_path_factory.mktemp('ledger') / name}.db"
            return
        admin: sa.Engine = request.getfixturevalue("postgres_admin")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield admin.url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return new_database


@pytest.fixture
def fresh_postgres_url(database_factory: DatabaseFactory) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    with database_factory("postgresql") as url:
        yield url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC))
