"""``ctstatus up`` stops cleanly on SIGTERM and a restart resumes the same state."""

from __future__ import annotations

import json
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
