"""Fixtures for the status services: ledgers on SQLite and PostgreSQL, CAs, serials in any state.

* ``status_engine``: a migrated ledger per backend, shared by a module (rows are never deleted,
  so every test works on an issuer of its own: ``make_issuer``);
* ``make_issuer``: a new CA (BR root profile: it signs certificates, OCSP and CRLs) registered in
  the ledger, with a driver that takes serials to any state with real (pre)certificates;
* ``instance``: a real instance made by ``init_instance`` (for the CLI and the HTTP server);
* ``server``: a real uvicorn server on 127.0.0.1 in a thread, for peers that speak HTTP.

Helpers are reached through fixtures because the suite runs with ``--import-mode=importlib``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ca import profiles
from ctstatus.clock import Clock, FrozenClock, system_clock
from ctstatus.keys import InProcessSigner, KeyAlgorithm
from ctstatus.keys.assemble import sign_certificate
from ctstatus.ledger import (
    Issuer,
    Ledger,
    RevocationReason,
    SerialRecord,
    SerialState,
    create_ledger_engine,
    migrate,
)
from ctstatus.status.identities import CaIdentities
from ctstatus.status.service import ServiceSettings, StatusService

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
BASE = "http://pki.example.com"
CTSTATUS = Path(sys.executable).parent / "ctstatus"
_LEAF_KEY = ec.generate_private_key(ec.SECP256R1())


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# ------------------------------------------------------------------------------------ ledgers


@pytest.fixture(scope="module", params=BACKENDS)
def status_engine(request: pytest.FixtureRequest, database_factory: Any) -> Iterator[sa.Engine]:
    """A migrated ledger shared by the tests of one module, per backend."""
    with database_factory(request.param) as url:
        engine = create_ledger_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


# ------------------------------------------------------------------------------------- issuers


@dataclass
class TestIssuer:
    """A CA registered in the ledger, and shortcuts that take serials to any state."""

    __test__ = False
    ledger: Ledger
    issuer: Issuer
    signer: InProcessSigner
    certificate: x509.Certificate
    name: str
    crl_shards: int = 4
    certificates: dict[int, x509.Certificate] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.issuer.id

    def crl_url(self, shard: int) -> str:
        return f"{BASE}/crl/{self.name}/{shard}.crl"

    def _builder(self, serial: int, not_before: datetime, days: int) -> x509.CertificateBuilder:
        return profiles.tls_server(
            _LEAF_KEY.public_key(),
            [x509.DNSName("www.example.com")],
            self.certificate,
            serial,
            not_before,
            days,
            ocsp_url=f"{BASE}/ocsp",
            ca_issuers_url=f"{BASE}/ca/{self.name}.der",
            crl_url=self.crl_url(serial % self.crl_shards),
        )

    def serial(
        self,
        state: SerialState,
        *,
        not_before: datetime | None = None,
        days: int = 90,
        reason: RevocationReason = RevocationReason.KEY_COMPROMISE,
        via: SerialState = SerialState.ISSUED,
    ) -> SerialRecord:
        """A new serial in ``state``; ``revoked`` goes ``via`` issued (or abandoned, or straight
        from precert_signed)."""
        serial = profiles.new_serial()
        start = not_before or self.ledger_now() - timedelta(hours=1)
        builder = self._builder(serial, start, days)
        cert = sign_certificate(builder, self.signer)
        self.certificates[serial] = cert
        lg, i = self.ledger, self.id
        record = lg.reserve(
            i,
            serial,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            crl_shard=serial % self.crl_shards,
            actor="test",
        )
        if state is SerialState.RESERVED:
            return record
        if state is SerialState.NEVER_SIGNED:
            return lg.mark_never_signed(i, serial, "lint failed", actor="test")
        precert = sign_certificate(
            builder.add_extension(x509.PrecertPoison(), critical=True), self.signer
        )
        record = lg.mark_precert_signed(i, serial, precert.public_bytes(Encoding.DER), actor="test")
        path = via if state is SerialState.REVOKED else state
        if path is SerialState.ISSUED:
            record = lg.mark_issued(i, serial, cert.public_bytes(Encoding.DER), actor="test")
        elif path is SerialState.ABANDONED:
            record = lg.mark_abandoned(i, serial, "ct quorum not met", actor="test")
        if state is SerialState.REVOKED:
            record = lg.revoke(i, serial, reason, actor="test")
        assert record.state is state
        return record

    def ledger_now(self) -> datetime:
        return self.ledger._now()

    def pem(self, serial: int, directory: Path) -> Path:
        path = directory / f"{serial:x}.pem"
        path.write_bytes(self.certificates[serial].public_bytes(Encoding.PEM))
        return path

    def ca_pem(self, directory: Path) -> Path:
        path = directory / f"{self.name}.pem"
        path.write_bytes(self.certificate.public_bytes(Encoding.PEM))
        return path


def new_test_issuer(
    ledger: Ledger, *, algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256
) -> TestIssuer:
    signer = InProcessSigner(algorithm.generate())
    name = f"ca-{secrets.token_hex(5)}"
    certificate = sign_certificate(
        profiles.root_ca(
            profiles.ca_subject("DE", "ctstatus Test", f"ctstatus Test CA {name}"),
            signer.public_key(),
            profiles.new_serial(),
            datetime(2026, 1, 1, tzinfo=UTC),
            3000,
        ),
        signer,
    )
    issuer = ledger.add_issuer(name, certificate, actor="test")
    return TestIssuer(ledger, issuer, signer, certificate, name)


@pytest.fixture(scope="session")
def issuer_factory() -> Callable[..., TestIssuer]:
    """``issuer_factory(ledger)``: a fresh CA in ``ledger`` (for module-scoped fixtures)."""
    return new_test_issuer


@pytest.fixture
def make_issuer(status_engine: sa.Engine) -> Callable[..., TestIssuer]:
    """``make_issuer(clock=system_clock, algorithm=...)``: a fresh CA in the module's ledger."""

    def make(clock: Clock = system_clock, **kw: Any) -> TestIssuer:
        return new_test_issuer(Ledger(status_engine, clock), **kw)

    return make


@pytest.fixture
def frozen() -> FrozenClock:
    """A frozen clock at the real time: signed responses stay valid for peers like openssl."""
    return FrozenClock(now_utc())


@pytest.fixture
def make_service(status_engine: sa.Engine) -> Iterator[Callable[..., StatusService]]:
    """``make_service(issuers, clock, **settings)``: a service signing as the given issuers."""
    made: list[StatusService] = []

    def make(
        issuers: list[TestIssuer], clock: Clock = system_clock, **settings: Any
    ) -> StatusService:
        service = StatusService(
            status_engine,
            clock,
            CaIdentities({i.name: i.signer for i in issuers}),
            ServiceSettings(**settings),
        )
        service.prepare()
        made.append(service)
        return service

    yield make
    for service in made:
        asyncio.run(service.responder.drain())


# ------------------------------------------------------------------------------------ pkilint


def run_pkilint(tool: str, *args: str | Path) -> tuple[int, str]:
    """Run pkilint's command-line tool ``tool`` (e.g. ``lint_crl``) with ``args``; (exit, output).

    The tool's own ``main`` runs in this process -- the exact code path of the command, without
    paying its one-second start-up for every document.
    """
    import contextlib
    import importlib
    import io

    main = importlib.import_module(f"pkilint.bin.{tool}").main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    return int(code), out.getvalue()


@pytest.fixture(scope="session")
def pkilint() -> Callable[..., tuple[int, str]]:
    """``pkilint("lint_crl", "lint", "-t", "CRL", "-p", "BR", path)`` -> (exit code, output)."""
    return run_pkilint


# ------------------------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    port: int
    app: Any
    thread: threading.Thread
    server: Any

    def stop(self) -> None:
        self.server.stop_threadsafe()
        self.thread.join(timeout=10)


TEST_LIMITS = {"request_timeout": 2.0, "keep_alive": 5.0, "reap_interval": 0.1}


def start_server(app: Any) -> RunningServer:
    """Serve ``app`` with the production server (``ctstatus ocsp serve``) on a free loopback
    port, in a thread with its own uvloop event loop; short timeouts for the tests."""
    import uvloop

    from ctstatus.status.http_server import HttpServer, Limits

    server = HttpServer(app, Limits(**TEST_LIMITS))  # type: ignore[arg-type]
    ready = threading.Event()
    thread = threading.Thread(
        target=lambda: uvloop.run(server.serve("127.0.0.1", 0, ready=ready.set)), daemon=True
    )
    thread.start()
    if not ready.wait(20):
        raise RuntimeError("the test server did not start")
    return RunningServer(f"http://127.0.0.1:{server.port}", server.port, app, thread, server)


def start_uvicorn(app: Any) -> RunningServer:
    """The same app under uvicorn (``ocsp serve --uvicorn``)."""
    import uvicorn

    from ctstatus.status.server import uvicorn_options

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level="warning",
        timeout_keep_alive=5,
        **uvicorn_options(),
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)

    class Uvicorn:
        def stop_threadsafe(self) -> None:
            server.should_exit = True

    return RunningServer(f"http://127.0.0.1:{port}", port, app, thread, Uvicorn())


@pytest.fixture(scope="session")
def serve() -> Callable[[Any], RunningServer]:
    """``serve(app)``: a running server; the caller stops it."""
    return start_server


@pytest.fixture(scope="session")
def serve_uvicorn() -> Callable[[Any], RunningServer]:
    """``serve_uvicorn(app)``: the same under uvicorn; the caller stops it."""
    return start_uvicorn


@pytest.fixture(scope="session")
def instance_driver() -> Callable[[Path], InstanceIssuer]:
    """``instance_driver(dir)``: drive serials of an instance's issuing CA."""
    return open_instance_issuer


# ----------------------------------------------------------------------------------- instances


@pytest.fixture(scope="session")
def run_ctstatus() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_ctstatus(*args, check=True)``: the ``ctstatus`` command in a process of its own."""
    return run_cli


def run_cli(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CTSTATUS, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


InstanceFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def make_instance_dir(
    request: pytest.FixtureRequest, database_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InstanceFactory]:
    """``make_instance_dir(backend, signer="ca")``: a real instance (``init_instance``), made once
    per (backend, signer) for the session, its ledger on that backend."""
    from contextlib import ExitStack

    from ctstatus.ca.bootstrap import init_instance
    from ctstatus.config import new_instance_config

    made: dict[tuple[str, str], Path] = {}
    with ExitStack() as stack:

        def make(backend: str, signer: str = "ca") -> Path:
            if (backend, signer) not in made:
                if backend == "postgresql":
                    request.getfixturevalue("postgres_admin")  # skip or fail as configured
                url = stack.enter_context(database_factory(backend))
                directory = tmp_path_factory.mktemp(f"instance-{backend}-{signer}") / "ca"
                config = new_instance_config(
                    organization="ctstatus Test", country="DE", base_url=BASE, ledger_url=url
                )
                config = config.model_copy(
                    update={"ocsp": config.ocsp.model_copy(update={"signer": signer})}
                )
                made[(backend, signer)] = init_instance(directory, config).directory
            return made[(backend, signer)]

        yield make


@pytest.fixture(params=BACKENDS)
def instance_dir(request: pytest.FixtureRequest, make_instance_dir: InstanceFactory) -> Path:
    """A real instance whose issuing CA signs OCSP itself, on each backend."""
    return make_instance_dir(request.param)


@dataclass
class InstanceIssuer(TestIssuer):
    """The instance's own issuing CA, driven like a test issuer."""

    directory: Path = Path()


def open_instance_issuer(instance_dir: Path) -> InstanceIssuer:
    """Drive serials of the instance's issuing CA (close ``.ledger`` when done)."""
    from ctstatus.instance import Instance

    instance = Instance.open(instance_dir)
    ca = instance.config.ca.issuing
    signer = instance.signer(ca)
    assert isinstance(signer, InProcessSigner)
    ledger = instance.open_ledger()
    issuer = ledger.issuer_by_name(ca.name)
    assert issuer is not None
    return InstanceIssuer(
        ledger,
        issuer,
        signer,
        instance.certificate(ca),
        ca.name,
        crl_shards=instance.config.profiles.tls_server.crl_shards,
        directory=instance_dir,
    )


@pytest.fixture
def instance_issuer(instance_dir: Path) -> Iterator[InstanceIssuer]:
    driver = open_instance_issuer(instance_dir)
    yield driver
    driver.ledger.close()
