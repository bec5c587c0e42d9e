"""The watcher's own database: log cursors, the entry index, the check queue and problems.

SQLite by default, PostgreSQL for scale (the ledger's engine settings are reused: WAL,
``synchronous=FULL``, ``BEGIN IMMEDIATE``); the schema is versioned by alembic
(:mod:`ctstatus.watch.migrate`, its own version table) and brought to head on open. The one
rule that makes kill -9 harmless: a batch of entries and the log cursor that covers them are
written in ONE transaction
(:meth:`WatchStore.commit_batch`), so a restart resumes exactly after the last committed entry
-- no gap, no duplicate (the unique ``(log_id, idx)`` key would refuse one anyway).

Each log has two positions, as in certspotter: ``download`` (entries read, compact tree over
them) and ``verified`` (the prefix whose recomputed root equalled a signed tree head). Only
verified entries are queued for status checks. Only entries of watched issuers get a row: for
the rest of a log (billions of entries) the cursor and its compact tree are all that is kept,
so storage grows with what is watched, not with the log.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from ctstatus.ct.merkle import CompactTree
from ctstatus.ledger.engine import READ_ONLY
from ctstatus.watch.migrate import create_watch_engine, migrate
from ctstatus.watch.problems import Finding

metadata = sa.MetaData()

logs = sa.Table(
    "watch_logs",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("download_size", sa.BigInteger, nullable=False, default=0),
    sa.Column("download_nodes", sa.Text, nullable=False, default="[]"),
    sa.Column("verified_size", sa.BigInteger, nullable=False, default=0),
    sa.Column("verified_root", sa.LargeBinary, nullable=True),
    sa.Column("verified_nodes", sa.Text, nullable=False, default="[]"),
    sa.Column("verified_sth_ms", sa.BigInteger, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False, default=0.0),
    # where following began (migration 0003): entries below it were never read
    sa.Column("start_index", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    # the signed head's timestamp when following began mid-log: what the log held by then
    # (entries below start_index) was never read (migration 0003)
    sa.Column("start_sth_ms", sa.BigInteger, nullable=True),
)

issuers = sa.Table(
    "watch_issuers",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),  # hex SHA-256 of the SPKI (CT's)
    sa.Column("certificate_der", sa.LargeBinary, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
)

entries = sa.Table(
    "watch_entries",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("precert", sa.Boolean, nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("issuer_key", sa.String(64), nullable=True),
    sa.Column("serial", sa.String(42), nullable=True),
    sa.Column("tbs_sha256", sa.LargeBinary, nullable=True),
    sa.Column("watched", sa.Boolean, nullable=False),
    sa.Column("info", sa.Text, nullable=True),  # JSON: names, validity, URLs (watched only)
    sa.Column("der", sa.LargeBinary, nullable=True),  # watched only: for reconcile --fix
)
# Serials of watched entries only (migration 0002): reconcile and the dashboard ask about nothing
# else, and indexing every entry of a log by serial was a third of the cost of following it.
sa.Index(
    "watch_entries_watched_serial",
    entries.c.issuer_key,
    entries.c.serial,
    sqlite_where=sa.text("watched IS 1"),
    postgresql_where=sa.text("watched IS true"),
)

certs = sa.Table(
    "watch_certs",
    metadata,
    sa.Column("issuer_key", sa.String(64), primary_key=True),
    sa.Column("serial", sa.String(42), primary_key=True),
    sa.Column("tbs_sha256", sa.LargeBinary, nullable=False),
    sa.Column("has_precert", sa.Boolean, nullable=False, default=False),
    sa.Column("has_final", sa.Boolean, nullable=False, default=False),
    sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("info", sa.Text, nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("last_checked", sa.Float, nullable=True),
    sa.Column("last_result", sa.Text, nullable=True),
    # checks in a row that found a problem (migration 0004): sets the retry back-off
    sa.Column("failures", sa.Integer, nullable=False, default=0, server_default=sa.text("0")),
)
sa.Index("watch_certs_due", certs.c.due_at)

#: Small named values (migration 0004): the plan the check queue was made with.
meta = sa.Table(
    "watch_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: Which watcher process follows which log, until when (migration 0004; PostgreSQL, several
#: processes): see :mod:`ctstatus.watch.leases`.
leases = sa.Table(
    "watch_leases",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("holder", sa.Text, nullable=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)
members = sa.Table(
    "watch_members",
    metadata,
    sa.Column("holder", sa.String(200), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)

#: Every check's answers, append-only (``watch_certs.last_*`` holds only the latest), written
#: in the same transaction as that update: the serial page's timeline reads it.
checks = sa.Table(
    "watch_checks",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("issuer_key", sa.String(64), nullable=False),
    sa.Column("serial", sa.String(42), nullable=False),
    sa.Column("checked_at", sa.Float, nullable=False),
    sa.Column("ocsp", sa.Text, nullable=False),  # good / revoked / unknown / None / none (no URL)
    # revoked / not_listed, or JSON {"status", "url", "number", "this_update"} naming the CRL
    # that said so; NULL: no CRL, or stale
    sa.Column("crl", sa.Text, nullable=True),
    sa.Column("findings", sa.Text, nullable=False),  # JSON list of the problem codes found
)
sa.Index("watch_checks_serial", checks.c.serial, checks.c.checked_at)

problems = sa.Table(
    "watch_problems",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),  # the CA (issuer name) or the log
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float, nullable=True),
    sa.Column("alerted_open", sa.Boolean, nullable=False, default=False),
    sa.Column("alerted_resolved", sa.Boolean, nullable=False, default=False),
)
sa.Index("watch_problems_open", problems.c.subject, problems.c.resolved_at)


@dataclass(frozen=True)
class LogCursor:
    """Where a log's download and verification stand."""

    log_id: str
    download: CompactTree
    verified: CompactTree
    verified_root: bytes | None
    verified_sth_ms: int | None
    start_index: int = 0


class EntryRow(NamedTuple):
    """One entry as the index stores it (see :mod:`ctstatus.watch.entries`).

    A named tuple rather than a dataclass: one is built per log entry, and a frozen dataclass
    costs four times as much to build.
    """

    idx: int
    precert: bool
    timestamp_ms: int
    issuer_key: str | None
    serial: str | None
    tbs_sha256: bytes | None
    watched: bool
    info: dict[str, Any] | None
    der: bytes | None

    def row(self, log_id: str) -> tuple[Any, ...]:
        """The values in the table's column order (the SQLite bulk insert's parameters)."""
        return (
            log_id,
            self.idx,
            self.precert,
            self.timestamp_ms,
            self.issuer_key,
            self.serial,
            self.tbs_sha256,
            self.watched,
            None if self.info is None else json.dumps(self.info, sort_keys=True),
            self.der,
        )

    def values(self, log_id: str) -> dict[str, Any]:
        return {
            "log_id": log_id,
            "idx": self.idx,
            "precert": self.precert,
            "timestamp_ms": self.timestamp_ms,
            "issuer_key": self.issuer_key,
            "serial": self.serial,
            "tbs_sha256": self.tbs_sha256,
            "watched": self.watched,
            "info": None if self.info is None else json.dumps(self.info, sort_keys=True),
            "der": self.der,
        }


@dataclass(frozen=True)
class QueuedCert:
    """A watched (pre)certificate due for a status check."""

    issuer_key: str
    serial: str
    info: dict[str, Any]
    has_precert: bool
    has_final: bool
    first_seen_ms: int
    failures: int = 0  # checks in a row that found a problem


@dataclass(frozen=True)
class CheckDone:
    """The outcome of one certificate's check, to be written with others."""

    cert: QueuedCert
    subject: str
    scope: str
    findings: Sequence[Finding]
    now: float
    family: str
    next_due: float
    result: str
    crl: str | None = None
    crl_checked: Mapping[str, Any] | None = None
    """Which CRL gave ``crl``: its URL, CRL number and thisUpdate."""
    failures: int = 0  # after this check: 0 if it found nothing


@dataclass(frozen=True)
class CheckRow:
    """One check of the history (``watch_checks``)."""

    issuer_key: str
    serial: str
    checked_at: float
    ocsp: str
    crl: str | None
    findings: list[str]
    crl_checked: dict[str, Any] | None = None


def _crl_column(status: str | None, checked: Mapping[str, Any] | None) -> str | None:
    """``watch_checks.crl``: the status alone, or a JSON object with the CRL that gave it."""
    if checked is None:
        return status
    return json.dumps({"status": status, **checked}, sort_keys=True)


def _crl_from_column(value: str | None) -> tuple[str | None, dict[str, Any] | None]:
    if value is None or not value.startswith("{"):
        return value, None
    parsed = dict(json.loads(value))
    return parsed.pop("status", None), parsed


@dataclass(frozen=True)
class Problem:
    id: int
    code: str
    subject: str
    scope: str
    severity: str
    message: str
    evidence: dict[str, Any]
    first_seen: float
    last_seen: float
    resolved_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "subject": self.subject,
            "ca": self.scope,
            "severity": self.severity,
            "message": self.message,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "resolved_at": self.resolved_at,
            "evidence": self.evidence,
        }


_SQLITE_INSERT = sa.insert(entries).compile(dialect=sqlite_dialect())
_SQLITE_INSERT_ENTRIES = str(_SQLITE_INSERT)
assert _SQLITE_INSERT.positiontup == [c.name for c in entries.columns]  # EntryRow.row's order
FRONT = 0.0
"""The due time of a requested recheck: before every real time, so first in the queue."""
SQLITE_CACHE_KIB = 256 * 1024
"""Page cache per SQLite connection: a commit of many entries dirties index pages all over the
serial index, and with SQLite's 2 MiB default they are spilled and re-read within it."""


def _sqlite_cache(dbapi_connection: Any, record: object) -> None:
    dbapi_connection.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")


def _nodes(text: str) -> list[bytes]:
    return [bytes.fromhex(n) for n in json.loads(text)]


def _text(tree: CompactTree) -> str:
    return json.dumps([n.hex() for n in tree.state()[1]])


class WatchStore:
    """Every read and write of the watcher's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        if self._sqlite:
            sa.event.listen(engine, "connect", _sqlite_cache)
            engine.dispose()  # connections opened before the listener get it on reconnect
        migrate(engine)

    @classmethod
    def open(cls, url: str) -> WatchStore:
        engine = create_watch_engine(url)
        try:
            return cls(engine)
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> WatchStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                yield conn

    # -- logs ------------------------------------------------------------------------------

    def cursor(self, log_id: str, name: str, url: str) -> LogCursor:
        """The log's cursor, created at zero the first time the log is seen."""
        found = self.find_cursor(log_id)
        if found is not None:
            return found
        return self.start_cursor(log_id, name, url, CompactTree(), None, None)

    def unread_until_ms(self) -> int | None:
        """The latest head timestamp before which some followed log was not read (it was
        started mid-log); None when every log was followed from its first entry. A
        precertificate logged before then may be in a prefix we never downloaded."""
        with self._read() as conn:
            value = conn.execute(
                sa.select(sa.func.max(logs.c.start_sth_ms)).where(logs.c.start_index > 0)
            ).scalar()
        return None if value is None else int(value)

    def find_cursor(self, log_id: str) -> LogCursor | None:
        """The log's cursor, or None if the log was never followed."""
        with self._read() as conn:
            row = conn.execute(sa.select(logs).where(logs.c.log_id == log_id)).mappings().first()
        if row is None:
            return None
        return LogCursor(
            log_id,
            CompactTree.from_state(int(row["download_size"]), _nodes(row["download_nodes"])),
            CompactTree.from_state(int(row["verified_size"]), _nodes(row["verified_nodes"])),
            row["verified_root"],
            row["verified_sth_ms"],
            int(row["start_index"]),
        )

    def start_cursor(
        self,
        log_id: str,
        name: str,
        url: str,
        tree: CompactTree,
        root: bytes | None,
        sth_ms: int | None,
        *,
        start_sth_ms: int | None = None,
    ) -> LogCursor:
        """A new log's cursor at ``tree`` (a verified right edge, ``root`` its root), downloaded
        and verified up to there; a second watcher starting the same log at once is refused.
        ``start_sth_ms``: the timestamp of the head the start was proven against."""
        nodes = _text(tree)
        with self._write() as conn:
            conn.execute(
                sa.insert(logs).values(
                    log_id=log_id,
                    name=name,
                    url=url,
                    download_size=tree.size,
                    download_nodes=nodes,
                    verified_size=tree.size,
                    verified_nodes=nodes,
                    verified_root=root,
                    verified_sth_ms=sth_ms,
                    start_index=tree.size,
                    start_sth_ms=start_sth_ms if tree.size else None,
                )
            )
        return LogCursor(log_id, tree.copy(), tree.copy(), root, sth_ms, tree.size)

    def commit_batch(
        self,
        log_id: str,
        rows: Sequence[EntryRow],
        download: CompactTree,
        *,
        now: float,
        verified: tuple[CompactTree, bytes, int] | None = None,
        queue: Iterable[tuple[EntryRow, float]] = (),
        since: int | None = None,
    ) -> None:
        """Entries, the download cursor after them (and, if reached, the verified position and
        the newly verified watched entries to queue) in one transaction. ``since`` is the
        download size these entries follow (default: ``rows`` are every entry in between)."""
        expected = download.size - len(rows) if since is None else since
        with self._write() as conn:
            if rows and self._sqlite:  # the driver's executemany: no per-row SQLAlchemy work
                head = (log_id,)  # + an EntryRow is a row in column order when info is None
                params = [head + r if r.info is None else r.row(log_id) for r in rows]
                conn.exec_driver_sql(_SQLITE_INSERT_ENTRIES, params)
            elif rows:
                conn.execute(sa.insert(entries), [r.values(log_id) for r in rows])
            values: dict[str, Any] = {
                "download_size": download.size,
                "download_nodes": _text(download),
                "updated_at": now,
            }
            if verified is not None:
                tree, root, sth_ms = verified
                values |= {
                    "verified_size": tree.size,
                    "verified_nodes": _text(tree),
                    "verified_root": root,
                    "verified_sth_ms": sth_ms,
                }
            updated = conn.execute(
                sa.update(logs)
                .where(logs.c.log_id == log_id, logs.c.download_size == expected)
                .values(**values)
            )
            if updated.rowcount != 1:
                raise RuntimeError(f"log {log_id[:12]}: cursor moved under us (two watchers?)")
            self._queue_many(conn, list(queue))

    def rewind(self, log_id: str) -> int:
        """Drop entries past the verified position (their root did not match); how many."""
        with self._write() as conn:
            row = conn.execute(sa.select(logs).where(logs.c.log_id == log_id)).mappings().one()
            size = int(row["verified_size"])
            deleted = conn.execute(
                sa.delete(entries).where(entries.c.log_id == log_id, entries.c.idx >= size)
            ).rowcount
            conn.execute(
                sa.update(logs)
                .where(logs.c.log_id == log_id)
                .values(download_size=size, download_nodes=row["verified_nodes"])
            )
            return int(deleted)

    def unverified_watched(self, log_id: str, start: int, end: int) -> list[EntryRow]:
        """Watched entries in [start, end) of a log (to queue once they are verified)."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(entries)
                .where(
                    entries.c.log_id == log_id,
                    entries.c.idx >= start,
                    entries.c.idx < end,
                    entries.c.watched.is_(True),
                )
                .order_by(entries.c.idx)
            ).mappings()
            return [
                EntryRow(
                    int(r["idx"]),
                    bool(r["precert"]),
                    int(r["timestamp_ms"]),
                    r["issuer_key"],
                    r["serial"],
                    r["tbs_sha256"],
                    True,
                    json.loads(r["info"]) if r["info"] else None,
                    r["der"],
                )
                for r in rows
            ]

    def entry_count(self, log_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(entries)
        if log_id is not None:
            query = query.where(entries.c.log_id == log_id)
        with self._read() as conn:
            return int(conn.scalar(query) or 0)

    def entry_indexes(self, log_id: str) -> list[int]:
        with self._read() as conn:
            return [
                int(i)
                for i in conn.scalars(
                    sa.select(entries.c.idx).where(entries.c.log_id == log_id).order_by("idx")
                )
            ]

    # -- issuers and the check queue -------------------------------------------------------

    def add_issuer(self, key_hash: str, der: bytes, name: str) -> None:
        with self._write() as conn:
            exists = conn.scalar(
                sa.select(issuers.c.key_hash).where(issuers.c.key_hash == key_hash)
            )
            if exists is None:
                conn.execute(
                    sa.insert(issuers).values(key_hash=key_hash, certificate_der=der, name=name)
                )

    def issuer_certificates(self) -> dict[str, tuple[bytes, str]]:
        with self._read() as conn:
            return {
                r.key_hash: (r.certificate_der, r.name) for r in conn.execute(sa.select(issuers))
            }

    @staticmethod
    def _queue_many(conn: Connection, queue: list[tuple[EntryRow, float]]) -> None:
        """Add verified watched entries to the check queue; a precert and its final certificate
        (same issuer, serial and TBS hash) share one row, due at the earlier of the two."""
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for row, due in queue:
            assert row.issuer_key is not None
            assert row.serial is not None
            key = (row.issuer_key, row.serial)
            flag = "has_precert" if row.precert else "has_final"
            current = merged.get(key)
            if current is None:
                merged[key] = {
                    "issuer_key": row.issuer_key,
                    "serial": row.serial,
                    "tbs_sha256": row.tbs_sha256,
                    "has_precert": row.precert,
                    "has_final": not row.precert,
                    "first_seen_ms": row.timestamp_ms,
                    "info": json.dumps(row.info, sort_keys=True),
                    "due_at": due,
                }
                continue
            current[flag] = True
            current["first_seen_ms"] = min(current["first_seen_ms"], row.timestamp_ms)
            current["due_at"] = min(current["due_at"], due)
        if not merged:
            return
        serials = sorted({serial for _, serial in merged})
        existing = {
            (r.issuer_key, r.serial): r
            for chunk in range(0, len(serials), 500)
            for r in conn.execute(
                sa.select(certs).where(certs.c.serial.in_(serials[chunk : chunk + 500]))
            )
        }
        new = [v for k, v in merged.items() if k not in existing]
        if new:
            conn.execute(sa.insert(certs), new)
        for key, values in merged.items():
            old = existing.get(key)
            if old is None:
                continue
            conn.execute(
                sa.update(certs)
                .where(certs.c.issuer_key == key[0], certs.c.serial == key[1])
                .values(
                    has_precert=bool(old.has_precert or values["has_precert"]),
                    has_final=bool(old.has_final or values["has_final"]),
                    first_seen_ms=min(int(old.first_seen_ms), values["first_seen_ms"]),
                    due_at=min(float(old.due_at), values["due_at"]),
                )
            )

    def due(
        self, now: float, limit: int = 1000, *, claim_seconds: float | None = None
    ) -> list[QueuedCert]:
        """The certificates due at ``now``, front of the queue first. With ``claim_seconds`` on
        PostgreSQL (several watcher processes), they are claimed: moved ``claim_seconds`` ahead
        in the same transaction (``FOR UPDATE SKIP LOCKED``), so another process does not check
        them too; the check's result sets the real next time, and a process that dies
        mid-check leaves them due again when the claim runs out."""
        if claim_seconds is None or self._sqlite:
            with self._read() as conn:
                rows = list(
                    conn.execute(
                        sa.select(certs)
                        .where(certs.c.due_at <= now)
                        .order_by(certs.c.due_at)
                        .limit(limit)
                    ).mappings()
                )
        else:
            picked = (
                sa.select(certs.c.issuer_key, certs.c.serial)
                .where(certs.c.due_at <= now)
                .order_by(certs.c.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            with self._write() as conn:
                rows = list(
                    conn.execute(
                        sa.update(certs)
                        .where(sa.tuple_(certs.c.issuer_key, certs.c.serial).in_(picked))
                        .values(due_at=now + claim_seconds)
                        .returning(*certs.c)
                    ).mappings()
                )
        return [
            QueuedCert(
                r["issuer_key"],
                r["serial"],
                json.loads(r["info"]),
                bool(r["has_precert"]),
                bool(r["has_final"]),
                int(r["first_seen_ms"]),
                int(r["failures"] or 0),
            )
            for r in rows
        ]

    def request_recheck(self, serials: Sequence[str] | None) -> int:
        """Put these serials (hex, any issuer; None: every certificate) at the front of the
        queue: due at :data:`FRONT`, before anything merely overdue. How many were found."""
        query = sa.update(certs).values(due_at=FRONT)
        with self._write() as conn:
            if serials is None:
                return int(conn.execute(query).rowcount)
            found = 0
            for chunk in range(0, len(serials), 500):
                part = list(serials[chunk : chunk + 500])
                found += int(conn.execute(query.where(certs.c.serial.in_(part))).rowcount)
            return found

    def known_serials(self, serials: Sequence[str]) -> set[str]:
        """Which of these serials (hex) are in the check queue, under any issuer."""
        found: set[str] = set()
        with self._read() as conn:
            for chunk in range(0, len(serials), 500):
                part = list(serials[chunk : chunk + 500])
                found.update(
                    conn.scalars(sa.select(certs.c.serial).where(certs.c.serial.in_(part)))
                )
        return found

    def next_due(self) -> float | None:
        """When the earliest check is due (the due index's first row); None: queue empty."""
        with self._read() as conn:
            value = conn.scalar(sa.select(sa.func.min(certs.c.due_at)))
            return None if value is None else float(value)

    def replan(self, own_issuers: Collection[str], grace_seconds: float) -> int | None:
        """Re-plan the first checks still waiting (never checked) when the grace or the own
        issuers (no grace) changed since the queue was planned; None when nothing changed,
        else how many were moved. Requested rechecks stay at the front."""
        plan = json.dumps({"grace": grace_seconds, "own": sorted(own_issuers)})
        own = sorted(own_issuers)
        with self._write() as conn:
            if conn.scalar(sa.select(meta.c.value).where(meta.c.key == "queue_plan")) == plan:
                return None
            waiting = (certs.c.last_checked.is_(None), certs.c.due_at > FRONT)
            seen = certs.c.first_seen_ms // 1000  # whole seconds, as the follower plans
            moved = conn.execute(
                sa.update(certs)
                .where(*waiting, certs.c.issuer_key.not_in(own))
                .values(due_at=seen + grace_seconds)
            ).rowcount
            if own:
                moved += conn.execute(
                    sa.update(certs)
                    .where(*waiting, certs.c.issuer_key.in_(own))
                    .values(due_at=seen)
                ).rowcount
            conn.execute(sa.delete(meta).where(meta.c.key == "queue_plan"))
            conn.execute(sa.insert(meta).values(key="queue_plan", value=plan))
            return int(moved)

    def cert_count(self) -> int:
        with self._read() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(certs)) or 0)

    def serials_seen(self, issuer_key: str) -> dict[str, tuple[int, bytes | None, bool]]:
        """Serials of one issuer seen in CT: serial -> (earliest timestamp, a DER, is precert)."""
        result: dict[str, tuple[int, bytes | None, bool]] = {}
        with self._read() as conn:
            rows = conn.execute(
                sa.select(
                    entries.c.serial, entries.c.timestamp_ms, entries.c.der, entries.c.precert
                )
                .where(entries.c.issuer_key == issuer_key, entries.c.watched.is_(True))
                .order_by(entries.c.timestamp_ms)
            )
            for serial, ts, der, precert in rows:
                if serial is None:
                    continue
                known = result.get(serial)
                if known is None or (precert and not known[2]):
                    result[serial] = (known[0] if known else int(ts), der, bool(precert))
        return result

    # -- problems --------------------------------------------------------------------------

    def record(
        self, subject: str, scope: str, findings: Sequence[Finding], now: float, *, family: str
    ) -> None:
        """The result of checking ``subject``: open or refresh each finding, resolve the open
        problems of the same ``family`` (code prefix set) that this check no longer finds."""
        with self._write() as conn:
            self._record(conn, subject, scope, findings, now, family)

    def finish_checks(self, done: Sequence[CheckDone]) -> None:
        """Many certificates' findings and next due times in one transaction (one fsync): a
        crash loses at most these results, and the certificates are simply checked again."""
        subjects = sorted({item.subject for item in done})
        with self._write() as conn:
            open_rows: dict[str, list[tuple[int, str]]] = {}
            for chunk in range(0, len(subjects), 500):
                query = sa.select(problems.c.id, problems.c.code, problems.c.subject).where(
                    problems.c.subject.in_(subjects[chunk : chunk + 500]),
                    problems.c.resolved_at.is_(None),
                )
                for pid, code, subject in conn.execute(query):
                    open_rows.setdefault(subject, []).append((pid, code))
            for item in done:
                if item.findings or item.subject in open_rows:
                    self._record(
                        conn,
                        item.subject,
                        item.scope,
                        item.findings,
                        item.now,
                        item.family,
                        open_rows.get(item.subject, []),
                    )
            conn.execute(
                sa.update(certs)
                .where(
                    certs.c.issuer_key == sa.bindparam("k_issuer"),
                    certs.c.serial == sa.bindparam("k_serial"),
                )
                .values(
                    last_checked=sa.bindparam("k_now"),
                    due_at=sa.bindparam("k_due"),
                    last_result=sa.bindparam("k_result"),
                    failures=sa.bindparam("k_failures"),
                ),
                [
                    {
                        "k_issuer": i.cert.issuer_key,
                        "k_serial": i.cert.serial,
                        "k_now": i.now,
                        "k_due": i.next_due,
                        "k_result": i.result,
                        "k_failures": i.failures,
                    }
                    for i in done
                ],
            )
            conn.execute(
                sa.insert(checks),
                [
                    {
                        "issuer_key": i.cert.issuer_key,
                        "serial": i.cert.serial,
                        "checked_at": i.now,
                        "ocsp": i.result,
                        "crl": _crl_column(i.crl, i.crl_checked),
                        "findings": json.dumps(sorted({f.code.value for f in i.findings})),
                    }
                    for i in done
                ],
            )

    def check_history(
        self, serial: str, *, issuer_key: str | None = None, limit: int = 500
    ) -> list[CheckRow]:
        """The latest ``limit`` checks of a serial (hex, as stored), oldest first."""
        query = sa.select(checks).where(checks.c.serial == serial)
        if issuer_key is not None:
            query = query.where(checks.c.issuer_key == issuer_key)
        query = query.order_by(checks.c.checked_at.desc(), checks.c.id.desc()).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        out = []
        for r in reversed(rows):
            crl, crl_checked = _crl_from_column(r["crl"])
            out.append(
                CheckRow(
                    r["issuer_key"],
                    r["serial"],
                    float(r["checked_at"]),
                    r["ocsp"],
                    crl,
                    list(json.loads(r["findings"])),
                    crl_checked,
                )
            )
        return out

    def trim_checks(self, *, before: float) -> int:
        """Drop the history of checks made before ``before`` (``history_days``); how many.
        Only the history: each certificate's last check stays in ``watch_certs``."""
        with self._write() as conn:
            return int(conn.execute(sa.delete(checks).where(checks.c.checked_at < before)).rowcount)

    @staticmethod
    def _record(
        conn: Connection,
        subject: str,
        scope: str,
        findings: Sequence[Finding],
        now: float,
        family: str,
        open_rows: Sequence[tuple[int, str]] | None = None,
    ) -> None:
        if open_rows is None:
            open_rows = [
                (int(pid), str(code))
                for pid, code in conn.execute(
                    sa.select(problems.c.id, problems.c.code).where(
                        problems.c.subject == subject, problems.c.resolved_at.is_(None)
                    )
                )
            ]
        open_by_code = {code: pid for pid, code in open_rows}
        found = set()
        for finding in findings:
            found.add(finding.code.value)
            evidence = json.dumps(finding.evidence, sort_keys=True, default=str)
            pid = open_by_code.get(finding.code.value)
            if pid is None:
                conn.execute(
                    sa.insert(problems).values(
                        code=finding.code.value,
                        subject=subject,
                        scope=scope,
                        severity=finding.severity.value,
                        message=finding.message,
                        evidence=evidence,
                        first_seen=now,
                        last_seen=now,
                    )
                )
            else:
                conn.execute(
                    sa.update(problems)
                    .where(problems.c.id == pid)
                    .values(last_seen=now, message=finding.message, evidence=evidence)
                )
        prefixes = tuple(p for p in family.split(","))
        for code, pid in open_by_code.items():
            if code not in found and code.startswith(prefixes):
                conn.execute(
                    sa.update(problems).where(problems.c.id == pid).values(resolved_at=now)
                )

    def problems(self, *, open_only: bool = False) -> list[Problem]:
        query = sa.select(problems).order_by(problems.c.scope, problems.c.code, problems.c.id)
        if open_only:
            query = query.where(problems.c.resolved_at.is_(None))
        with self._read() as conn:
            return [_problem(r) for r in conn.execute(query).mappings()]

    def pending_alerts(self) -> list[tuple[str, Problem]]:
        """Problems not yet alerted: ("open", p) and ("resolved", p)."""
        query = sa.select(problems).where(
            (problems.c.alerted_open.is_(False))
            | (problems.c.resolved_at.is_not(None) & problems.c.alerted_resolved.is_(False))
        )
        result: list[tuple[str, Problem]] = []
        with self._read() as conn:
            for row in conn.execute(query.order_by(problems.c.id)).mappings():
                problem = _problem(row)
                if not row["alerted_open"]:
                    result.append(("open", problem))
                if problem.resolved_at is not None and not row["alerted_resolved"]:
                    result.append(("resolved", problem))
        return result

    def mark_alerted(self, kind: str, problem_id: int) -> None:
        column = "alerted_open" if kind == "open" else "alerted_resolved"
        with self._write() as conn:
            conn.execute(
                sa.update(problems).where(problems.c.id == problem_id).values({column: True})
            )


def _problem(row: sa.RowMapping) -> Problem:
    return Problem(
        int(row["id"]),
        row["code"],
        row["subject"],
        row["scope"],
        row["severity"],
        row["message"],
        json.loads(row["evidence"]),
        float(row["first_seen"]),
        float(row["last_seen"]),
        None if row["resolved_at"] is None else float(row["resolved_at"]),
    )
