"""A problem is retried within minutes, not after ``recheck_seconds``: a responder that breaks
and is fixed has its problem resolved at the next retry. Also the requested recheck (the front
of the queue) and re-planning the first checks when the grace or own issuers change. All on an
injected clock, against a real log and a real responder on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from ctstatus.cli import app as cli_app
from ctstatus.clock import FrozenClock
from ctstatus.watch.config import WatchConfig
from ctstatus.watch.runner import Watcher
from ctstatus.watch.store import FRONT, certs

from .conftest import Logs, MisbehavingApp, Served, WatchCa, start_logs, stop_logs

LOG = "alpha"


@pytest.fixture
def setup(
    tmp_path: Path,
) -> Iterator[tuple[WatchCa, MisbehavingApp, Logs, int, Path]]:
    from .conftest import free_port, serve_app

    ca = WatchCa.create("flaky")
    app = MisbehavingApp(ca)
    port = free_port()
    ca.base = f"http://127.0.0.1:{port}"
    served: Served = serve_app(app, port)
    logs = start_logs(tmp_path / "logs", [ca.root])
    leaf = ca.precert("flaky", "ok")
    logs.submit(LOG, [leaf.precert, ca.issuing_der])
    logs.publish(LOG)
    yield ca, app, logs, leaf.serial, tmp_path
    stop_logs(logs)
    served.stop()


def _config(work: Path, logs: Logs, **extra: object) -> WatchConfig:
    values: dict[str, object] = {
        "database": f"sqlite:///{work / 'watch.db'}",
        "log_list": str(logs.log_list),
        "start": "beginning",
        "grace_seconds": 0,
        "timeout_seconds": 2,
        "retry_seconds": 60,
        "retry_max_seconds": 240,
        "alerts": {"stdout": False},
    }
    return WatchConfig.model_validate(values | extra)


def _clock() -> FrozenClock:
    # after the SCTs' timestamps (real time at submission), so grace 0 makes them due
    return FrozenClock(datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2))


def _cert_row(watcher: Watcher, serial: int) -> sa.RowMapping:
    with watcher.store.engine.connect() as conn:
        return (
            conn.execute(sa.select(certs).where(certs.c.serial == format(serial, "x")))
            .mappings()
            .one()
        )


def _open_codes(watcher: Watcher, serial: int) -> set[str]:
    suffix = ":" + format(serial, "x")
    return {p.code for p in watcher.store.problems(open_only=True) if p.subject.endswith(suffix)}


def test_a_fixed_responder_resolves_at_the_retry(
    setup: tuple[WatchCa, MisbehavingApp, Logs, int, Path],
) -> None:
    ca, _, logs, serial, work = setup
    clock = _clock()
    sent: list[tuple[str, str]] = []
    watcher = Watcher(
        _config(work, logs),
        work,
        clock=clock,
        senders=[lambda kind, p: sent.append((kind, p.code)) or True],
    )
    try:
        ca.flaky_broken = True
        result = asyncio.run(watcher.run_once())
        assert result.checks.checked == 1
        assert _open_codes(watcher, serial) == {"transport.http_status"}
        start = clock().timestamp()
        row = _cert_row(watcher, serial)
        assert row["failures"] == 1
        assert row["due_at"] == start + 60  # not start + recheck_seconds (6 hours)

        # Still broken: the back-off doubles (1, 2, 4 minutes), capped at retry_max_seconds.
        waits = []
        for _ in range(4):
            clock.advance(seconds=1)
            assert asyncio.run(watcher.between_passes()) is None  # not due yet
            due = _cert_row(watcher, serial)["due_at"]
            clock.now = datetime.fromtimestamp(due, UTC)
            before = clock().timestamp()
            result = asyncio.run(watcher.between_passes())
            assert result is not None
            assert result.checks.checked == 1
            waits.append(_cert_row(watcher, serial)["due_at"] - before)
        assert waits == [120, 240, 240, 240]
        assert _open_codes(watcher, serial) == {"transport.http_status"}

        # Fixed: the retry (minutes away, not hours) resolves it, and says so.
        ca.flaky_broken = False
        clock.now = datetime.fromtimestamp(_cert_row(watcher, serial)["due_at"], UTC)
        result = asyncio.run(watcher.between_passes())
        assert result is not None
        assert result.checks.checked == 1
        assert _open_codes(watcher, serial) == set()
        row = _cert_row(watcher, serial)
        assert row["failures"] == 0
        assert row["due_at"] > clock().timestamp() + 3600  # back on the recheck schedule
        assert ("open", "transport.http_status") in sent
        assert ("resolved", "transport.http_status") in sent
    finally:
        watcher.close()


def test_recheck_puts_a_serial_first_even_from_another_process(
    setup: tuple[WatchCa, MisbehavingApp, Logs, int, Path],
) -> None:
    ca, _, logs, serial, work = setup
    clock = _clock()
    config = _config(work, logs)
    watcher = Watcher(config, work, clock=clock)
    try:
        asyncio.run(watcher.run_once())
        assert _open_codes(watcher, serial) == set()
        ca.flaky_broken = True  # broke after a clean check: due only in 6 hours
        assert asyncio.run(watcher.between_passes()) is None

        # The CLI writes to the shared database; the running watcher sees it between passes.
        toml = work / "watch.toml"
        toml.write_text(
            f'database = "sqlite:///{work / "watch.db"}"\nlog_list = "{logs.log_list}"\n'
        )
        runner = CliRunner()
        shown = format(serial, "X")
        colons = ":".join(shown[i : i + 2] for i in range(0, len(shown), 2))
        done = runner.invoke(cli_app, ["watch", "recheck", "-c", str(toml), "0x" + colons])
        assert done.exit_code == 0, done.output
        assert "1 certificate(s)" in done.output
        assert _cert_row(watcher, serial)["due_at"] == FRONT
        result = asyncio.run(watcher.between_passes())
        assert result is not None
        assert result.checks.checked == 1
        assert _open_codes(watcher, serial) == {"transport.http_status"}

        unknown = runner.invoke(cli_app, ["watch", "recheck", "-c", str(toml), "abcdef"])
        assert unknown.exit_code == 1
        assert "not known to the watcher" in unknown.output
        bad = runner.invoke(cli_app, ["watch", "recheck", "-c", str(toml), "xyz"])
        assert bad.exit_code == 2
        assert "not a hexadecimal serial" in bad.output
        everything = runner.invoke(cli_app, ["watch", "recheck", "-c", str(toml), "--all"])
        assert everything.exit_code == 0, everything.output
        assert _cert_row(watcher, serial)["due_at"] == FRONT
        helped = runner.invoke(cli_app, ["watch", "recheck", "--help"])
        assert "front of the check queue" in helped.output
    finally:
        watcher.close()


def test_changing_the_grace_re_plans_waiting_first_checks(
    setup: tuple[WatchCa, MisbehavingApp, Logs, int, Path],
) -> None:
    _, _, logs, serial, work = setup
    clock = _clock()
    watcher = Watcher(_config(work, logs, grace_seconds=3600), work, clock=clock)
    try:
        assert watcher.replanned == 0  # a new database: planned with this config
        result = asyncio.run(watcher.run_once())
        assert result.checks.checked == 0  # in its grace hour
        first = _cert_row(watcher, serial)["due_at"]
    finally:
        watcher.close()
    again = Watcher(_config(work, logs, grace_seconds=3600), work, clock=clock)
    again.close()
    assert again.replanned is None  # same config: nothing to do

    # The issuer becomes one of ours: no grace, so the first check is due now.
    issuer = work / "issuer.pem"
    issuer.write_bytes(setup[0].issuing.public_bytes(serialization.Encoding.PEM))
    watcher = Watcher(
        _config(work, logs, grace_seconds=3600, own_issuers=[str(issuer)]), work, clock=clock
    )
    try:
        assert watcher.replanned == 1
        assert _cert_row(watcher, serial)["due_at"] == first - 3600
        assert asyncio.run(watcher.run_once()).checks.checked == 1
    finally:
        watcher.close()


def test_sighup_reloads_the_config_and_re_plans(
    setup: tuple[WatchCa, MisbehavingApp, Logs, int, Path],
) -> None:
    """The daemon re-reads watch.toml on SIGHUP: the issuer made one of ours has its waiting
    first check moved from the grace hour to now, and it is checked."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from ctstatus.watch.store import WatchStore

    ca, _, logs, serial, work = setup
    issuer = work / "issuer.pem"
    issuer.write_bytes(ca.issuing.public_bytes(serialization.Encoding.PEM))
    toml = work / "watch.toml"
    common = (
        f'database = "sqlite:///{work / "watch.db"}"\nlog_list = "{logs.log_list}"\n'
        'start = "beginning"\npoll_seconds = 1\ngrace_seconds = 3600\ntimeout_seconds = 2\n'
    )
    toml.write_text(common + "[alerts]\nstdout = false\n")
    output = work / "daemon.log"
    with output.open("w") as sink:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "ctstatus"), "watch", "-c", str(toml)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=os.environ | {"COLUMNS": "200"},
        )
    store = WatchStore.open(f"sqlite:///{work / 'watch.db'}")

    def row() -> sa.RowMapping | None:
        with store.engine.connect() as conn:
            query = sa.select(certs).where(certs.c.serial == format(serial, "x"))
            return conn.execute(query).mappings().first()

    def wait(what: str, ready: Any) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            assert daemon.poll() is None, output.read_text()
            assert time.monotonic() < deadline, f"{what}: {output.read_text()}"
            time.sleep(0.1)  # waits on the daemon's passes

    try:
        wait("queued", lambda: row() is not None)
        current = row()
        assert current is not None
        assert current["last_checked"] is None  # in its grace hour
        toml.write_text(common + f'own_issuers = ["{issuer}"]\n[alerts]\nstdout = false\n')
        daemon.send_signal(signal.SIGHUP)
        wait("checked after the reload", lambda: (row() or {}).get("last_checked") is not None)
        assert "re-planned" in output.read_text()
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        store.close()
