"""One SQLite database per log: entries with their SCTs, every STH, tree nodes and issuers.

Durability first: WAL with ``synchronous=FULL``, so a committed batch survives kill -9 and power
loss, and nothing is acknowledged (no SCT, no STH) before its transaction has committed. A batch
of entries, the tree nodes they complete, the issuers they reference and the new compact-tree
state are one transaction, so the database never holds a tree that disagrees with its entries.

Two connections: the writer connection is used only from the sequencer's single writer thread,
the reader connection only from the event loop (WAL lets them run side by side).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ctstatus.ct.structures import DigitallySigned, SignedTreeHead
from ctstatus.ctlog.tree import TreeEdge
from ctstatus.errors import UserError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
-- One row per log entry. leaf_input is the MerkleTreeLeaf (what get-entries serves and the tree
-- hashes), extra_data the RFC 6962 extra_data, chain_fps the SHA-256 of each chain certificate
-- (static-ct-api data tiles), sct the SCT issued for it (a resubmission gets the same one).
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    identity BLOB NOT NULL UNIQUE,
    leaf_hash BLOB NOT NULL UNIQUE,
    leaf_input BLOB NOT NULL,
    extra_data BLOB NOT NULL,
    chain_fps BLOB NOT NULL,
    sct BLOB NOT NULL
);
-- Hashes of complete subtrees of 256^level leaves: the static-ct-api hash tiles.
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
-- Every STH ever signed, so consistency between any two can be proven.
CREATE TABLE IF NOT EXISTS sths (
    timestamp INTEGER PRIMARY KEY,
    tree_size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS issuers (
    fingerprint BLOB PRIMARY KEY,
    der BLOB NOT NULL
) WITHOUT ROWID;
-- The compact tree after the last committed batch (one row).
CREATE TABLE IF NOT EXISTS tree (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    size INTEGER NOT NULL,
    nodes BLOB NOT NULL
);
"""


class StorageError(UserError):
    """The database is not this log's, or is inconsistent."""


@dataclass(frozen=True)
class NewEntry:
    """One sequenced entry, ready to be written."""

    index: int
    identity: bytes
    leaf_hash: bytes
    leaf_input: bytes
    extra_data: bytes
    chain_fps: bytes
    sct: bytes


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def sth_from_row(row: Sequence[object]) -> SignedTreeHead:
    timestamp, tree_size, root_hash, signature = row
    assert isinstance(timestamp, int)
    assert isinstance(tree_size, int)
    assert isinstance(root_hash, bytes)
    assert isinstance(signature, bytes)
    return SignedTreeHead(tree_size, timestamp, root_hash, DigitallySigned.decode(signature))


class LogStore:
    """The database of one log."""

    def __init__(self, path: Path, log_id: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = _connect(path)
        self._writer.executescript(_SCHEMA)
        self._check_identity(log_id)
        self._reader = _connect(path)

    def _check_identity(self, log_id: bytes) -> None:
        rows = dict(self._writer.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            with _transaction(self._writer):
                self._writer.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("log_id", log_id), ("schema_version", SCHEMA_VERSION)],
                )
                self._writer.execute("INSERT INTO tree (id, size, nodes) VALUES (0, 0, x'')")
            return
        if rows.get("log_id") != log_id:
            raise StorageError(
                f"{self.path} belongs to another log key (log ID "
                f"{bytes(rows.get('log_id', b'')).hex()}); refusing to mix two logs"
            )
        if rows.get("schema_version") != SCHEMA_VERSION:
            raise StorageError(f"{self.path}: unknown schema version {rows.get('schema_version')}")

    def close(self) -> None:
        self._writer.close()
        self._reader.close()

    # --- writer side (the sequencer's writer thread only) ---

    def load_tree(self) -> TreeEdge:
        """The tree as committed, checked against the entries and node rows."""
        size, packed = self._writer.execute("SELECT size, nodes FROM tree WHERE id = 0").fetchone()
        nodes = [packed[i : i + 32] for i in range(0, len(packed), 32)]
        (count,) = self._writer.execute("SELECT COUNT(*) FROM entries").fetchone()
        if count != size:
            raise StorageError(f"{self.path}: tree size {size} but {count} entries")

        def rows(level: int, start: int, end: int) -> list[bytes]:
            return [
                h
                for (h,) in self._writer.execute(
                    "SELECT hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
                    (level, start, end),
                )
            ]

        try:
            return TreeEdge.restore(size, nodes, rows)
        except ValueError as exc:
            raise StorageError(f"{self.path}: {exc}") from None

    def last_entry_timestamp(self) -> int:
        row = self._writer.execute(
            "SELECT leaf_input FROM entries ORDER BY idx DESC LIMIT 1"
        ).fetchone()
        return 0 if row is None else int.from_bytes(row[0][2:10], "big")

    def append(
        self,
        entries: Sequence[NewEntry],
        node_rows: Sequence[tuple[int, int, bytes]],
        issuers: Sequence[tuple[bytes, bytes]],
        tree: TreeEdge,
    ) -> None:
        """Write a batch and the tree after it in one durable transaction."""
        size, nodes = tree.compact.state()
        with _transaction(self._writer):
            self._writer.executemany(
                "INSERT INTO entries (idx, identity, leaf_hash, leaf_input, extra_data, "
                "chain_fps, sct) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.index,
                        e.identity,
                        e.leaf_hash,
                        e.leaf_input,
                        e.extra_data,
                        e.chain_fps,
                        e.sct,
                    )
                    for e in entries
                ],
            )
            self._writer.executemany(
                "INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", node_rows
            )
            self._writer.executemany(
                "INSERT OR IGNORE INTO issuers (fingerprint, der) VALUES (?, ?)", issuers
            )
            self._writer.execute(
                "UPDATE tree SET size = ?, nodes = ? WHERE id = 0", (size, b"".join(nodes))
            )

    def add_sth(self, sth: SignedTreeHead) -> None:
        with _transaction(self._writer):
            self._writer.execute(
                "INSERT INTO sths (timestamp, tree_size, root_hash, signature) VALUES (?, ?, ?, ?)",
                (sth.timestamp, sth.tree_size, sth.root_hash, sth.signature.encode()),
            )

    def latest_sth_for_writer(self) -> SignedTreeHead | None:
        row = self._writer.execute(
            "SELECT timestamp, tree_size, root_hash, signature FROM sths "
            "ORDER BY timestamp DESC LIMIT 1"
        ).fetchone()
        return None if row is None else sth_from_row(row)

    # --- reader side (the event loop only) ---

    def sct_for_identity(self, identity: bytes) -> bytes | None:
        row = self._reader.execute(
            "SELECT sct FROM entries WHERE identity = ?", (identity,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def index_of_leaf_hash(self, leaf_hash: bytes) -> int | None:
        row = self._reader.execute(
            "SELECT idx FROM entries WHERE leaf_hash = ?", (leaf_hash,)
        ).fetchone()
        return None if row is None else int(row[0])

    def entries(self, start: int, end: int) -> list[tuple[bytes, bytes]]:
        """(leaf_input, extra_data) for start <= index < end."""
        return self._reader.execute(
            "SELECT leaf_input, extra_data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        ).fetchall()

    def tile_entries(self, start: int, end: int) -> list[tuple[bytes, bytes, bytes]]:
        """(leaf_input, extra_data, chain_fps) for start <= index < end."""
        return self._reader.execute(
            "SELECT leaf_input, extra_data, chain_fps FROM entries "
            "WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        ).fetchall()

    def node_rows(self, level: int, start: int, end: int) -> list[bytes]:
        return [
            h
            for (h,) in self._reader.execute(
                "SELECT hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
                (level, start, end),
            )
        ]

    def issuer(self, fingerprint: bytes) -> bytes | None:
        row = self._reader.execute(
            "SELECT der FROM issuers WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def sths(self) -> list[SignedTreeHead]:
        """Every STH ever signed, oldest first."""
        rows = self._reader.execute(
            "SELECT timestamp, tree_size, root_hash, signature FROM sths ORDER BY timestamp"
        ).fetchall()
        return [sth_from_row(row) for row in rows]


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on any exception)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self._connection.execute("COMMIT")
        else:
            self._connection.execute("ROLLBACK")
