"""Debian's certspotter (a monitor we did not write) follows our log, and notices when it lies.

certspotter reads the log list ``ctstatus log serve`` writes, verifies the STH signature,
downloads every entry, recomputes the Merkle root and checks each precert entry against its
``extra_data``. It polls once at start-up: we stop it (SIGINT) once it has saved its state for
the log, or after a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import certspotter as spotter
from tests.certspotter import certspotter_binary

from ctstatus.ct.structures import SignedCertificateTimestamp

from .conftest import TEST_DOMAIN, CtCa, RunningServer, make_log_dir, start_server, stop_server

pytestmark = pytest.mark.certspotter
LOG = "alpha"


@pytest.fixture(scope="module")
def certspotter() -> str:
    return certspotter_binary()


@pytest.fixture(scope="module")
def log_server(tmp_path_factory: pytest.TempPathFactory, test_ca: CtCa) -> Iterator[RunningServer]:
    running = start_server(make_log_dir(tmp_path_factory.mktemp("cs") / "logs", test_ca, logs=2))
    yield running
    stop_server(running)


def run_certspotter(
    binary: str, server: RunningServer, work: Path, state: str
) -> tuple[str, str, list[dict[str, str]]]:
    """One certspotter pass over the log list; (stdout, stderr, script events)."""
    url = server.url(LOG, "")

    def done(stderr: str, _events: int) -> bool:  # it has finished with our log (or failed)
        return (
            f"saving state in defer for {url}" in stderr
            or f"error fetching latest STH for {url}" in stderr
        )

    run = spotter.run_certspotter(
        binary,
        server.prepared.log_list_path,
        work / state,
        f".{TEST_DOMAIN}",
        done=done,
        seconds=20,
    )
    return run.stdout, run.stderr, run.events


def problems(stderr: str) -> list[str]:
    ignorable = ("context canceled",)
    return [
        line
        for line in stderr.splitlines()
        if ("error" in line.lower() or "misbehav" in line.lower())
        and not any(text in line for text in ignorable)
    ]


def test_certspotter_follows_the_log_and_catches_a_lying_sth(
    certspotter: str, log_server: RunningServer, test_ca: CtCa, tmp_path: Path
) -> None:
    serials: dict[str, str] = {}
    for _ in range(4):
        issued = test_ca.precert()
        response = log_server.submit(LOG, [issued.precert, test_ca.issuing_der], precert=True)
        assert response.status_code == 200, response.text
        sct = SignedCertificateTimestamp.from_json(response.json())
        final = test_ca.final(issued, [sct])
        response = log_server.submit(LOG, [final, test_ca.issuing_der], precert=False)
        assert response.status_code == 200, response.text
        serials[f"{issued.serial:x}"] = issued.domain
    # Some entries certspotter must not report (a name outside the watch list).
    response = log_server.submit(
        LOG, [test_ca.plain("unwatched.example.org"), test_ca.issuing_der], precert=False
    )
    assert response.status_code == 200
    log_server.publish(LOG)

    stdout, stderr, events = run_certspotter(certspotter, log_server, tmp_path, "state")
    assert problems(stderr) == [], stderr
    assert f"finished downloading entries from {log_server.url(LOG, '')}" in stderr
    for domain in serials.values():
        assert domain in stdout
    assert "unwatched.example.org" not in stdout
    reported: dict[str, int] = {}
    for event in events:
        serial = event["SERIAL"].lower().lstrip("0")
        reported[serial] = reported.get(serial, 0) + 1
    # Each serial twice: as a precertificate and as the final certificate.
    assert reported == {serial.lstrip("0"): 2 for serial in serials}, events

    # A validly signed STH over the wrong root: certspotter recomputes the root and objects.
    log_server.set_faults(LOG, sth="wrong_root")
    try:
        _, stderr, _ = run_certspotter(certspotter, log_server, tmp_path, "state-wrong-root")
    finally:
        log_server.set_faults(LOG)
    assert any("does not match" in line for line in problems(stderr)), stderr

    # A new entry and an STH with a broken signature, continuing from the verified state.
    plain = test_ca.plain()
    assert log_server.submit(LOG, [plain, test_ca.issuing_der], precert=False).status_code == 200
    log_server.publish(LOG)
    log_server.set_faults(LOG, sth="bad_signature")
    try:
        _, stderr, _ = run_certspotter(certspotter, log_server, tmp_path, "state")
    finally:
        log_server.set_faults(LOG)
    assert any("signature" in line.lower() for line in problems(stderr)), stderr
