"""Debian's certspotter against our logs: find the binary, run one pass, collect its hook events.

certspotter polls every log of a log list once at start-up and then waits for the next poll; a
test stops it (SIGINT) as soon as it has done what the test waits for, or at a deadline. Its
``-script`` hook runs once per certificate it reports, concurrently: each run writes its own
file, because lines appended to one shared file by two runs interleave.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The hook variables kept (certspotter sets many more).
EVENT_VARIABLES = (
    "EVENT",
    "SERIAL",
    "ENTRY_INDEX",
    "LOG_URI",
    "TBS_SHA256",
    "CERT_SHA256",
    "DNS_NAMES",
    "CERT_TYPE",
)


def certspotter_binary() -> str:
    """The binary, or a skip (a failure under ``CTSTATUS_REQUIRE_CERTSPOTTER=1``, as in CI)."""
    path = shutil.which("certspotter")
    if path is None:
        why = "certspotter is not installed (apt-get install certspotter)"
        if os.environ.get("CTSTATUS_REQUIRE_CERTSPOTTER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return path


@dataclass
class CertspotterPass:
    stdout: str
    stderr: str
    events: list[dict[str, str]]


def run_certspotter(
    binary: str,
    log_list: Path,
    work: Path,
    watchlist: str,
    *,
    done: Callable[[str, int], bool],
    seconds: float,
    extra_args: Sequence[str] = (),
) -> CertspotterPass:
    """One pass in ``work`` (its state, config and events live there) until ``done(stderr,
    events so far)`` or ``seconds`` pass; then SIGINT and collect."""
    config = work / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "watchlist").write_text(watchlist + "\n")
    events = work / "events"
    events.mkdir(exist_ok=True)
    hook = work / "hook.sh"
    wanted = "|".join(EVENT_VARIABLES)
    hook.write_text(
        f'#!/bin/sh\nenv | grep -E "^({wanted})=" '
        f'> "{events}/$$.tmp" && mv "{events}/$$.tmp" "{events}/$$.event"\n'
    )
    hook.chmod(0o755)
    stderr_path = work / "stderr.txt"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [binary, "-logs", str(log_list), "-state_dir", str(work / "state"),
             "-watchlist", str(config / "watchlist"), "-script", str(hook),
             "-stdout", "-verbose", *extra_args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "CERTSPOTTER_CONFIG_DIR": str(config)},
        )  # fmt: skip
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and process.poll() is None:
            if done(stderr_path.read_text(), len(list(events.glob("*.event")))):
                break
            time.sleep(0.05)  # polls certspotter's progress (an outside process), bounded
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=20)
    parsed = []
    for path in sorted(events.glob("*.event")):
        event: dict[str, str] = {}
        for line in path.read_text().splitlines():
            key, equals, value = line.partition("=")
            if equals:
                event[key] = value
        parsed.append(event)
    return CertspotterPass(stdout, stderr_path.read_text(), parsed)
