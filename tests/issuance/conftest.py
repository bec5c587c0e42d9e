"""Issuance against real components on 127.0.0.1: the fixtures and the checks every test shares.

``stack`` (one per test module and ledger backend) is what a user runs by hand:

* a real instance made by ``init_instance`` (root and issuing CA, encrypted key files, a ledger
  on SQLite or on PostgreSQL at 127.0.0.1:5432);
* ``ctstatus log init --logs 3``: three CT logs of three operators accepting the instance's root,
  served by the code ``ctstatus log serve`` runs (``PreparedServer``) in a thread of the test
  process, on a free port, with its loopback admin endpoints for fault injection;
* the instance's ``[issuance]`` pointing at the log list the server wrote, with a 2 s CT
  deadline so that failure paths are quick.

Faults are reset after every test. Ledger rows are never deleted, so every test works on the
serials it issued itself (and the checks that look at every serial hold for all of them).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ca import bootstrap, requests
from ctstatus.ca.issuance import IssuanceRequest, IssuanceResult, IssuingCa
from ctstatus.ca.lint import LintPool
from ctstatus.ca.service import PolicySubmitter, instance_log_list, issuance_settings
from ctstatus.clock import system_clock
from ctstatus.config import new_instance_config
from ctstatus.ct.client import LogClient
from ctstatus.ct.loglist import LogList, load_log_list
from ctstatus.ct.policy import CtPolicy
from ctstatus.ct.reader import LogEntry
from ctstatus.ct.structures import LogEntryType
from ctstatus.ct.transport import HttpSession, new_http_session
from ctstatus.ctlog.config import load_log_server_config
from ctstatus.ctlog.server import PreparedServer
from ctstatus.ctlog.setup import init_log_server
from ctstatus.instance import Instance
from ctstatus.keys import Signer
from ctstatus.ledger import Ledger, SerialRecord, SerialState
from ctstatus.secrets import Secret
from ctstatus.status.answer import Verdict, verdict

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
LOGS = ("alpha", "bravo", "charlie")
CT_DEADLINE = 2.0
ISSUER = "issuing-ca"

#: The journal of a precertificate whose issuance failed after it was signed.
ABANDONED_JOURNAL = ["reserved", "precert_signed", "abandoned", "revoked"]


def describe_log(name: str) -> str:
    """How ``log init`` describes a log, and so how error messages name it."""
    return f"ctstatus {name} log"


# ------------------------------------------------------------------- what the user is told

TIMEOUT = re.compile(r"timeout after (\d+(?:\.\d+)?) s")
TIMED_OUT = "timeout after N s"
#: A log answering 503, or refusing connections, is retried with backoff within the deadline. It
#: is reported with its last error when the next attempt would not fit, but as a timeout when the
#: deadline passes during an attempt, which a busy machine (slow attempts) makes possible.
RETRIED_503 = ("HTTP 503", TIMED_OUT)
RETRIED_REFUSAL = ("connection failed", TIMED_OUT)


def timeouts_normalised(message: str) -> str:
    """``message`` with each "timeout after X s" as "timeout after N s", X checked.

    A log that hangs is reported with the budget it had: the deadline minus the moment it was
    started, and a hedged log starts later (after the stagger or another log's failure), so X
    depends on the shuffled order of the logs; it is never more than the deadline.
    """
    for value in TIMEOUT.findall(message):
        assert 0 < float(value) <= CT_DEADLINE, message
    return TIMEOUT.sub(TIMED_OUT, message)


def reasons(*parts: tuple[str, str | tuple[str, ...]]) -> list[str]:
    """Every text the failed logs may be listed as: in any order (candidates are shuffled),
    each log with one of the texts allowed for it."""
    options = [
        [(log, text) for text in ((what,) if isinstance(what, str) else what)]
        for log, what in parts
    ]
    return [
        "; ".join(f"log {describe_log(log)}: {text}" for log, text in order)
        for choice in itertools.product(*options)
        for order in itertools.permutations(choice)
    ]


def abandoned_message(cause: str, serial: int, state: str = "abandoned and revoked") -> str:
    return f"{cause}. The precertificate (serial {serial:x}) is {state}"


# --------------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """A real instance and three real logs; helpers to drive and inspect them."""

    backend: str
    directory: Path
    prepared: PreparedServer
    thread: threading.Thread
    admin: httpx.Client
    instance: Instance = field(init=False)
    signer: Signer = field(init=False)
    issuer_id: int = field(init=False)

    def __post_init__(self) -> None:
        self.reload()
        self.signer = self.instance.signer(self.instance.config.ca.issuing)
        with self.open_ledger() as ledger:
            issuer = ledger.issuer_by_name(ISSUER)
            assert issuer is not None
            self.issuer_id = issuer.id

    # -- the instance ------------------------------------------------------------------------

    def reload(self) -> Instance:
        self.instance = Instance.open(self.directory)
        return self.instance

    @property
    def config_path(self) -> Path:
        return self.directory / "ctstatus.toml"

    def configure(self, **issuance: Any) -> Instance:
        """Set keys of ``[issuance]`` in ctstatus.toml (what a user edits) and reload."""
        text = self.config_path.read_text()
        head, section = text.split("\n[issuance]\n", 1)
        for key, value in issuance.items():
            rendered = json.dumps(str(value) if isinstance(value, Path) else value)
            line = f"{key} = {rendered}"
            pattern = re.compile(rf"^#? ?{key} = .*$", re.MULTILINE)
            section, found = pattern.subn(line, section, count=1)
            if not found:
                section = f"{line}\n{section}"
        self.config_path.write_text(f"{head}\n[issuance]\n{section}")
        return self.reload()

    @property
    def issuing_certificate(self) -> x509.Certificate:
        return self.instance.certificate(self.instance.config.ca.issuing)

    @property
    def issuing_pem(self) -> Path:
        return self.instance.path(self.instance.config.ca.issuing.certificate)

    @property
    def root_pem(self) -> Path:
        return self.instance.path(self.instance.config.ca.root.certificate)

    def open_ledger(self, clock: Any = system_clock) -> Ledger:
        return self.instance.open_ledger(clock)

    # -- the logs ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.prepared.base_url

    @property
    def log_list_path(self) -> Path:
        return self.prepared.log_list_path

    def log_list(self, only: Sequence[str] | None = None) -> LogList:
        logs = load_log_list(self.log_list_path)
        if only is None:
            return logs
        wanted = {describe_log(name) for name in only}
        return replace(logs, logs=tuple(log for log in logs.logs if log.description in wanted))

    def set_faults(self, log: str, **faults: Any) -> None:
        response = self.admin.post(f"{self.base_url}/admin/{log}/faults", json=faults)
        assert response.status_code == 200, response.text

    def reset_faults(self) -> None:
        for log in LOGS:
            self.set_faults(log)

    def publish(self) -> None:
        """Sign an STH over everything committed now (get-entries serves the published tree)."""
        for log in LOGS:
            self.admin.post(f"{self.base_url}/admin/{log}/sth").raise_for_status()

    def entries(self) -> dict[str, list[LogEntry]]:
        """Every entry of every log, read like a monitor: verified STH, then get-entries.

        Faults are cleared first (a log that is "down" refuses reads too).
        """
        self.reset_faults()
        self.publish()
        log_list = self.log_list()

        async def read() -> dict[str, list[LogEntry]]:
            found: dict[str, list[LogEntry]] = {}
            async with new_http_session() as http:
                for log in log_list.logs:
                    client = LogClient(log, http)
                    sth = await client.get_sth()
                    name = log.description.split()[1]
                    found[name] = (
                        [e async for e in client.iter_entries(0, sth.tree_size - 1)]
                        if sth.tree_size
                        else []
                    )
            return found

        return asyncio.run(read())

    def precerts_in_logs(self) -> dict[int, dict[str, bytes]]:
        """serial -> {log: precertificate DER} for every precertificate our CA got logged."""
        issuer_der = self.issuing_certificate.public_bytes(Encoding.DER)
        found: dict[int, dict[str, bytes]] = {}
        for log, entries in self.entries().items():
            for entry in entries:
                if entry.entry_type is not LogEntryType.PRECERT_ENTRY:
                    continue
                assert entry.pre_certificate is not None
                if entry.chain[:1] != (issuer_der,):
                    continue
                serial = x509.load_der_x509_certificate(entry.pre_certificate).serial_number
                found.setdefault(serial, {})[log] = entry.pre_certificate
        return found

    def tree_sizes(self) -> dict[str, int]:
        """Each log's published tree size (faults cleared first, like :meth:`entries`)."""
        self.reset_faults()
        self.publish()
        sizes = {}
        for log in LOGS:
            response = self.admin.get(f"{self.base_url}/{log}/ct/v1/get-sth")
            sizes[log] = int(response.json()["tree_size"])
        return sizes

    # -- issuance ----------------------------------------------------------------------------

    def issuing_ca(
        self,
        ledger: Ledger,
        http: HttpSession,
        *,
        signer: Signer | None = None,
        only_logs: Sequence[str] | None = None,
        log_list: LogList | None = None,
        lint: bool = True,
        deadline: float | None = None,
        lint_pool: LintPool | None = None,
    ) -> IssuingCa:
        """What ``open_issuing_ca`` builds, with the parts a test may swap (signer, logs)."""
        instance = self.instance
        settings = instance.config.issuance
        if log_list is None:
            log_list = (
                instance_log_list(instance) if only_logs is None else self.log_list(only_logs)
            )
        submitter = PolicySubmitter(
            log_list,
            CtPolicy(settings.ct_policy),
            http,
            system_clock,
            deadline=settings.ct_deadline_seconds if deadline is None else deadline,
            stagger=settings.ct_stagger_seconds,
        )
        issuance = replace(issuance_settings(instance), lint=lint)
        return IssuingCa(
            ledger,
            self.issuer_id,
            signer or self.signer,
            issuance,
            submitter,
            system_clock,
            lint_pool=lint_pool,
        )

    def issue(
        self,
        ledger: Ledger,
        request: IssuanceRequest | Sequence[str],
        **options: Any,
    ) -> IssuanceResult:
        """One issuance through the library API (``IssuingCa.issue``)."""
        if not isinstance(request, IssuanceRequest):
            request = request_for(request)

        async def run() -> IssuanceResult:
            async with new_http_session() as http:
                return await self.issuing_ca(ledger, http, **options).issue(request)

        return asyncio.run(run())


def request_for(names: Sequence[str], request_id: str | None = None) -> IssuanceRequest:
    request, _key = requests.request_for_names(names, lifetime_days=90, request_id=request_id)
    return request


def unique_name(label: str) -> str:
    """A fresh DNS name under example.com, so that every test's certificates are its own."""
    return f"{label}-{secrets.token_hex(3)}.example.com"


def _start_logs(directory: Path, root: Path) -> tuple[PreparedServer, threading.Thread]:
    init = init_log_server(
        directory, count=len(LOGS), roots=[root], port=0, passphrase=Secret("issuance tests")
    )
    prepared = PreparedServer(load_log_server_config(init.config))
    thread = threading.Thread(target=prepared.run, name="ctlog-issuance-tests", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not prepared.server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the log server did not start")
        time.sleep(0.01)  # waits on the server's start-up, not on a timer
    return prepared, thread


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The ledger backend; a module that needs only one overrides this fixture."""
    return str(request.param)


@pytest.fixture(scope="module")
def stack(
    backend: str, database_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    database: AbstractContextManager[str] = database_factory(backend)
    with database as url:
        work = tmp_path_factory.mktemp(f"issuance-{backend}")
        ledger_url = "sqlite:///ledger.sqlite3" if backend == "sqlite" else url
        bootstrap.init_instance(work / "ca", new_instance_config(ledger_url=ledger_url))
        prepared, thread = _start_logs(work / "logs", work / "ca" / "certs" / "root-ca.pem")
        admin = httpx.Client(timeout=10)
        try:
            stack = Stack(backend, work / "ca", prepared, thread, admin)
            stack.configure(
                log_list=prepared.log_list_path,
                ct_deadline_seconds=CT_DEADLINE,
                recover_grace_seconds=60,
            )
            yield stack
        finally:
            admin.close()
            prepared.server.should_exit = True
            thread.join(timeout=30)


@pytest.fixture(autouse=True)
def _reset_faults(stack: Stack) -> Iterator[None]:
    yield
    stack.reset_faults()


@pytest.fixture
def ledger(stack: Stack) -> Iterator[Ledger]:
    ledger = stack.open_ledger()
    yield ledger
    ledger.close()


# ------------------------------------------------------------------------------------ checks


def journal(ledger: Ledger, issuer_id: int, serial: int) -> list[str]:
    """The states a serial went through, in journal order."""
    return [
        event.to_state.value
        for event in ledger.events(issuer_id=issuer_id, serial=serial)
        if event.to_state is not None
    ]


def assert_answerable_with_evidence(record: SerialRecord) -> None:
    """Invariant 2, both halves, for one ledger row.

    A serial the status services answer (``good`` or ``revoked``) has a signed precertificate or
    certificate with exactly that serial stored behind it; one they do not answer
    (``unauthorized``) has nothing signed behind it.
    """
    answer = verdict(record.state)
    if answer is Verdict.UNAUTHORIZED:
        assert record.precert_der is None, record
        assert record.cert_der is None, record
        return
    signed = [der for der in (record.precert_der, record.cert_der) if der is not None]
    assert signed, f"serial {record.serial:x} is answered {answer.value} with nothing signed"
    for der in signed:
        assert x509.load_der_x509_certificate(der).serial_number == record.serial


def assert_logged_precerts_answered(stack: Stack, ledger: Ledger) -> dict[int, dict[str, bytes]]:
    """Every precertificate any log holds has a status that is never ``unknown``/unauthorized.

    Returns what the logs hold (serial -> {log: DER}) for further checks.
    """
    logged = stack.precerts_in_logs()
    for serial, by_log in logged.items():
        record = ledger.get(stack.issuer_id, serial)
        assert record is not None, f"serial {serial:x} is in {sorted(by_log)} but not the ledger"
        assert verdict(record.state) is not Verdict.UNAUTHORIZED, (serial, record.state)
        for log, der in by_log.items():
            assert der == record.precert_der, f"{log} holds other bytes for {serial:x}"
    return logged


def assert_every_serial_consistent(stack: Stack, ledger: Ledger) -> list[SerialRecord]:
    records = ledger.serials(issuer_id=stack.issuer_id, limit=100_000)
    for record in records:
        assert_answerable_with_evidence(record)
    return records


def chain_b64(chain: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(der).decode() for der in chain]


GOOD_OR_REVOKED = frozenset(
    state for state in SerialState if verdict(state) is not Verdict.UNAUTHORIZED
)
