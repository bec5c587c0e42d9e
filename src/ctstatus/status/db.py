"""Database access of the status services: ledger reads, pre-signed responses, CRLs.

The ledger's own :class:`~ctstatus.ledger.Ledger` is the API for *changing* status. The status
services only read ``serials`` and write their derived tables (``ocsp_responses``, ``crls``),
with queries shaped for them: the serial and its stored responses in one round trip, batches of
responses due for refresh, the revoked serials of one CRL shard.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, literal, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite

from ctstatus.ledger import Issuer, SerialRecord, SerialState
from ctstatus.ledger.engine import reading as reading
from ctstatus.ledger.engine import writing as writing
from ctstatus.ledger.schema import crls, issuers, ocsp_responses, serials
from ctstatus.ledger.serialnum import is_valid_serial, serial_to_hex


def lock_conn(conn: Connection, key: int) -> None:
    """Inside a write transaction: serialise status workers on ``key`` (PostgreSQL).

    On SQLite the transaction's write lock (``BEGIN IMMEDIATE``) already serialises them.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@contextmanager
def turn(engine: Engine, key: int) -> Iterator[bool]:
    """Whether this worker may do the job named ``key`` now; held until the block ends.

    PostgreSQL: a try-advisory lock in a transaction of its own, so several responders sharing a
    ledger take turns. SQLite (one host, one writer at a time): always yes, and no transaction is
    held, since the job itself must be able to write.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    with writing(engine) as conn:
        yield bool(conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}))


def load_issuers(engine: Engine) -> list[Issuer]:
    with reading(engine) as conn:
        return [Issuer.from_row(r) for r in conn.execute(select(issuers)).mappings()]


# ----------------------------------------------------------------------------- OCSP responses


@dataclass(frozen=True)
class StoredResponse:
    """One pre-signed response and the serial state it was signed for."""

    serial_id: int
    hash_algorithm: str
    issuer_id: int
    serial_state: SerialState
    this_update: datetime
    next_update: datetime
    refresh_at: datetime
    responder: str
    response_der: bytes

    @classmethod
    def from_row(cls, row: Any) -> StoredResponse:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["serial_state"] = SerialState(row["serial_state"])
        return cls(**values)

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "serial_state": self.serial_state.value
        }


def serial_with_responses(
    engine: Engine, issuer_id: int, serial: int
) -> tuple[SerialRecord | None, dict[str, StoredResponse]]:
    """The serial's ledger record and its stored responses by hash, in one read transaction."""
    if not is_valid_serial(serial):
        return None, {}
    with reading(engine) as conn:
        row = (
            conn.execute(
                select(serials).where(
                    serials.c.issuer_id == issuer_id, serials.c.serial == serial_to_hex(serial)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None, {}
        stored = conn.execute(
            select(ocsp_responses).where(ocsp_responses.c.serial_id == row["id"])
        ).mappings()
        responses = {r["hash_algorithm"]: StoredResponse.from_row(r) for r in stored}
        return SerialRecord.from_row(row), responses


def records_by_serials(engine: Engine, keys: Sequence[tuple[int, int]]) -> list[SerialRecord]:
    """The records of (issuer_id, serial) pairs that exist."""
    if not keys:
        return []
    wanted = [and_(serials.c.issuer_id == i, serials.c.serial == serial_to_hex(s)) for i, s in keys]
    with reading(engine) as conn:
        rows = conn.execute(select(serials).where(or_(*wanted))).mappings()
        return [SerialRecord.from_row(r) for r in rows]


def upsert_responses(engine: Engine, responses: Sequence[StoredResponse]) -> None:
    """Store responses, replacing older ones (a stale writer never replaces a newer response)."""
    if not responses:
        return
    with writing(engine) as conn:
        store_responses(conn, responses)


def store_responses(conn: Connection, responses: Sequence[StoredResponse]) -> None:
    """:func:`upsert_responses` inside the caller's transaction (e.g. issuance's own)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    table = ocsp_responses
    for response in responses:
        statement = insert(table).values(**response.values())
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.serial_id, table.c.hash_algorithm],
            set_={
                c.name: excluded[c.name]
                for c in table.columns
                if c.name not in ("serial_id", "hash_algorithm")
            },
            where=(excluded.this_update >= table.c.this_update)
            | (excluded.serial_state != table.c.serial_state),
        )
        conn.execute(statement)


@dataclass(frozen=True)
class RefreshCandidate:
    """A serial whose response for ``hash_algorithm`` is missing, outdated or due for refresh."""

    record: SerialRecord
    hash_algorithm: str


def refresh_candidates(
    engine: Engine,
    *,
    now: datetime,
    hash_algorithms: Sequence[str],
    states: Sequence[SerialState],
    limit: int,
    issuer_ids: Sequence[int],
) -> list[RefreshCandidate]:
    """Unexpired serials in ``states`` lacking a current response for one of ``hash_algorithms``.

    A response is current if it was signed for the serial's present state and its refresh time
    has not come. One query per hash, each bounded by ``limit``.
    """
    out: list[RefreshCandidate] = []
    with reading(engine) as conn:
        for hash_algorithm in hash_algorithms:
            joined = serials.outerjoin(
                ocsp_responses,
                and_(
                    ocsp_responses.c.serial_id == serials.c.id,
                    ocsp_responses.c.hash_algorithm == literal(hash_algorithm),
                ),
            )
            query = (
                select(serials)
                .select_from(joined)
                .where(
                    serials.c.issuer_id.in_(list(issuer_ids)),
                    serials.c.state.in_([s.value for s in states]),
                    serials.c.not_after > now,
                    (ocsp_responses.c.serial_id.is_(None))
                    | (ocsp_responses.c.serial_state != serials.c.state)
                    | (ocsp_responses.c.refresh_at <= now),
                )
                .order_by(serials.c.id)
                .limit(limit)
            )
            for row in conn.execute(query).mappings():
                out.append(RefreshCandidate(SerialRecord.from_row(row), hash_algorithm))
    return out


def stored_for_export(
    engine: Engine, issuer_id: int, after_serial_id: int, limit: int
) -> list[tuple[SerialRecord, StoredResponse]]:
    """Stored responses of ``issuer_id`` with their serial's current record, in serial-id order."""
    query = (
        select(serials, *[c.label(f"o_{c.name}") for c in ocsp_responses.columns])
        .join(ocsp_responses, ocsp_responses.c.serial_id == serials.c.id)
        .where(serials.c.issuer_id == issuer_id, serials.c.id > after_serial_id)
        .order_by(serials.c.id, ocsp_responses.c.hash_algorithm)
        .limit(limit)
    )
    with reading(engine) as conn:
        out = []
        for row in conn.execute(query).mappings():
            stored = StoredResponse.from_row(
                {name[2:]: row[name] for name in row if name.startswith("o_")}
            )
            out.append((SerialRecord.from_row(row), stored))
        return out


# ----------------------------------------------------------------------------------------- CRLs


@dataclass(frozen=True)
class CrlRow:
    """One published CRL."""

    id: int
    issuer_id: int
    shard: int
    partitioned: bool
    url: str
    crl_number: int
    this_update: datetime
    next_update: datetime
    entries: int
    entries_sha256: bytes
    crl_der: bytes
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> CrlRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def latest_crl(conn: Connection, issuer_id: int, shard: int) -> CrlRow | None:
    row = (
        conn.execute(
            select(crls)
            .where(crls.c.issuer_id == issuer_id, crls.c.shard == shard)
            .order_by(crls.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else CrlRow.from_row(row)


def latest_crls(engine: Engine) -> list[CrlRow]:
    """The newest CRL of every (issuer, shard) ever published."""
    newest = (
        select(func.max(crls.c.id).label("id")).group_by(crls.c.issuer_id, crls.c.shard)
    ).subquery()
    with reading(engine) as conn:
        rows = conn.execute(select(crls).join(newest, newest.c.id == crls.c.id)).mappings()
        return [CrlRow.from_row(r) for r in rows]


def newest_crl_id(engine: Engine) -> int:
    with reading(engine) as conn:
        return int(conn.scalar(select(func.coalesce(func.max(crls.c.id), 0))) or 0)


@dataclass(frozen=True)
class RevokedEntry:
    """A CRL entry as the ledger holds it."""

    serial: int
    revoked_at: datetime
    reason: int


def revoked_in_shard(
    conn: Connection,
    issuer_id: int,
    shard: int,
    *,
    states: Sequence[SerialState],
    expired_before: datetime | None,
) -> list[RevokedEntry]:
    """Revoked serials of one shard, leaving out those that expired before ``expired_before``."""
    query = select(serials.c.serial, serials.c.revoked_at, serials.c.revocation_reason).where(
        serials.c.issuer_id == issuer_id,
        serials.c.crl_shard == shard,
        serials.c.state.in_([s.value for s in states]),
    )
    if expired_before is not None:
        query = query.where(serials.c.not_after >= expired_before)
    return sorted(
        (RevokedEntry(int(s, 16), at, int(reason)) for s, at, reason in conn.execute(query)),
        key=lambda e: e.serial,
    )


def shards_in_use(engine: Engine, issuer_id: int) -> list[int]:
    with reading(engine) as conn:
        rows = conn.execute(
            select(serials.c.crl_shard).where(serials.c.issuer_id == issuer_id).distinct()
        )
        return sorted(int(r[0]) for r in rows)
