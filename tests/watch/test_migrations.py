"""The watcher's own schema under alembic: head equals the metadata, a database made by the old
``create_all`` is stamped with its data kept, the version table does not collide with the
ledger's in a shared PostgreSQL database, and errors name the watcher database."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ctstatus.ledger import create_ledger_engine, ensure_current
from ctstatus.ledger import migrate as migrate_ledger
from ctstatus.ledger.schema import VERSION_TABLE as LEDGER_VERSION_TABLE
from ctstatus.watch import store as schema
from ctstatus.watch.migrate import (
    BASELINE,
    VERSION_TABLE,
    WatchDatabaseError,
    current_revision,
    head_revision,
    include_name,
)
from ctstatus.watch.store import WatchStore

NODES = '["' + "11" * 32 + '"]'  # a one-leaf compact tree
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, database_factory: Any) -> Iterator[str]:
    with database_factory(request.param) as database_url:
        yield database_url


def schema_diff(engine: sa.Engine) -> list[Any]:
    """What alembic autogenerate would change to make the database equal the metadata."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "include_name": include_name,
            },
        )
        return list(compare_metadata(context, schema.metadata))


def test_upgrade_from_empty_matches_the_metadata(url: str) -> None:
    with WatchStore.open(url) as store:
        assert current_revision(store.engine) == head_revision()
        assert schema_diff(store.engine) == []
        tables = set(sa.inspect(store.engine).get_table_names())
    assert VERSION_TABLE in tables
    assert {t.name for t in schema.metadata.sorted_tables} <= tables
    with WatchStore.open(url) as store:  # opening again is a no-op
        assert current_revision(store.engine) == head_revision()


def _baseline_snapshot() -> sa.MetaData:
    """The schema of revision 0001, from the migration itself."""
    path = Path(schema.__file__).with_name("migrations") / "versions" / "0001_baseline.py"
    spec = importlib.util.spec_from_file_location("watch_migration_0001", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    snapshot: sa.MetaData = module._SNAPSHOT
    return snapshot


def _old_database(url: str, *, without: tuple[str, ...] = ()) -> None:
    """A database as the pre-migration watcher left it: create_all, rows, no version table."""
    engine = create_ledger_engine(url)
    try:
        old = _baseline_snapshot()  # what create_all made then, not today's metadata
        tables = [t for t in old.sorted_tables if t.name not in without]
        old.create_all(engine, tables=tables)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(schema.logs).values(
                    log_id="ab" * 32,
                    name="old log",
                    url="http://127.0.0.1:1/",
                    download_size=1,
                    download_nodes=NODES,
                    verified_size=1,
                    verified_nodes=NODES,
                    updated_at=5.0,
                )
            )
            conn.execute(
                sa.insert(schema.problems).values(
                    code="log.fork",
                    subject="log:old log",
                    scope="log:old log",
                    severity="critical",
                    message="kept",
                    evidence="{}",
                    first_seen=1.0,
                    last_seen=2.0,
                    alerted_open=True,
                    alerted_resolved=False,
                )
            )
    finally:
        engine.dispose()


def test_old_create_all_database_is_stamped_with_its_data(url: str) -> None:
    _old_database(url)
    with WatchStore.open(url) as store:
        assert current_revision(store.engine) == head_revision()
        assert schema_diff(store.engine) == []
        assert [p.message for p in store.problems()] == ["kept"]
        cursor = store.cursor("ab" * 32, "old log", "http://127.0.0.1:1/")
        assert (cursor.download.size, cursor.download.root()) == (1, bytes([0x11]) * 32)
        with store.engine.connect() as conn:
            version = sa.table(VERSION_TABLE, sa.column("version_num"))
            versions = conn.execute(sa.select(version.c.version_num)).all()
    assert [v[0] for v in versions] == [head_revision()]
    assert BASELINE == "0001"


def test_old_database_without_later_tables_gets_them(url: str) -> None:
    """One last opened before ``watch_checks`` existed: the table is added, the rest kept."""
    _old_database(url, without=("watch_checks",))
    with WatchStore.open(url) as store:
        assert schema_diff(store.engine) == []
        assert store.check_history("01") == []
        assert [p.message for p in store.problems()] == ["kept"]


def test_a_foreign_table_of_the_same_name_is_refused(url: str) -> None:
    engine = create_ledger_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE watch_logs (something TEXT)"))
    finally:
        engine.dispose()
    with pytest.raises(WatchDatabaseError, match="watch_logs exists but is not the watcher's"):
        WatchStore.open(url)


def test_a_newer_revision_is_refused_untouched(url: str) -> None:
    WatchStore.open(url).close()
    engine = create_ledger_engine(url)
    try:
        with engine.begin() as conn:
            version = sa.table(VERSION_TABLE, sa.column("version_num"))
            conn.execute(sa.update(version).values(version_num="9999"))
        with pytest.raises(WatchDatabaseError, match="revision 9999, newer than this ctstatus"):
            WatchStore(engine)
        assert current_revision(engine) == "9999"
    finally:
        engine.dispose()


def test_concurrent_opens_serialise(url: str) -> None:
    barrier = threading.Barrier(2)

    def open_once(_: int) -> str | None:
        barrier.wait()
        with WatchStore.open(url) as store:
            return current_revision(store.engine)

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(open_once, range(2))) == [head_revision()] * 2


@pytest.mark.postgres
def test_shares_a_postgresql_database_with_the_ledger(fresh_postgres_url: str) -> None:
    """Both version tables side by side; neither schema sees the other's tables."""
    ledger_engine = create_ledger_engine(fresh_postgres_url)
    try:
        migrate_ledger(ledger_engine)
        with WatchStore.open(fresh_postgres_url) as store:
            assert current_revision(store.engine) == head_revision()
            assert schema_diff(store.engine) == []
        ensure_current(ledger_engine)  # the ledger's revision is untouched
        tables = set(sa.inspect(ledger_engine).get_table_names())
        assert {VERSION_TABLE, LEDGER_VERSION_TABLE} <= tables
        assert "serials" in tables
    finally:
        ledger_engine.dispose()


# -- errors name the watcher database --------------------------------------------------------


def test_missing_directory_is_a_watcher_database_error(tmp_path: Path) -> None:
    with pytest.raises(WatchDatabaseError) as info:
        WatchStore.open(f"sqlite:///{tmp_path / 'absent' / 'w.db'}")
    text = str(info.value)
    assert "watcher database" in text
    assert "does not exist" in text
    assert "ledger" not in text


@pytest.mark.parametrize(
    ("database", "wanted"),
    [
        ("not a url", "is not a database URL"),
        ("sqlite://", "must be a SQLite file"),
        ("mysql://u@127.0.0.1/w", "unsupported watcher database"),
        ("postgresql+asyncpg://u@127.0.0.1/w", "unsupported PostgreSQL driver"),
    ],
)
def test_bad_urls_name_the_watcher_database(database: str, wanted: str) -> None:
    with pytest.raises(WatchDatabaseError, match=wanted) as info:
        WatchStore.open(database)
    assert "watcher database" in str(info.value)
    assert "ledger" not in str(info.value)


@pytest.mark.postgres
def test_absent_postgresql_database_names_the_watcher(postgres_admin: sa.Engine) -> None:
    url = postgres_admin.url.set(database="ctstatus_no_such_watch_db")
    with pytest.raises(WatchDatabaseError) as info:
        WatchStore.open(url.render_as_string(hide_password=False))
    assert "cannot connect to the watcher database" in info.value.message
    assert info.value.hint == "create the database (createdb) or fix `database` in watch.toml"
    assert "ledger" not in str(info.value)


def test_only_watched_entries_are_indexed_by_serial(url: str) -> None:
    """Migration 0002: reconcile's lookup uses the partial index; unwatched rows stay out."""
    with WatchStore.open(url) as store, store.engine.connect() as conn:
        query = sa.select(schema.entries.c.serial).where(
            schema.entries.c.issuer_key == "ab", schema.entries.c.watched.is_(True)
        )
        sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
        if store.engine.dialect.name == "sqlite":
            plan = " ".join(
                str(row) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            )
            assert "watch_entries_watched_serial" in plan
        else:  # an empty table may be scanned; the index must exist with its predicate
            definition = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'watch_entries_watched_serial'"
            ).scalar_one()
            assert "WHERE (watched IS TRUE)" in definition
        names = {i["name"] for i in sa.inspect(conn).get_indexes("watch_entries")}
        assert "watch_entries_serial" not in names


def test_0003_keeps_per_entry_rows_and_starts_old_logs_at_zero(url: str) -> None:
    """Migration 0003: a database whose logs were followed from 0 with a row per entry (watched
    or not) keeps every row, its logs read as started at 0, and following resumes after them."""
    from ctstatus.ct.merkle import CompactTree
    from ctstatus.watch.store import EntryRow

    _old_database(url)
    engine = create_ledger_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(schema.entries),
                [
                    EntryRow(0, False, 1, "cd" * 32, "01", b"t" * 32, False, None, None).values(
                        "ab" * 32
                    )
                ],
            )
    finally:
        engine.dispose()
    with WatchStore.open(url) as store:
        assert current_revision(store.engine) == head_revision()
        assert schema_diff(store.engine) == []
        cursor = store.find_cursor("ab" * 32)
        assert cursor is not None
        assert (cursor.start_index, cursor.download.size) == (0, 1)
        assert store.entry_indexes("ab" * 32) == [0]  # the unwatched row is kept
        tree = cursor.download.copy()
        tree.extend([bytes([0x22]) * 32, bytes([0x33]) * 32])
        watched = EntryRow(2, True, 2, "cd" * 32, "02", b"u" * 32, True, {"serial": "02"}, b"d")
        store.commit_batch("ab" * 32, [watched], tree, now=9.0, since=1)  # entry 1: no row
        assert store.entry_indexes("ab" * 32) == [0, 2]
        resumed = store.find_cursor("ab" * 32)
        assert resumed is not None
        assert resumed.download.state() == tree.state()
        assert isinstance(resumed.download, CompactTree)
