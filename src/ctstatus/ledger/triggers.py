"""Database triggers that make the ledger append-only and its state machine one-way.

The SQL is generated from ``states.py`` (transitions) and ``schema.py`` (columns, unique keys), per
dialect, so the database refuses exactly what the Python code would refuse. They are installed by
the initial migration and re-synchronised by :func:`ctstatus.ledger.migrate`; opening a ledger
compares what is installed with what this code generates (:func:`installed` vs :func:`expected`).

What the triggers forbid, on both SQLite and PostgreSQL:

* deleting rows of any table (and TRUNCATE on PostgreSQL; SQLite has none);
* updating ``issuers`` or ``events`` rows at all;
* inserting a serial in any state but the initial one;
* updating a serial other than along an edge of ``TRANSITIONS`` (same-state updates included);
* changing a serial column other than ``state``/``updated_at`` once it is non-NULL.

SQLite only: ``INSERT OR REPLACE`` would delete the conflicting row *without* firing DELETE
triggers (unless ``recursive_triggers`` is on, which ``engine.py`` sets, but other clients may
not), so BEFORE INSERT triggers refuse any insert that collides with a unique key.

Messages start with ``ctstatus ledger:`` and violations surface as ``IntegrityError`` on both
dialects (SQLite ``RAISE(ABORT)``; PostgreSQL SQLSTATE 23000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, Index, Table, UniqueConstraint, text

from ctstatus.ledger.schema import LEDGER_TABLES, serials, sql_in
from ctstatus.ledger.states import (
    DIRECT_ISSUE,
    INITIAL_STATE,
    TRANSITIONS,
    CertificateKind,
    SerialState,
)

MESSAGE_PREFIX: Final = "ctstatus ledger:"
NAME_PREFIX: Final = "ctstatus_"

FORBIDDEN: Final[dict[str, tuple[str, ...]]] = {
    "issuers": ("DELETE", "UPDATE"),
    "serials": ("DELETE",),
    "events": ("DELETE", "UPDATE"),
}
"""Operations refused outright, per table (PostgreSQL adds TRUNCATE to each)."""

SERIALS_MUTABLE: Final = ("state", "updated_at")
"""The only serial columns an UPDATE may change once set; every other column is write-once."""

_PAST_TENSE: Final = {"DELETE": "deleted", "UPDATE": "updated", "TRUNCATE": "truncated"}


def write_once_columns() -> list[str]:
    """Serial columns that are immutable once non-NULL (new columns are write-once by default)."""
    return [c.name for c in serials.columns if c.name not in SERIALS_MUTABLE]


def transition_condition(
    old: str = "OLD.state", new: str = "NEW.state", kind: str = "NEW.kind"
) -> str:
    """A SQL boolean that is true exactly for the edges of ``TRANSITIONS``, plus
    :data:`DIRECT_ISSUE` for certificates that have no precertificate (not ``subscriber``)."""
    parts = []
    for source in SerialState:
        targets = [s.value for s in SerialState if s in TRANSITIONS[source]]
        if targets:
            parts.append(f"({old} = '{source.value}' AND {sql_in(new, targets)})")
    source, target = DIRECT_ISSUE
    parts.append(
        f"({old} = '{source.value}' AND {new} = '{target.value}'"
        f" AND {kind} <> '{CertificateKind.SUBSCRIBER.value}')"
    )
    return " OR ".join(parts)


def _unique_keys(table: Table) -> list[tuple[list[str], str | None]]:
    """(columns, partial-index WHERE or None) for every unique key of ``table``."""
    keys: list[tuple[list[str], str | None]] = [([c.name for c in table.primary_key], None)]
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            keys.append(([c.name for c in constraint.columns], None))
    for index in table.indexes:
        if isinstance(index, Index) and index.unique:
            where = index.dialect_options["sqlite"]["where"]
            keys.append(([c.name for c in index.columns], None if where is None else str(where)))
    return keys


# --------------------------------------------------------------------------------------- SQLite


def _sqlite_raise(message: str) -> str:
    return f"SELECT RAISE(ABORT, '{MESSAGE_PREFIX} {message}');"


def _sqlite_trigger(name: str, event: str, table: str, when: str | None, message: str) -> str:
    when_sql = f" WHEN {when}" if when else ""
    return (
        f"CREATE TRIGGER {name} BEFORE {event} ON {table}{when_sql} "
        f"BEGIN {_sqlite_raise(message)} END"
    )


def _sqlite_triggers() -> dict[str, str]:
    out: dict[str, str] = {}
    for table_name, ops in FORBIDDEN.items():
        for op in ops:
            name = f"{NAME_PREFIX}{table_name}_no_{op.lower()}"
            out[name] = _sqlite_trigger(
                name, op, table_name, None, f"{table_name} rows are never {_PAST_TENSE[op]}"
            )
    for table in LEDGER_TABLES:
        for columns, where in _unique_keys(table):
            name = f"{NAME_PREFIX}{table.name}_unique_{'_'.join(columns)}"
            match = " AND ".join(f"{c} = NEW.{c}" for c in columns)
            if where is not None:
                match = f"{match} AND {where}"
            out[name] = _sqlite_trigger(
                name,
                "INSERT",
                table.name,
                f"EXISTS (SELECT 1 FROM {table.name} WHERE {match})",  # noqa: S608 - our names
                f"duplicate {table.name} ({', '.join(columns)})",
            )
    name = f"{NAME_PREFIX}serials_initial_state"
    out[name] = _sqlite_trigger(
        name,
        "INSERT",
        "serials",
        f"NEW.state IS NOT '{INITIAL_STATE.value}'",
        f"a serial row must start as {INITIAL_STATE.value}",
    )
    name = f"{NAME_PREFIX}serials_transition"
    out[name] = _sqlite_trigger(
        name, "UPDATE", "serials", f"NOT ({transition_condition()})", "illegal state transition"
    )
    for column in write_once_columns():
        name = f"{NAME_PREFIX}serials_write_once_{column}"
        out[name] = _sqlite_trigger(
            name,
            f"UPDATE OF {column}",
            "serials",
            f"OLD.{column} IS NOT NULL AND NEW.{column} IS NOT OLD.{column}",
            f"serials.{column} is immutable once set",
        )
    return out


# ----------------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class _PgTrigger:
    name: str
    table: str
    events: tuple[str, ...]
    row_level: bool
    function: str

    def create_sql(self) -> str:
        level = "ROW" if self.row_level else "STATEMENT"
        return (
            f"CREATE TRIGGER {self.name} BEFORE {' OR '.join(self.events)} ON {self.table} "
            f"FOR EACH {level} EXECUTE FUNCTION {self.function}()"
        )

    def signature(self) -> str:
        """How pg_trigger describes it (tgtype bits: ROW 1, BEFORE 2, INSERT 4, DELETE 8,
        UPDATE 16, TRUNCATE 32); must match :data:`_PG_INVENTORY_SQL`."""
        bits = {"INSERT": 4, "DELETE": 8, "UPDATE": 16, "TRUNCATE": 32}
        tgtype = (1 if self.row_level else 0) | 2 | sum(bits[e] for e in self.events)
        return f"{self.table} {self.function} type={tgtype} enabled=O"


_PG_ERRCODE: Final = "USING ERRCODE = 'integrity_constraint_violation'"


def _pg_functions() -> dict[str, str]:
    """Function name -> plpgsql body (compared verbatim with pg_proc.prosrc)."""
    forbid = (
        f"\nBEGIN\n  RAISE EXCEPTION '{MESSAGE_PREFIX} % rows are never %', TG_TABLE_NAME,\n"
        "    CASE TG_OP WHEN 'DELETE' THEN 'deleted' WHEN 'UPDATE' THEN 'updated'"
        " ELSE 'truncated' END\n"
        f"    {_PG_ERRCODE};\nEND\n"
    )
    insert = (
        f"\nBEGIN\n  IF NEW.state IS DISTINCT FROM '{INITIAL_STATE.value}' THEN\n"
        f"    RAISE EXCEPTION '{MESSAGE_PREFIX} a serial row must start as "
        f"{INITIAL_STATE.value}' {_PG_ERRCODE};\n"
        "  END IF;\n  RETURN NEW;\nEND\n"
    )
    checks = [
        f"  IF OLD.{c} IS NOT NULL AND NEW.{c} IS DISTINCT FROM OLD.{c} THEN\n"
        f"    RAISE EXCEPTION '{MESSAGE_PREFIX} serials.{c} is immutable once set' {_PG_ERRCODE};\n"
        "  END IF;\n"
        for c in write_once_columns()
    ]
    transition = (
        f"  IF NOT ({transition_condition()}) THEN\n"
        f"    RAISE EXCEPTION '{MESSAGE_PREFIX} illegal state transition % -> % "
        "(issuer %, serial %)',\n"
        f"      OLD.state, NEW.state, OLD.issuer_id, OLD.serial {_PG_ERRCODE};\n"
        "  END IF;\n"
    )
    # Write-once checks first, so a change of a fixed column is reported as such.
    update = "\nBEGIN\n" + "".join(checks) + transition + "  RETURN NEW;\nEND\n"
    return {
        f"{NAME_PREFIX}forbid": forbid,
        f"{NAME_PREFIX}serials_insert": insert,
        f"{NAME_PREFIX}serials_update": update,
    }


def _pg_triggers() -> list[_PgTrigger]:
    out = [
        _PgTrigger(
            f"{NAME_PREFIX}{table}_forbid", table, (*ops, "TRUNCATE"), False, f"{NAME_PREFIX}forbid"
        )
        for table, ops in FORBIDDEN.items()
    ]
    out.append(
        _PgTrigger(
            f"{NAME_PREFIX}serials_insert",
            "serials",
            ("INSERT",),
            True,
            f"{NAME_PREFIX}serials_insert",
        )
    )
    out.append(
        _PgTrigger(
            f"{NAME_PREFIX}serials_update",
            "serials",
            ("UPDATE",),
            True,
            f"{NAME_PREFIX}serials_update",
        )
    )
    return out


_PG_INVENTORY_SQL: Final = """
SELECT 'trigger ' || t.tgname,
       c.relname || ' ' || p.proname || ' type=' || t.tgtype::int
         || ' enabled=' || t.tgenabled::text
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace
  AND t.tgname LIKE 'ctstatus\\_%'
UNION ALL
SELECT 'function ' || p.proname, p.prosrc
FROM pg_proc p
WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'ctstatus\\_%'
"""

_SQLITE_INVENTORY_SQL: Final = (
    "SELECT 'trigger ' || name, sql FROM sqlite_master "
    "WHERE type = 'trigger' AND name LIKE 'ctstatus\\_%' ESCAPE '\\'"
)


# ------------------------------------------------------------------------------------ public API


def expected(dialect: str) -> dict[str, str]:
    """What :func:`installed` should return on a correct ledger of ``dialect``."""
    if dialect == "sqlite":
        return {f"trigger {name}": sql for name, sql in _sqlite_triggers().items()}
    if dialect == "postgresql":
        out = {f"function {name}": body for name, body in _pg_functions().items()}
        out.update({f"trigger {t.name}": t.signature() for t in _pg_triggers()})
        return out
    raise ValueError(f"the ledger does not support the {dialect} dialect")


def installed(conn: Connection) -> dict[str, str]:
    """The ctstatus triggers (and, on PostgreSQL, trigger functions) present in the database."""
    sql = _SQLITE_INVENTORY_SQL if conn.dialect.name == "sqlite" else _PG_INVENTORY_SQL
    return {str(k): str(v) for k, v in conn.execute(text(sql))}


def install(conn: Connection) -> None:
    """Create every trigger; the tables must exist and carry no ctstatus triggers yet."""
    statements: list[str]
    if conn.dialect.name == "sqlite":
        statements = list(_sqlite_triggers().values())
    else:
        statements = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body${body}$body$"
            for name, body in _pg_functions().items()
        ]
        statements += [t.create_sql() for t in _pg_triggers()]
    for statement in statements:
        conn.exec_driver_sql(statement, execution_options={"no_parameters": True})


def drop(conn: Connection) -> None:
    """Drop every ctstatus trigger (and trigger function) present, whatever this code expects."""
    if conn.dialect.name == "sqlite":
        for key in installed(conn):
            conn.exec_driver_sql(f"DROP TRIGGER {key.removeprefix('trigger ')}")
        return
    rows = conn.execute(
        text(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace "
            "AND t.tgname LIKE 'ctstatus\\_%'"
        )
    )
    for trigger, table in list(rows):
        conn.exec_driver_sql(f'DROP TRIGGER "{trigger}" ON "{table}"')
    for key in installed(conn):
        if key.startswith("function "):
            conn.exec_driver_sql(f'DROP FUNCTION "{key.removeprefix("function ")}"()')


def sync(conn: Connection) -> bool:
    """Make the installed triggers exactly the expected ones; True if anything changed."""
    if installed(conn) == expected(conn.dialect.name):
        return False
    drop(conn)
    install(conn)
    return True
