"""The watcher on a log of real size: 2^31 entries (tests/watch/synthlog.py), RFC 6962 and tiled.

Started at the end it proves the log's right edge without reading the prefix, checks the
entries appended after it, proves each later head consistent with the last, and stores rows
for watched entries only: its database stays the same size whatever the log's.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ctstatus.watch.config import AlertsConfig, WatchConfig
from ctstatus.watch.runner import PassResult, Watcher

from .conftest import MisbehavingApp, Served, WatchCa
from .synthlog import SIZE, SyntheticLog, Unwatched

FILLER = SIZE - 512  # the prefix of identical leaves ends on a tile boundary
FIRST_REAL = 4  # unwatched entries after it, in the first signed head
DB_BOUND = 512 * 1024  # bytes: a few pages per table, nothing per entry of a 2^31 log


def _ms(delta: timedelta = timedelta()) -> int:
    return int((datetime.now(UTC) + delta).timestamp() * 1000)


@pytest.fixture
def synth() -> Iterator[SyntheticLog]:
    log = SyntheticLog(FILLER)
    other = Unwatched()
    for n in range(FIRST_REAL):
        log.append_cert(other.cert(f"old{n}"), (other.issuer_der,), _ms(timedelta(minutes=-50)))
    log.publish()
    log.start()
    yield log
    log.stop()


def add_entries(log: SyntheticLog, ca: WatchCa, watched: int, unwatched: int) -> dict[str, int]:
    """Watched precerts (serial hex -> index) interleaved with unwatched final certificates."""
    other = Unwatched()
    serials: dict[str, int] = {}
    for n in range(max(watched, unwatched)):
        if n < watched:
            leaf = ca.precert("good")
            index = log.append_precert(
                leaf.precert,
                (ca.issuing_der, ca.root.public_bytes(serialization.Encoding.DER)),
                _ms(timedelta(minutes=-20)),
            )
            serials[format(leaf.serial, "x")] = index
        if n < unwatched:
            log.append_cert(other.cert(f"new{n}"), (other.issuer_der,), _ms(timedelta(minutes=-20)))
    log.publish()
    return serials


def make_watcher(
    tmp_path: Path, log: SyntheticLog, ca: WatchCa, *, tiled: bool, start: object = "end"
) -> Watcher:
    tmp_path.mkdir(parents=True, exist_ok=True)
    issuer = tmp_path / "issuer.pem"
    issuer.write_bytes(ca.issuing.public_bytes(serialization.Encoding.PEM))
    config = WatchConfig.model_validate(
        {
            "database": f"sqlite:///{tmp_path / 'w.db'}",
            "log_list": str(log.write_log_list(tmp_path / "loglist.json", tiled=tiled)),
            "issuers": [str(issuer)],
            "grace_seconds": 0,
            "timeout_seconds": 5,
            "log_requests_per_second": 10_000,
            "start": start,
            "alerts": AlertsConfig(stdout=False),
        }
    )
    return Watcher(config, tmp_path)


def run(watcher: Watcher) -> PassResult:
    return asyncio.run(watcher.run_once())


def rows(tmp_path: Path, table: str) -> int:
    with sqlite3.connect(tmp_path / "w.db") as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def db_bytes(tmp_path: Path) -> int:
    return sum(p.stat().st_size for p in tmp_path.glob("w.db*"))


@pytest.mark.parametrize("tiled", [False, True], ids=["rfc6962", "tiled"])
def test_starts_at_the_end_checks_new_entries_in_constant_storage(
    tmp_path: Path,
    synth: SyntheticLog,
    bad_ca: tuple[WatchCa, Served, MisbehavingApp],
    tiled: bool,
) -> None:
    ca = bad_ca[0]
    watcher = make_watcher(tmp_path, synth, ca, tiled=tiled)
    try:
        first = run(watcher)
        start = FILLER + FIRST_REAL
        follow = first.follow[0]
        assert (follow.tree_size, follow.verified_size, follow.downloaded) == (start, start, 0)
        assert follow.findings == []
        cursor = watcher.store.find_cursor(synth.log_id.hex())
        assert cursor is not None
        assert cursor.start_index == start
        assert synth.sth is not None
        assert cursor.verified_root == synth.sth.root_hash
        if tiled:  # the right edge from partial hash tiles, no data tile read
            assert any(".p/" in p for p in synth.paths if p.startswith("tile/1/")), synth.paths
            assert not any(p.startswith("tile/data/") for p in synth.paths)
        else:
            assert synth.requests["get-entry-and-proof"] == 1
            assert synth.requests["get-entries"] == 0

        # 300 new entries: a partial data tile at the end, get-entries answering 33 at a time.
        serials = add_entries(synth, ca, watched=40, unwatched=260)
        second_pass = run(watcher)
        assert second_pass.checks.checked == 40  # every new watched precert, in the same pass
        second = second_pass.follow[0]
        assert (second.downloaded, second.verified_size) == (300, start + 300)
        assert second.findings == []
        assert rows(tmp_path, "watch_entries") == 40  # watched entries only
        assert watcher.store.cert_count() == 40
        assert watcher.store.due(datetime.now(UTC).timestamp()) == []
        if tiled:
            assert any(p.startswith("tile/data/") and ".p/" in p for p in synth.paths)
        else:
            assert synth.requests["get-entries"] >= 300 // synth.max_batch

        # The log grows to exactly 2^31: the new head is proven consistent with the last one.
        synth.requests.clear()
        more = add_entries(synth, ca, watched=2, unwatched=SIZE - synth.size - 2)
        assert synth.size == SIZE
        third = run(watcher).follow[0]
        assert (third.verified_size, third.findings) == (SIZE, [])
        if not tiled:
            assert synth.requests["get-sth-consistency"] == 1
        assert rows(tmp_path, "watch_entries") == 42
        seen = {p.code for p in watcher.store.problems(open_only=True) if p.code.startswith("log.")}
        assert seen == set()
        assert set(serials) | set(more) == _queued_serials(tmp_path)
        assert db_bytes(tmp_path) < DB_BOUND
    finally:
        watcher.close()


def _queued_serials(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "w.db") as conn:
        return {r[0] for r in conn.execute("SELECT serial FROM watch_certs")}


@pytest.mark.parametrize("tiled", [False, True], ids=["rfc6962", "tiled"])
def test_starts_at_an_index_or_a_time(
    tmp_path: Path,
    synth: SyntheticLog,
    bad_ca: tuple[WatchCa, Served, MisbehavingApp],
    tiled: bool,
) -> None:
    ca = bad_ca[0]
    by_index = make_watcher(tmp_path / "i", synth, ca, tiled=tiled, start=FILLER + 1)
    try:
        follow = run(by_index).follow[0]
        assert (follow.downloaded, follow.verified_size, follow.findings) == (
            FIRST_REAL - 1,
            FILLER + FIRST_REAL,
            [],
        )
    finally:
        by_index.close()
    # The fillers are 30 days old, the real entries 50 minutes: an hour ago is the first real.
    when = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    by_time = make_watcher(tmp_path / "t", synth, ca, tiled=tiled, start=when)
    try:
        follow = run(by_time).follow[0]
        assert follow.findings == []
        cursor = by_time.store.find_cursor(synth.log_id.hex())
        assert cursor is not None
        assert cursor.start_index == FILLER
        assert (follow.downloaded, follow.verified_size) == (FIRST_REAL, FILLER + FIRST_REAL)
    finally:
        by_time.close()


def test_bad_input_is_a_problem_never_a_crash(
    tmp_path: Path, synth: SyntheticLog, bad_ca: tuple[WatchCa, Served, MisbehavingApp]
) -> None:
    ca = bad_ca[0]
    watcher = make_watcher(tmp_path, synth, ca, tiled=False)
    try:
        synth.faults.malformed = "get-entry-and-proof"
        assert [f.code.value for f in run(watcher).follow[0].findings] == ["log.malformed"]
        assert watcher.store.find_cursor(synth.log_id.hex()) is None  # nothing believed
        synth.faults.malformed = None
        assert run(watcher).follow[0].findings == []

        add_entries(synth, ca, watched=3, unwatched=3)
        synth.faults.bad_consistency = True
        lying = run(watcher).follow[0]
        assert [f.code.value for f in lying.findings] == ["log.inconsistent"]
        assert lying.downloaded == 0
        synth.faults.bad_consistency = False

        synth.faults.wrong_entry = FILLER + FIRST_REAL + 2  # entries that do not make the root
        wrong = run(watcher).follow[0]
        assert [f.code.value for f in wrong.findings] == ["log.root_mismatch"]
        assert rows(tmp_path, "watch_entries") == 0
        synth.faults.wrong_entry = None
        honest = run(watcher).follow[0]
        assert (honest.findings, honest.verified_size) == ([], synth.size)
        assert rows(tmp_path, "watch_entries") == 3
        assert {p.code for p in watcher.store.problems(open_only=True)} == set()
    finally:
        watcher.close()


def test_a_tiled_head_beyond_the_tile_levels_is_malformed_not_a_crash(
    tmp_path: Path, synth: SyntheticLog, bad_ca: tuple[WatchCa, Served, MisbehavingApp]
) -> None:
    """A validly signed checkpoint of 2^50 entries: static-ct-api tiles stop at level 5."""
    from ctstatus.ct.sct import sign_tree_head

    synth.sth = sign_tree_head(synth.signer, 1 << 50, _ms(timedelta(seconds=-5)), bytes(32))
    watcher = make_watcher(tmp_path, synth, bad_ca[0], tiled=True)
    try:
        result = run(watcher).follow[0]
        assert [f.code.value for f in result.findings] == ["log.malformed"]
        assert watcher.store.find_cursor(synth.log_id.hex()) is None
    finally:
        watcher.close()


def test_a_tiled_head_the_tiles_do_not_extend_is_inconsistent(
    tmp_path: Path, synth: SyntheticLog, bad_ca: tuple[WatchCa, Served, MisbehavingApp]
) -> None:
    """A later checkpoint over another root: the consistency proof computed from the tiles
    does not reach it, so nothing is downloaded against it."""
    from ctstatus.ct.sct import sign_tree_head

    ca = bad_ca[0]
    watcher = make_watcher(tmp_path, synth, ca, tiled=True)
    try:
        assert run(watcher).follow[0].findings == []
        add_entries(synth, ca, watched=2, unwatched=2)
        honest = synth.sth
        assert honest is not None
        synth.sth = sign_tree_head(synth.signer, honest.tree_size, honest.timestamp, bytes(32))
        lying = run(watcher).follow[0]
        assert [f.code.value for f in lying.findings] == ["log.inconsistent"]
        assert lying.downloaded == 0
        assert not any(p.startswith("tile/data/") for p in synth.paths)
        synth.sth = honest
        fixed = run(watcher).follow[0]
        assert (fixed.findings, fixed.downloaded, fixed.verified_size) == ([], 4, synth.size)
        assert rows(tmp_path, "watch_entries") == 2
    finally:
        watcher.close()
