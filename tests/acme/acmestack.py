"""A real ACME stack on 127.0.0.1 for the client tests (certbot, lego, our own JWS client).

``acme_stack`` (module scope, per ledger backend): an instance made by ``init_instance``, three
CT logs (the issuance tests' ``_start_logs``), the loopback test DNS server, the OCSP/CRL server
(``status.wiring``) and the ACME server (``serve_acme``, what ``ctstatus acme serve`` runs) over
HTTPS with the instance's generated TLS root, in one thread with its own event loop.

Names under ``example.com`` resolve to 127.0.0.1 for http-01 and tls-alpn-01 (the validator's
``resolve`` mapping); dns-01 TXT and CAA records come from the test DNS server. http-01 and
tls-alpn-01 go to the fixed free ports ``http_port`` and ``alpn_port`` where clients listen.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from tests.acme.dnsserver import TestDNSServer
from tests.issuance.conftest import CT_DEADLINE, Stack, _start_logs

from ctstatus.acme.runner import Running, serve_acme
from ctstatus.acme.validation import ValidationSettings
from ctstatus.ca import bootstrap
from ctstatus.config import new_instance_config
from ctstatus.status import wiring

CAA_IDENTITY = "ca.ctstatus.example"
REQUIRE_PEERS = os.environ.get("CTSTATUS_REQUIRE_ACME_CLIENTS") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(tool: str) -> str:
    """The path of ``tool``; skip without it (fail under CTSTATUS_REQUIRE_ACME_CLIENTS=1)."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (scripts/bootstrap --test installs it)"
        if REQUIRE_PEERS:
            pytest.fail(message)
        pytest.skip(message)
    return path


def unique_domain(label: str) -> str:
    return f"{label}-{secrets.token_hex(3)}.example.com"


@dataclass
class AcmeStack:
    stack: Stack
    dns: TestDNSServer
    running: Running
    status_url: str
    http_port: int
    alpn_port: int
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event
    thread: threading.Thread
    work: Path

    @property
    def directory(self) -> str:
        return self.running.directory

    @property
    def tls_root(self) -> Path:
        return self.running.tls.root

    @property
    def base(self) -> str:
        return self.directory.rsplit("/directory", 1)[0]

    def client_env(self) -> dict[str, str]:
        """The environment a client needs to trust our HTTPS root (and nothing else)."""
        return os.environ | {
            "REQUESTS_CA_BUNDLE": str(self.tls_root),
            "LEGO_CA_CERTIFICATES": str(self.tls_root),
            "SSL_CERT_FILE": str(self.tls_root),
        }

    def verify_chain(self, chain: Path) -> subprocess.CompletedProcess[str]:
        """``openssl verify`` of the leaf in ``chain`` against the instance root."""
        pems = chain.read_text().split("-----END CERTIFICATE-----")
        leaf = self.work / f"leaf-{secrets.token_hex(3)}.pem"
        intermediates = self.work / f"chain-{secrets.token_hex(3)}.pem"
        leaf.write_text(pems[0] + "-----END CERTIFICATE-----\n")
        intermediates.write_text("-----END CERTIFICATE-----".join(pems[1:]))
        return subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(self.stack.root_pem),
                "-untrusted",
                str(intermediates),
                "-purpose",
                "sslserver",
                str(leaf),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def ocsp_status(self, certificate: Path) -> str:
        """What ``openssl ocsp`` says about ``certificate`` asking our responder."""
        leaf = self.work / f"ocsp-{secrets.token_hex(3)}.pem"
        leaf.write_text(
            certificate.read_text().split("-----END CERTIFICATE-----")[0]
            + "-----END CERTIFICATE-----\n"
        )
        result = subprocess.run(
            [
                "openssl",
                "ocsp",
                "-issuer",
                str(self.stack.issuing_pem),
                "-cert",
                str(leaf),
                "-url",
                f"{self.status_url}/ocsp",
                "-CAfile",
                str(self.stack.root_pem),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "Response verify OK" in result.stderr + result.stdout, result
        return result.stdout

    def crl_lists(self, shard: int, serial: int) -> str:
        """Publish what is due, then fetch shard ``shard`` over HTTP until it lists ``serial``
        (the server reloads its CRLs from the ledger within its poll interval); openssl checks
        its signature and prints it."""
        wired = wiring.build(self.stack.reload(), publish=True)
        try:
            assert wired.service.publisher is not None
            wired.service.publisher.publish_due(wired.service.clock())
        finally:
            wired.close()
        path = self.work / f"crl-{secrets.token_hex(3)}.der"

        def listed() -> bool:
            response = httpx.get(f"{self.status_url}/crl/issuing-ca/{shard}.crl", timeout=10)
            response.raise_for_status()
            path.write_bytes(response.content)
            crl = x509.load_der_x509_crl(response.content)
            return crl.get_revoked_certificate_by_serial_number(serial) is not None

        wait_for(listed, f"the CRL to list {serial:x}")
        result = subprocess.run(
            [
                "openssl",
                "crl",
                "-inform",
                "DER",
                "-in",
                str(path),
                "-noout",
                "-text",
                "-CAfile",
                str(self.stack.issuing_pem),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result
        assert "verify OK" in result.stderr + result.stdout, result
        return result.stdout


def _run_servers(
    stack: Stack, validation: ValidationSettings, ready: dict[str, Any], done: threading.Event
) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        ready["loop"] = asyncio.get_running_loop()
        ready["stop"] = stop
        wired = wiring.build(stack.instance)
        status_sock = socket.socket()
        status_sock.bind(("127.0.0.1", 0))
        status_sock.listen(128)
        status = uvicorn.Server(
            uvicorn.Config(wired.app, lifespan="on", log_level="warning", access_log=False)
        )
        status_task = asyncio.create_task(status.serve(sockets=[status_sock]))
        ready["status_url"] = f"http://127.0.0.1:{status_sock.getsockname()[1]}"
        ledger = stack.open_ledger()
        try:
            await serve_acme(
                stack.instance,
                ledger,
                host="127.0.0.1",
                port=0,
                stop=stop,
                started=lambda running: (ready.__setitem__("running", running), done.set()),
                validation=validation,
            )
        finally:
            status.should_exit = True
            await status_task
            ledger.close()
            wired.close()

    try:
        asyncio.run(main())
    except BaseException as exc:
        ready["error"] = exc
        done.set()
        raise


@pytest.fixture(scope="module")
def acme_stack(
    backend: str, database_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AcmeStack]:
    database: AbstractContextManager[str] = database_factory(backend)
    with database as url, TestDNSServer() as dns:
        work = tmp_path_factory.mktemp(f"acme-{backend}")
        ledger_url = "sqlite:///ledger.sqlite3" if backend == "sqlite" else url
        bootstrap.init_instance(work / "ca", new_instance_config(ledger_url=ledger_url))
        prepared, log_thread = _start_logs(work / "logs", work / "ca" / "certs" / "root-ca.pem")
        admin = httpx.Client(timeout=10)
        stack = Stack(backend, work / "ca", prepared, log_thread, admin)
        stack.configure(
            log_list=prepared.log_list_path,
            ct_deadline_seconds=CT_DEADLINE,
            recover_grace_seconds=60,
            lint_workers=0,
        )
        http_port, alpn_port = free_port(), free_port()
        validation = ValidationSettings(
            dns_servers=(dns.address,),
            resolve={"*.example.com": "127.0.0.1"},
            http_port=http_port,
            tls_alpn_port=alpn_port,
            loopback_only=True,
            timeout_seconds=10.0,
            caa_identities=(CAA_IDENTITY,),
        )
        ready: dict[str, Any] = {}
        done = threading.Event()
        thread = threading.Thread(
            target=_run_servers, args=(stack, validation, ready, done), daemon=True
        )
        thread.start()
        if not done.wait(60) or "error" in ready:
            raise RuntimeError(f"the ACME stack did not start: {ready.get('error')}")
        acme = AcmeStack(
            stack,
            dns,
            ready["running"],
            ready["status_url"],
            http_port,
            alpn_port,
            ready["loop"],
            ready["stop"],
            thread,
            work,
        )
        try:
            yield acme
        finally:
            acme.loop.call_soon_threadsafe(acme.stop.set)
            thread.join(timeout=60)
            admin.close()
            prepared.server.should_exit = True
            log_thread.join(timeout=30)


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    """Poll ``condition`` (a server starting up), failing with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
