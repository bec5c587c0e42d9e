"""Two real watcher processes on one PostgreSQL database split the logs by lease; when one is
killed (-9), its leases expire and the other follows its logs too, from the committed cursor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from ctstatus.watch.store import WatchStore, leases
from ctstatus.watch.store import logs as log_rows

from .conftest import Logs, WatchCa, start_logs, stop_logs

CTSTATUS = Path(sys.executable).parent / "ctstatus"
NAMES = ("alpha", "bravo", "charlie")


def _wait(
    what: str,
    ready: Callable[[], bool],
    processes: list[subprocess.Popen[bytes]],
    diagnose: Callable[[], object] = lambda: "",
) -> None:
    deadline = time.monotonic() + 90
    while not ready():
        for process in processes:
            assert process.poll() is None, f"a watcher exited ({process.returncode})"
        assert time.monotonic() < deadline, f"timed out waiting for: {what} ({diagnose()})"
        time.sleep(0.2)  # waits on the other processes' work


def _submit_all(logs: Logs, ca: WatchCa) -> dict[str, int]:
    sizes = {}
    for name in NAMES:
        leaf = ca.precert("good")
        logs.submit(name, [leaf.precert, ca.issuing_der])
        sizes[name] = logs.publish(name)
    return sizes


@pytest.mark.postgres
def test_two_processes_split_the_logs_and_take_over(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ca = WatchCa.create("leases")
    logs = start_logs(tmp_path / "logs", [ca.root], count=3)
    processes: list[subprocess.Popen[bytes]] = []
    store = WatchStore.open(fresh_postgres_url)
    try:
        sizes = _submit_all(logs, ca)
        toml = tmp_path / "watch.toml"
        toml.write_text(
            f'database = "{fresh_postgres_url}"\nlog_list = "{logs.log_list}"\n'
            'start = "beginning"\npoll_seconds = 1\nlease_seconds = 4\ntimeout_seconds = 2\n'
            "[alerts]\nstdout = false\n"
        )

        def verified() -> dict[str, int]:
            with store.engine.connect() as conn:
                rows = conn.execute(sa.select(log_rows.c.url, log_rows.c.verified_size))
                return {str(url).rstrip("/").rsplit("/", 1)[-1]: int(n) for url, n in rows}

        def holders() -> dict[str, str]:
            now = time.time()
            with store.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(leases.c.log_id, leases.c.holder).where(leases.c.expires_at > now)
                )
                return {str(log_id): str(holder) for log_id, holder in rows if holder}

        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [str(CTSTATUS), "watch", "-c", str(toml)],
                    stdout=subprocess.DEVNULL,
                    stderr=(tmp_path / f"watch-{len(processes)}.log").open("wb"),
                    env=os.environ | {},
                )
            )
        _wait("every log followed", lambda: verified() == sizes, processes, verified)
        _wait("the logs split 2/1", lambda: len(set(holders().values())) == 2, processes, holders)
        split = holders()
        assert len(split) == 3
        assert sorted(list(split.values()).count(h) for h in set(split.values())) == [1, 2]

        # Kill one: its leases run out and the other takes its logs, resuming where it stopped.
        victim = processes.pop(0)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        sizes = _submit_all(logs, ca)
        _wait("one holder left", lambda: len(set(holders().values())) == 1, processes, holders)
        _wait("the new entries followed", lambda: verified() == sizes, processes, verified)
        assert len(holders()) == 3
        assert store.entry_count() == 2 * len(NAMES)  # no gap, no duplicate
        # SIGTERM stops it at once and gives its leases back (no wait for expiry).
        survivor = processes.pop()
        survivor.terminate()
        assert survivor.wait(timeout=30) == 0
        assert holders() == {}
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        store.close()
        stop_logs(logs)


@pytest.mark.postgres
def test_due_checks_are_claimed_once_on_postgresql(fresh_postgres_url: str) -> None:
    from ctstatus.watch.store import certs

    with WatchStore.open(fresh_postgres_url) as store:
        with store.engine.begin() as conn:
            conn.execute(
                sa.insert(certs),
                [
                    {
                        "issuer_key": "ab" * 32,
                        "serial": format(serial, "x"),
                        "tbs_sha256": b"\x00" * 32,
                        "has_precert": True,
                        "has_final": False,
                        "first_seen_ms": 1000,
                        "info": "{}",
                        "due_at": float(serial),
                        "failures": serial % 3,
                    }
                    for serial in range(1, 6)
                ],
            )
        first = store.due(100.0, limit=3, claim_seconds=300)
        assert [c.serial for c in sorted(first, key=lambda c: int(c.serial, 16))] == ["1", "2", "3"]
        assert {c.serial: c.failures for c in first} == {"1": 1, "2": 2, "3": 0}
        second = store.due(100.0, claim_seconds=300)  # another process: only the unclaimed
        assert sorted(c.serial for c in second) == ["4", "5"]
        assert store.due(100.0, claim_seconds=300) == []
        assert len(store.due(401.0, claim_seconds=300)) == 5  # claims ran out: due again
        assert store.request_recheck(["3"]) == 1
        assert [c.serial for c in store.due(0.0)] == ["3"]  # the front of the queue
