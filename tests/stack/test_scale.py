"""The multi-machine layout of docs/deployment.md, as real processes on one machine.

One PostgreSQL ledger; every other part is a ``ctstatus`` process of its own, each with its own
copy of the instance directory (as separate machines would have), sharing nothing but the
ledger:

* three CT logs (``ctstatus log serve``), which the CA submits to;
* two OCSP responders (``ctstatus ocsp serve``) on two loopback ports, one of them publishing
  the CRLs (``[crl] publish`` on for one responder only, as the docs say);
* the CA (``ctstatus issue``) and then ``ctstatus revoke``, one process each.

A certificate the CA process issued is ``good`` on both responders; after the revoke process
has run, both answer ``revoked`` within seconds (they follow the ledger's change feed); a
serial never issued is ``unauthorized`` on both.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ctstatus.ca.bootstrap import init_instance
from ctstatus.config import new_instance_config

pytestmark = pytest.mark.postgres

CTSTATUS = Path(sys.executable).parent / "ctstatus"
HOST = "127.0.0.1"
START_DEADLINE = 60.0
#: "OCSP answers change within a second on running responders" (``ctstatus revoke --help``).
REVOCATION_DEADLINE = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """A ``ctstatus`` process started by the test, its combined output in a file."""

    name: str
    popen: subprocess.Popen[bytes]
    output: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


class Processes:
    """Every long-running process of the test; stopped (SIGTERM) at the end, in reverse."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.running: list[Process] = []

    def start(self, name: str, *args: str | Path) -> Process:
        output = self.work / f"{name}.log"
        with output.open("wb") as sink:
            popen = subprocess.Popen(
                [str(CTSTATUS), *map(str, args)],
                cwd=self.work,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "COLUMNS": "200"},
            )
        process = Process(name, popen, output)
        self.running.append(process)
        return process

    def wait_for(self, process: Process, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until it holds; fail with the process's output if it dies or stalls."""
        deadline = time.monotonic() + START_DEADLINE
        while not ready():
            if process.popen.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{process.name} did not start:\n{process.text()}")
            time.sleep(0.05)  # polls the process's start-up

    def outputs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.text()}" for p in self.running)

    def stop_all(self) -> None:
        for process in reversed(self.running):
            process.stop()


def run(work: Path, *args: str | Path) -> str:
    """A short ``ctstatus`` command in a process of its own; its stdout, or fail with stderr."""
    done = subprocess.run(
        [str(CTSTATUS), *map(str, args)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout


@dataclass
class Layout:
    work: Path
    ca: Path
    responders: list[str]
    processes: Processes


@pytest.fixture
def layout(database_factory: Any, tmp_path: Path) -> Iterator[Layout]:
    database: AbstractContextManager[str] = database_factory("postgresql")
    with database as url:
        work = tmp_path
        ca = work / "ca"
        logs = work / "logs"
        log_list = logs / "loglist.json"
        init_instance(
            ca,
            new_instance_config(
                ledger_url=url, base_url="http://pki.example.com", log_list=log_list
            ),
        )
        # Each responder "machine" gets its own copy of the instance: only the ledger is shared.
        for name in ("responder-1", "responder-2"):
            shutil.copytree(ca, work / name)

        processes = Processes(work)
        try:
            run(work, "log", "init", logs, "--roots", ca / "certs" / "root-ca.pem", "--port", "0")
            logs_process = processes.start("logs", "log", "serve", "--config", logs / "ctlog.toml")
            processes.wait_for(logs_process, log_list.exists)

            responders = []
            for index, publish in ((1, "--publish-crls"), (2, "--no-publish-crls")):
                port = free_port()
                url_of = f"http://{HOST}:{port}"
                process = processes.start(
                    f"responder-{index}",
                    "-i",
                    work / f"responder-{index}",
                    "ocsp",
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    publish,
                )
                processes.wait_for(process, functools.partial(healthy, url_of))
                responders.append(url_of)
            yield Layout(work, ca, responders, processes)
        finally:
            processes.stop_all()


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def ask(responder: str, request: ocsp.OCSPRequest) -> ocsp.OCSPResponse:
    """One OCSP POST (RFC 6960 appendix A.1)."""
    reply = httpx.post(
        f"{responder}/ocsp",
        content=request.public_bytes(Encoding.DER),
        headers={"content-type": "application/ocsp-request"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(reply.content)


def check_signed(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
    """A successful response is signed by the issuing CA or by a responder it certified."""
    signer = response.certificates[0] if response.certificates else issuer
    if signer is not issuer:
        signer.verify_directly_issued_by(issuer)
    key = signer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    algorithm = response.signature_hash_algorithm
    assert algorithm is not None
    key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))


def test_two_responders_one_ca_one_postgresql_ledger(layout: Layout) -> None:
    work, processes = layout.work, layout.processes
    name = f"scale-{secrets.token_hex(3)}.example.com"

    # The CA process: a real issuance, submitted to the three logs.
    record = json.loads(
        run(work, "-i", layout.ca, "issue", name, "--json", "--key-out", work / "site.key")
    )
    assert record["state"] == "issued", record
    chain = x509.load_pem_x509_certificates(record["chain_pem"].encode())
    leaf, issuer = chain[0], chain[1]
    serial = int(record["serial"], 16)
    assert leaf.serial_number == serial
    certid_hash = hashes.SHA1()  # noqa: S303 - the CertID hash OCSP clients send by default
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, certid_hash).build()

    for responder in layout.responders:
        response = ask(responder, request)
        assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL, responder
        assert response.serial_number == serial
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD, responder
        check_signed(response, issuer)

    # A third process revokes; both responders see it through the shared ledger.
    out = run(work, "-i", layout.ca, "revoke", f"{serial:x}", "--reason", "keyCompromise")
    assert f"revoked serial {serial:x}" in out
    pending = set(layout.responders)
    answers: dict[str, ocsp.OCSPResponse] = {}
    deadline = time.monotonic() + REVOCATION_DEADLINE
    while pending:
        for responder in sorted(pending):
            response = ask(responder, request)
            assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
            if response.certificate_status is ocsp.OCSPCertStatus.REVOKED:
                answers[responder] = response
                pending.discard(responder)
            else:
                assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
        if pending and time.monotonic() > deadline:
            pytest.fail(
                f"still not revoked after {REVOCATION_DEADLINE}s on {sorted(pending)}\n"
                + processes.outputs()
            )
        if pending:
            time.sleep(0.1)  # polls the responders until the deadline
    for responder, response in answers.items():
        assert response.serial_number == serial
        assert response.revocation_reason is x509.ReasonFlags.key_compromise, responder
        check_signed(response, issuer)

    # A serial this CA never issued: unauthorized on both (RFC 5019 §2.2.3), not "good".
    unknown = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            request.issuer_name_hash,
            request.issuer_key_hash,
            secrets.randbits(120) | (1 << 120),
            certid_hash,
        )
        .build()
    )
    for responder in layout.responders:
        response = ask(responder, unknown)
        assert response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED, responder

    # Every process is still up (none crashed along the way).
    for process in processes.running:
        assert process.popen.poll() is None, f"{process.name} exited:\n{process.text()}"
