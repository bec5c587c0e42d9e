"""``ctstatus acme serve`` as a user runs it: help, a clear error, and a real HTTPS server."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.acme import acmestack
from tests.acme.acmestack import AcmeStack

CTSTATUS = Path(sys.executable).parent / "ctstatus"
acme_stack = acmestack.acme_stack  # the module's stack (a fixture)


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"


def test_help_teaches_the_clients() -> None:
    result = subprocess.run(
        [CTSTATUS, "acme", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"COLUMNS": "200"},
    )
    assert result.returncode == 0
    for fragment in ("REQUESTS_CA_BUNDLE", "LEGO_CA_CERTIFICATES", "/directory", "certbot"):
        assert fragment in result.stdout


def test_no_ct_logs_is_one_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    init = subprocess.run([CTSTATUS, "init", str(directory)], capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    result = subprocess.run(
        [CTSTATUS, "-i", str(directory), "acme", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: no CT logs are configured"), result.stderr


def test_serve_answers_the_directory_over_https(acme_stack: AcmeStack, tmp_path: Path) -> None:
    output = tmp_path / "serve.log"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [CTSTATUS, "-i", str(acme_stack.stack.directory), "acme", "serve", "--port", "0"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"serving (https://\S+/directory)", output.read_text())):
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.1)  # waits on the server's start-up
        context = ssl.create_default_context(cafile=str(acme_stack.tls_root))
        directory = httpx.get(found.group(1), verify=context, timeout=10).json()
        assert directory["newAccount"].startswith(found.group(1).rsplit("/directory", 1)[0])
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, output.read_text()
