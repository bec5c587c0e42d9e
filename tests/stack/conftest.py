"""A real ``ctstatus up --demo`` on system-chosen loopback ports, shared by a test module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CTSTATUS = Path(sys.executable).parent / "ctstatus"


@dataclass
class Up:
    state: Path
    process: subprocess.Popen[str]
    output: Path
    urls: dict[str, Any]

    @property
    def web(self) -> str:
        return str(self.urls["dashboard"]).rstrip("/")

    @property
    def token(self) -> str:
        return (self.state / "api-token").read_text().strip()

    def log(self) -> str:
        return self.output.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def start_up(
    state: Path, *, demo: bool = True, deadline_s: float = 180, own_group: bool = False
) -> Up:
    """``own_group``: a process group of its own, so a test can signal it as a terminal does."""
    output = state.parent / f"{state.name}-up-{time.monotonic_ns()}.log"
    args = [str(CTSTATUS), "up", "--state", str(state), "--port-base", "0"]
    if demo:
        args += ["--demo", "--demo-interval", "1"]
    (state / "urls.json").unlink(missing_ok=True)
    with output.open("w") as sink:
        process = subprocess.Popen(
            args,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ | {},
            start_new_session=own_group,
        )
    deadline = time.monotonic() + deadline_s
    while True:
        urls_file = state / "urls.json"
        if urls_file.exists() and "running" in output.read_text():
            urls = json.loads(urls_file.read_text())
            if urls.get("pid") == process.pid:
                return Up(state, process, output, urls)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("ctstatus up did not start:\n" + output.read_text())
        time.sleep(0.1)  # waits on the stack's start-up


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    state = tmp_path_factory.mktemp("up") / "state"
    up = start_up(state)
    yield up
    up.stop()
