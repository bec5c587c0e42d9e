"""Following a real log: every entry once, and a log that lies about its tree is caught."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctstatus.ct.client import Limits, LogClient, LogEndpoint
from ctstatus.ct.loglist import load_log_list
from ctstatus.ct.transport import new_http_session
from ctstatus.watch.follower import FollowResult, FollowSettings, LogFollower
from ctstatus.watch.store import WatchStore

from .conftest import Logs, WatchCa, start_logs, stop_logs

LOG = "alpha"


@pytest.fixture(scope="module")
def ca() -> WatchCa:
    return WatchCa.create("follower")


@pytest.fixture
def logs(tmp_path: Path, ca: WatchCa) -> Iterator[Logs]:
    running = start_logs(tmp_path / "logs", [ca.root])
    yield running
    stop_logs(running)


def fill(logs: Logs, ca: WatchCa, count: int) -> int:
    for _ in range(count):
        logs.submit(LOG, [ca.precert("good").precert, ca.issuing_der])
    return logs.publish(LOG)


def poll(logs: Logs, store: WatchStore, batch: int = 7) -> FollowResult:
    endpoint = LogEndpoint.from_log(load_log_list(logs.log_list).logs[0])

    async def run() -> FollowResult:
        async with new_http_session() as http:
            client = LogClient(endpoint, http, limits=Limits(entries_per_request=batch))
            follower = LogFollower(client, store, "all", FollowSettings(batch_size=batch))
            return await follower.poll()

    return asyncio.run(run())


def codes(store: WatchStore) -> set[str]:
    return {p.code for p in store.problems(open_only=True)}


def test_follows_in_batches_and_resumes(tmp_path: Path, logs: Logs, ca: WatchCa) -> None:
    store = WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    fill(logs, ca, 20)
    first = poll(logs, store)
    assert (first.downloaded, first.verified_size, first.findings) == (20, 20, [])
    size = fill(logs, ca, 9)
    second = poll(logs, store)
    assert (second.downloaded, second.verified_size) == (9, size)
    assert store.entry_indexes(next(iter(_log_ids(store)))) == list(range(size))
    assert store.cert_count() == size
    assert codes(store) == set()


def _log_ids(store: WatchStore) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT log_id FROM watch_logs")]


def test_wrong_root_is_caught_by_the_consistency_proof(
    tmp_path: Path, logs: Logs, ca: WatchCa
) -> None:
    """A later head over a wrong root: get-sth-consistency cannot prove it extends the verified
    tree, so nothing is downloaded against it (a wrong root with no verified head yet, and
    entries that do not hash to an honest root, are log.root_mismatch: tests below and in
    test_synthetic_log.py)."""
    store = WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    fill(logs, ca, 5)
    assert poll(logs, store).verified_size == 5
    size = fill(logs, ca, 6)
    logs.set_faults(LOG, sth="wrong_root")
    lying = poll(logs, store)
    assert [f.code.value for f in lying.findings] == ["log.inconsistent"]
    assert lying.findings[0].evidence["verified_size"] == 5
    assert lying.findings[0].evidence["sth_size"] == size
    assert lying.downloaded == 0
    assert store.entry_count() == 5  # nothing past the verified position is kept
    assert store.cert_count() == 5  # and nothing unverified was queued for checks
    logs.set_faults(LOG)
    honest = poll(logs, store)
    assert honest.verified_size == size
    open_codes = codes(store)
    assert open_codes == set()
    resolved = [p for p in store.problems() if p.code == "log.inconsistent"]
    assert resolved[0].resolved_at is not None


def test_wrong_root_before_any_verified_head_is_a_root_mismatch(
    tmp_path: Path, logs: Logs, ca: WatchCa
) -> None:
    store = WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    size = fill(logs, ca, 6)
    logs.set_faults(LOG, sth="wrong_root")
    lying = poll(logs, store)
    assert [f.code.value for f in lying.findings] == ["log.root_mismatch"]
    assert lying.findings[0].evidence["dropped"] == 6
    assert store.entry_count() == 0
    assert store.cert_count() == 0
    logs.set_faults(LOG)
    assert poll(logs, store).verified_size == size
    assert codes(store) == set()


def test_fork_and_bad_signature(tmp_path: Path, logs: Logs, ca: WatchCa) -> None:
    store = WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    fill(logs, ca, 4)
    poll(logs, store)
    logs.set_faults(LOG, sth="wrong_root")  # same size, another validly signed root: a fork
    assert [f.code.value for f in poll(logs, store).findings] == ["log.fork"]
    logs.set_faults(LOG, sth="bad_signature")
    assert [f.code.value for f in poll(logs, store).findings] == ["log.bad_sth"]
    assert codes(store) == {"log.bad_sth"}  # the fork finding resolved when no longer seen
    logs.set_faults(LOG)
    poll(logs, store)
    assert codes(store) == set()


def test_kill_9_then_restart_leaves_no_gap_and_no_duplicate(
    tmp_path: Path, logs: Logs, ca: WatchCa
) -> None:
    """The real CLI, killed with SIGKILL mid-download several times, then run to the end."""
    size = fill(logs, ca, 120)
    config = tmp_path / "watch.toml"
    config.write_text(
        f'database = "sqlite:///{tmp_path / "w.db"}"\nlog_list = "{logs.log_list}"\n'
        'batch_size = 3\ndownload_concurrency = 2\ngrace_seconds = 86400\nstart = "beginning"\n'
        "[alerts]\nstdout = false\n"
    )
    command = [str(Path(sys.executable).parent / "ctstatus"), "watch", "--once", "-c", config]
    database = tmp_path / "w.db"
    kills, partial = 0, []
    logs.set_faults(LOG, delay_ms=40, scope="all")  # slow reads, so kills land mid-download
    for extra in (0.0, 0.15, 0.3):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        before = partial[-1] if partial else 0
        # Wait on real work (the index grew), then kill at a slightly different moment each time.
        while time.monotonic() < deadline and process.poll() is None:
            if _count(database) > before:
                break
            time.sleep(0.02)
        time.sleep(extra)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=10)
        partial.append(_count(database))
    logs.set_faults(LOG)
    final = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert final.returncode == 0, final.stdout + final.stderr
    store = WatchStore.open(f"sqlite:///{database}")
    log_id = _log_ids(store)[0]
    assert store.entry_indexes(log_id) == list(range(size))  # no gap, no duplicate
    assert store.cert_count() == size
    assert kills >= 1
    assert any(0 < n < size for n in partial), partial  # killed mid-download at least once


def _count(database: Path) -> int:
    if not database.exists():
        return 0
    import sqlite3

    try:
        with sqlite3.connect(database, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM watch_entries").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_follows_a_static_ct_api_log_by_tiles(tmp_path: Path, logs: Logs, ca: WatchCa) -> None:
    """The same log read through its checkpoint and tiles (each tile proven against the root)."""
    size = fill(logs, ca, 300)
    log = load_log_list(logs.log_list).logs[0]
    assert log.url is not None
    endpoint = LogEndpoint.from_url(log.url, log.key_der, name="tiled", monitoring_url=log.url)
    store = WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}")

    async def run() -> FollowResult:
        async with new_http_session() as http:
            follower = LogFollower(LogClient(endpoint, http), store, "all")
            assert follower.tiled
            return await follower.poll()

    logs.set_faults(LOG, sth="wrong_root")  # the checkpoint signs a root the tiles do not make
    lying = asyncio.run(run())
    assert [f.code.value for f in lying.findings] == ["log.root_mismatch"]
    assert store.entry_count() == 0
    logs.set_faults(LOG)
    result = asyncio.run(run())
    assert (result.downloaded, result.verified_size, result.findings) == (size, size, [])
    assert store.entry_indexes(_log_ids(store)[0]) == list(range(size))
    assert store.cert_count() == size  # precert entries carry the issuer key hash
