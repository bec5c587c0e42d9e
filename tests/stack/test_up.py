"""``ctstatus up`` stops cleanly on SIGTERM and a restart resumes the same state."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
from tests.stack.conftest import start_up


def test_sigterm_stops_cleanly_and_a_restart_resumes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = start_up(state, demo=True)
    deadline = time.monotonic() + 60
    serial = None
    while serial is None:  # wait for real work: one issued certificate
        for line in up.log().splitlines():
            if line.startswith("demo: issued "):
                serial = line.split()[2]
                break
        assert time.monotonic() < deadline, up.log()
        time.sleep(0.2)  # waits on the demo's issuance
    assert up.stop(signal.SIGTERM) == 0
    log = up.log()
    assert "ctstatus up: stopped" in log
    assert "Traceback" not in log
    token_hash = (state / "api-token.sha256").read_text()

    again = start_up(state, demo=False)
    try:
        assert "creating" not in again.log()  # nothing re-created
        assert "API token   in" in again.log()  # the token is not shown again
        assert (state / "api-token.sha256").read_text() == token_hash
        record = httpx.get(f"{again.web}/api/v1/serials/{serial}", timeout=30)
        assert record.status_code == 200
        assert record.json()["record"]["state"] == "issued"
        urls = json.loads((state / "urls.json").read_text())
        assert urls["pid"] == again.process.pid
    finally:
        assert again.stop(signal.SIGINT) == 0
    assert "Traceback" not in again.log()


def test_ctrl_c_stops_without_tracebacks_from_the_lint_workers(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group, the pkilint worker processes too: they must
    leave the shutdown to the stack instead of dying with a KeyboardInterrupt traceback."""
    up = start_up(tmp_path / "state", demo=True, own_group=True)
    deadline = time.monotonic() + 60
    while "demo: issued " not in up.log():  # a lint worker exists once something was issued
        assert time.monotonic() < deadline, up.log()
        time.sleep(0.2)  # waits on the demo's issuance
    os.killpg(up.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert up.process.wait(timeout=60) == 0
    log = up.log()
    assert "ctstatus up: stopped" in log
    assert "Traceback" not in log
    assert "KeyboardInterrupt" not in log
