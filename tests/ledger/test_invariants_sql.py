"""Try to break the ledger with raw SQL, past the API: the database itself must refuse.

Statements go through the engine (SQLAlchemy Core or literal SQL), never through ``Ledger``.
Literal SQL built with f-strings is the point here; every interpolated value is the test's own.
"""
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ctstatus.ledger import SerialState
from ctstatus.ledger.schema import events, issuers, serials
from ctstatus.ledger.triggers import write_once_columns

S = SerialState
BROKEN = sa.exc.IntegrityError  # triggers and CHECKs surface as this on both backends


def _fails(
    engine: sa.Engine,
    statement: sa.Executable | str,
    match: str | None = None,
    errors: type[Exception] | tuple[type[Exception], ...] = BROKEN,
) -> None:
    with pytest.raises(errors, match=match):
        _execute(engine, statement)


def _execute(engine: sa.Engine, statement: sa.Executable | str) -> None:
    with engine.begin() as conn:
        if isinstance(statement, str):
            conn.exec_driver_sql(statement)
        else:
            conn.execute(statement)


@pytest.mark.parametrize("table", ["issuers", "serials", "events"])
def test_rows_are_never_deleted(ledger_engine, issuer, table: str) -> None:
    issuer.drive_to(S.ISSUED)
    column = "id" if table == "issuers" else "issuer_id"
    _fails(
        ledger_engine,
        f"DELETE FROM {table} WHERE {column} = {issuer.id}",
        f"ctstatus ledger: {table} rows are never deleted",
    )


@pytest.mark.parametrize("table", ["issuers", "serials", "events"])
def test_tables_are_never_emptied(ledger_engine, issuer, table: str) -> None:
    """PostgreSQL's TRUNCATE, and SQLite's unqualified DELETE (its 'truncate optimisation')."""
    issuer.drive_to(S.RESERVED)
    if ledger_engine.dialect.name == "postgresql":
        _fails(
            ledger_engine,
            f"TRUNCATE {table} CASCADE",
            f"ctstatus ledger: {table} rows are never truncated",
        )
    else:
        _fails(
            ledger_engine,
            f"DELETE FROM {table}",
            f"ctstatus ledger: {table} rows are never deleted",
        )
    with ledger_engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(sa.table(table))) > 0


def test_events_are_never_updated(ledger_engine, issuer) -> None:
    issuer.drive_to(S.ABANDONED)
    _fails(
        ledger_engine,
        sa.update(events).where(events.c.issuer_id == issuer.id).values(detail='{"cause": "none"}'),
        "ctstatus ledger: events rows are never updated",
    )


def test_issuers_are_never_updated(ledger_engine, issuer, make_ca) -> None:
    other = make_ca().certificate.public_bytes(Encoding.DER)
    for values in (
        {"certificate_der": other},
        {"key_hash_sha256": b"\0" * 32},
        {"name": "renamed"},
    ):
        _fails(
            ledger_engine,
            sa.update(issuers).where(issuers.c.id == issuer.id).values(**values),
            "ctstatus ledger: issuers rows are never updated",
        )


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.ISSUED, S.PRECERT_SIGNED),
        (S.REVOKED, S.ISSUED),
        (S.ABANDONED, S.PRECERT_SIGNED),
        (S.NEVER_SIGNED, S.PRECERT_SIGNED),
        (S.NEVER_SIGNED, S.RESERVED),
        (S.RESERVED, S.ISSUED),
        (S.PRECERT_SIGNED, S.RESERVED),
        (S.ABANDONED, S.ISSUED),
        (S.ISSUED, S.ISSUED),
    ],
)
def test_backward_or_skipping_moves_fail(ledger_engine, issuer, source, target) -> None:
    row_id = issuer.drive_to(source).id
    _fails(
        ledger_engine,
        f"UPDATE serials SET state = '{target.value}' WHERE id = {row_id}",
        "ctstatus ledger: illegal state transition",
    )


def _new_value(column: str, current: object) -> object:
    if isinstance(current, bytes):
        return current + b"\x00"
    if isinstance(current, int):
        return current + 1
    if column == "serial":
        return "abc"
    if column == "request_id":
        return "another-order"
    if column == "kind":
        return "ca"
    return current + timedelta(seconds=1)  # type: ignore[operator]


@pytest.mark.parametrize(
    "column", [c for c in write_once_columns() if c not in ("revoked_at", "revocation_reason")]
)
def test_write_once_columns_cannot_change(ledger_engine, ledger, issuer, column: str) -> None:
    """Even alongside a legal transition (issued -> revoked), a set column cannot change."""
    serial = issuer.reserve(request_id=f"order-{issuer.new_serial()}", tbs_der=b"\x30\x00").serial
    issuer.step(serial, S.PRECERT_SIGNED)
    issuer.step(serial, S.ISSUED)
    with ledger_engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(serials).where(
                    serials.c.issuer_id == issuer.id, serials.c.serial == f"{serial:x}"
                )
            )
            .mappings()
            .one()
        )
    statement = (
        sa.update(serials)
        .where(serials.c.id == row["id"])
        .values(
            state="revoked",
            revoked_at=row["updated_at"],
            revocation_reason=4,
            **{column: _new_value(column, row[column])},
        )
    )
    _fails(ledger_engine, statement, f"ctstatus ledger: serials.{column} is immutable once set")
    # The same transition without the change is fine: the refusal was about the column.
    with ledger_engine.begin() as conn:
        conn.execute(
            sa.update(serials)
            .where(serials.c.id == row["id"])
            .values(state="revoked", revoked_at=row["updated_at"], revocation_reason=4)
        )


def test_revocation_is_final(ledger_engine, issuer) -> None:
    row_id = issuer.drive_to(S.REVOKED).id
    for values in ({"revocation_reason": 1}, {"revoked_at": None, "revocation_reason": None}):
        _fails(
            ledger_engine,
            sa.update(serials).where(serials.c.id == row_id).values(**values),
            "ctstatus ledger:",
        )


def test_precert_der_cannot_change_in_place(ledger_engine, issuer) -> None:
    row_id = issuer.drive_to(S.PRECERT_SIGNED).id
    _fails(
        ledger_engine,
        sa.update(serials).where(serials.c.id == row_id).values(precert_der=b"other"),
        "ctstatus ledger:",
    )


def _raw_reserved(issuer, serial_text: str, **overrides):
    values = {
        "issuer_id": issuer.id,
        "serial": serial_text,
        "state": "reserved",
        "not_before": issuer.not_before,
        "not_after": issuer.not_after,
        "crl_shard": 0,
        "created_at": issuer.not_before,
        "updated_at": issuer.not_before,
    }
    values.update(overrides)
    return sa.insert(serials).values(**values)


def test_duplicate_issuer_serial_fails(ledger_engine, issuer) -> None:
    record = issuer.drive_to(S.ISSUED)
    _fails(ledger_engine, _raw_reserved(issuer, record.serial_hex))


def test_replace_style_upserts_cannot_overwrite(ledger_engine, ledger, issuer) -> None:
    """SQLite's INSERT OR REPLACE would delete the old row without firing DELETE triggers;
    PostgreSQL's ON CONFLICT DO UPDATE is an UPDATE and meets the transition trigger."""
    record = issuer.drive_to(S.REVOKED)
    if ledger_engine.dialect.name == "sqlite":
        statement = _raw_reserved(issuer, record.serial_hex).prefix_with("OR REPLACE")
        match = "ctstatus ledger: duplicate serials"
    else:
        statement = (
            pg_insert(serials)
            .values(**_raw_reserved(issuer, record.serial_hex).compile().params)
            .on_conflict_do_update(
                index_elements=["issuer_id", "serial"], set_={"state": "reserved"}
            )
        )
        match = "ctstatus ledger: illegal state transition"
    _fails(ledger_engine, statement, match)
    assert ledger.get(issuer.id, record.serial) == record


def test_a_bare_driver_connection_meets_the_same_guards(ledger_engine, ledger, issuer) -> None:
    """The guards live in the database, not in our engine settings: a bare DB-API connection
    (no SQLAlchemy, no pragmas -- on SQLite recursive_triggers is off, so INSERT OR REPLACE
    would silently delete without the INSERT triggers) is refused just the same."""
    record = issuer.drive_to(S.ISSUED)
    attempts: list[tuple[str, tuple[object, ...], str]]
    if ledger_engine.dialect.name == "sqlite":
        raw: Any = sqlite3.connect(ledger_engine.url.database, isolation_level=None)
        assert raw.execute("PRAGMA recursive_triggers").fetchone() == (0,)
        error: type[Exception] = sqlite3.IntegrityError
        columns = (
            "serials (id, issuer_id, serial, state, not_before, not_after, crl_shard,"
            " created_at, updated_at)"
        )
        values = "'reserved', '2026-01-01', '2026-02-01', 0, '2026-01-01', '2026-01-01'"
        attempts = [  # same (issuer, serial) under a new id; same id under a new serial
            (
                f"INSERT OR REPLACE INTO {columns} VALUES (NULL, ?, ?, {values})",
                (issuer.id, record.serial_hex),
                "ctstatus ledger: duplicate serials",
            ),
            (
                f"INSERT OR REPLACE INTO {columns} VALUES ({record.id}, ?, ?, {values})",
                (issuer.id, "abc"),
                "ctstatus ledger: duplicate serials",
            ),
        ]
        placeholder = "?"
    else:
        url = ledger_engine.url.set(drivername="postgresql")
        raw = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        error = psycopg.errors.IntegrityConstraintViolation
        attempts = []
        placeholder = "%s"
    attempts += [
        (
            f"DELETE FROM serials WHERE id = {placeholder}",
            (record.id,),
            "ctstatus ledger: serials rows are never deleted",
        ),
        (
            f"UPDATE serials SET state = 'precert_signed' WHERE id = {placeholder}",
            (record.id,),
            "ctstatus ledger: illegal state transition",
        ),
    ]
    try:
        for sql, params, message in attempts:
            with pytest.raises(error, match=message):
                raw.execute(sql, params)
    finally:
        raw.close()
    assert ledger.get(issuer.id, record.serial) == record


def test_serials_are_born_reserved(ledger_engine, issuer) -> None:
    _fails(
        ledger_engine,
        _raw_reserved(issuer, "abc", state="issued", precert_der=b"p", cert_der=b"c"),
        "ctstatus ledger: a serial row must start as reserved",
    )


@pytest.mark.parametrize("text", ["ABC", "0abc", "", "0x1", "1" * 41, "xyz"])
def test_serial_text_must_be_canonical_hex(ledger_engine, issuer, text: str) -> None:
    # PostgreSQL refuses the over-long one by its VARCHAR(40) type before any CHECK.
    _fails(ledger_engine, _raw_reserved(issuer, text), errors=(BROKEN, sa.exc.DataError))


def test_forbidden_revocation_reason_fails(ledger_engine, issuer) -> None:
    row_id = issuer.drive_to(S.PRECERT_SIGNED).id
    for reason in (6, 2, 7, 8, 10, -1):
        _fails(
            ledger_engine,
            sa.update(serials)
            .where(serials.c.id == row_id)
            .values(state="revoked", revoked_at=issuer.not_before, revocation_reason=reason),
        )
    with ledger_engine.begin() as conn:  # control: an allowed reason passes
        conn.execute(
            sa.update(serials)
            .where(serials.c.id == row_id)
            .values(state="revoked", revoked_at=issuer.not_before, revocation_reason=4)
        )


@pytest.mark.parametrize(
    ("source", "values"),
    [
        (S.RESERVED, {"state": "precert_signed"}),  # no precert_der
        (S.PRECERT_SIGNED, {"state": "issued"}),  # no cert_der
        (S.PRECERT_SIGNED, {"state": "revoked"}),  # no revoked_at / reason
        (S.PRECERT_SIGNED, {"state": "revoked", "revocation_reason": 1}),  # no revoked_at
        (S.RESERVED, {"state": "never_signed", "precert_der": b"p"}),  # precert on never_signed
        (S.PRECERT_SIGNED, {"state": "abandoned", "cert_der": b"c"}),  # cert on abandoned
    ],
)
def test_state_requires_its_columns(ledger_engine, issuer, source, values) -> None:
    row_id = issuer.drive_to(source).id
    _fails(ledger_engine, sa.update(serials).where(serials.c.id == row_id).values(**values))


def test_events_state_names_and_foreign_keys_are_checked(ledger_engine, issuer) -> None:
    base = {
        "issuer_id": issuer.id,
        "at": issuer.not_before,
        "actor": "sql",
        "action": "x",
        "detail": "{}",
    }
    _fails(ledger_engine, sa.insert(events).values(**base, to_state="approved"))
    _fails(ledger_engine, sa.insert(events).values(**{**base, "issuer_id": 10**9}))
    _fails(ledger_engine, _raw_reserved(issuer, "abc", issuer_id=10**9))
