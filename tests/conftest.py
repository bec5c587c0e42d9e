"""Fixtures shared by the whole suite: a fresh PostgreSQL database, a frozen clock."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from ctstatus.clock import FrozenClock

POSTGRES_ADMIN_URL = os.environ.get(
    "CTSTATUS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("CTSTATUS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (CTSTATUS_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"ctstatus_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _postgres_unavailable(str(exc.orig).splitlines()[0])
    url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC))
