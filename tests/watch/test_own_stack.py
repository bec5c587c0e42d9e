"""Our own stack, watched from outside: a real instance issuing through three real CT logs, its
OCSP responder and CRLs served over HTTP. A correct CA gives zero problems; a precertificate
that reaches a log without a ledger row (the incident) is an orphan that ``reconcile --fix``
settles through the ledger's own API."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.instance import Instance
from ctstatus.ledger import RevocationReason, SerialState
from ctstatus.watch.config import WatchConfig
from ctstatus.watch.reconcile import reconcile
from ctstatus.watch.runner import Watcher

from .conftest import Logs, Served, free_port, serve_app, start_logs, stop_logs

CTSTATUS = Path(sys.executable).parent / "ctstatus"


@dataclass
class OwnStack:
    directory: Path
    logs: Logs
    status: Served
    work: Path
    port: int

    def issue(self, name: str) -> int:
        out = self.work / f"{name}.pem"
        result = subprocess.run(
            [
                CTSTATUS,
                "-i",
                self.directory,
                "issue",
                name,
                "--out",
                out,
                "--key-out",
                self.work / f"{name}.key",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return x509.load_pem_x509_certificates(out.read_bytes())[0].serial_number


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    from ctstatus.ca.bootstrap import init_instance
    from ctstatus.config import new_instance_config
    from ctstatus.status import wiring

    work = tmp_path_factory.mktemp("own-stack")
    port = free_port()
    config = new_instance_config(
        ledger_url="sqlite:///ledger.sqlite3",
        log_list=work / "logs" / "loglist.json",
    )
    directory = init_instance(work / "ca", config).directory
    instance = Instance.open(directory)
    root = instance.certificate(instance.config.ca.root)
    logs = start_logs(work / "logs", [root], count=3)
    wired = wiring.build(instance)
    status = serve_app(wired.app, port, lifespan="on")
    yield OwnStack(directory, logs, status, work, port)
    status.stop()
    wired.close()
    stop_logs(logs)


def watcher_for(stack: OwnStack, *, start: str = "beginning", db: str = "watch.db") -> Watcher:
    instance = Instance.open(stack.directory)
    issuing = instance.path(instance.config.ca.issuing.certificate)
    config = WatchConfig(
        database=f"sqlite:///{stack.work / db}",
        log_list=str(stack.logs.log_list),
        start=start,
        issuers=[issuing],
        own_issuers=[issuing],
        grace_seconds=900,
        timeout_seconds=5,
        alerts={"stdout": False},
        resolve={"pki.example.com": f"127.0.0.1:{stack.port}"},
    )
    return Watcher(config, stack.work)


def test_a_correct_ca_has_no_problems(stack: OwnStack) -> None:
    serials = {stack.issue(f"watch-{i}.example.com") for i in range(2)}
    for log in ("alpha", "bravo", "charlie"):
        stack.logs.publish(log)
    watcher = watcher_for(stack)
    try:
        result = asyncio.run(watcher.run_once())
        assert all(f.findings == [] for f in result.follow)
        assert result.checks.checked == len(serials)  # precert + final paired, across 3 logs
        assert watcher.store.problems() == []
    finally:
        watcher.close()


def signed_precertificate(instance: Instance, name: str) -> tuple[int, bytes]:
    """A precertificate of the issuing CA that no issuance recorded: what the incident left."""
    from ctstatus.ca import profiles
    from ctstatus.keys.assemble import sign_certificate

    ca = instance.config.ca.issuing
    signer = instance.signer(ca)
    serial = profiles.new_serial()
    builder = profiles.tls_server(
        signer.public_key(),
        [x509.DNSName(name)],
        instance.certificate(ca),
        serial,
        datetime.now(UTC) - timedelta(minutes=1),
        90,
        ocsp_url=instance.config.urls.ocsp_url(ca.name),
        ca_issuers_url=instance.config.urls.ca_issuers_url(ca.name),
        crl_url=instance.config.urls.crl_url(ca.name, serial % 4),
    ).add_extension(x509.PrecertPoison(), critical=True)
    return serial, sign_certificate(builder, signer).public_bytes(Encoding.DER)


def test_an_orphan_precertificate_is_found_and_fixed(stack: OwnStack) -> None:
    instance = Instance.open(stack.directory)
    ca = instance.config.ca.issuing
    issuing = instance.certificate(ca)
    serial, precert = signed_precertificate(instance, "orphan.example.com")
    stack.logs.submit("alpha", [precert, issuing.public_bytes(Encoding.DER)])
    stack.logs.publish("alpha")

    watcher = watcher_for(stack)
    ledger = instance.open_ledger()
    try:
        asyncio.run(watcher.run_once())
        issuer = ledger.issuer_by_name(ca.name)
        assert issuer is not None
        assert ledger.get(issuer.id, serial) is None
        options = {
            "mmd": timedelta(days=1),
            "crl_shards": 4,
            "abandon": "revoke",
            "reason": RevocationReason.UNSPECIFIED,
        }
        found = reconcile(ledger, watcher.store, datetime.now(UTC), **options)  # type: ignore[arg-type]
        assert found.orphans == [(ca.name, format(serial, "x"))]
        # The watcher saw the incident itself: our responder has no record of the serial.
        assert {p.code for p in watcher.store.problems(open_only=True)} == {
            "reconcile.orphan",
            "ocsp.unauthorized",
        }
        fixed = reconcile(ledger, watcher.store, datetime.now(UTC), fix=True, **options)  # type: ignore[arg-type]
        assert fixed.fixed == found.orphans
        record = ledger.get(issuer.id, serial)
        assert record is not None
        assert record.state is SerialState.REVOKED
        assert record.precert_der == precert
        actions = [e.action for e in ledger.events(issuer_id=issuer.id) if e.serial == serial]
        assert actors_are_reconcile(ledger, issuer.id, serial)
        assert len(actions) == 4
        again = reconcile(ledger, watcher.store, datetime.now(UTC), **options)  # type: ignore[arg-type]
        assert again.orphans == []
        # The responder follows the ledger: a recheck now finds the serial revoked, not unknown.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with watcher.store.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE watch_certs SET due_at = 0")
            asyncio.run(watcher.run_once())  # real work: the responder picks the change up
            if not watcher.store.problems(open_only=True):
                break
        assert watcher.store.problems(open_only=True) == []
    finally:
        ledger.close()
        watcher.close()


def actors_are_reconcile(ledger: object, issuer_id: int, serial: int) -> bool:
    events = [e for e in ledger.events(issuer_id=issuer_id) if e.serial == serial]  # type: ignore[attr-defined]
    return all(e.actor == "watch:reconcile" for e in events)


def test_the_daemon_reconciles_on_its_schedule(stack: OwnStack) -> None:
    """``[reconcile]`` with ``fix``: the orphan is imported and revoked by the watcher's own
    schedule (injected clock), and the next run waits for ``interval_seconds``."""
    from ctstatus.clock import FrozenClock

    instance = Instance.open(stack.directory)
    ca = instance.config.ca.issuing
    serial, precert = _orphan(instance, stack)
    issuing = instance.path(ca.certificate)
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2))
    config = WatchConfig.model_validate(
        {
            "database": f"sqlite:///{stack.work / 'watch-scheduled.db'}",
            "log_list": str(stack.logs.log_list),
            "start": "beginning",
            "issuers": [str(issuing)],
            "own_issuers": [str(issuing)],
            "timeout_seconds": 5,
            "alerts": {"stdout": False},
            "resolve": {"pki.example.com": f"127.0.0.1:{stack.port}"},
            "reconcile": {"instance": str(stack.directory), "fix": True, "interval_seconds": 300},
        }
    )
    watcher = Watcher(config, stack.work, clock=clock)
    ledger = instance.open_ledger()
    try:
        first = asyncio.run(watcher.run_once())
        assert first.reconciled is not None
        assert (ca.name, format(serial, "x")) in first.reconciled.fixed
        issuer = ledger.issuer_by_name(ca.name)
        assert issuer is not None
        record = ledger.get(issuer.id, serial)
        assert record is not None
        assert record.state is SerialState.REVOKED
        assert record.precert_der == precert
        clock.advance(seconds=299)
        assert asyncio.run(watcher.run_once()).reconciled is None  # not due yet
        clock.advance(seconds=1)
        again = asyncio.run(watcher.run_once()).reconciled
        assert again is not None
        assert again.orphans == []
    finally:
        ledger.close()
        watcher.close()


def test_up_maintenance_recovers_and_reconciles(stack: OwnStack) -> None:
    """``ctstatus up``'s housekeeping on an injected clock: a serial a crash left reserved is
    settled once older than the grace, an orphan in CT is imported and revoked."""
    from ctstatus.clock import FrozenClock
    from ctstatus.stack.maintenance import Maintenance

    instance = Instance.open(stack.directory)
    ca = instance.config.ca.issuing
    serial, _ = _orphan(instance, stack)
    watcher = watcher_for(stack)  # its own index, to find the orphan in
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    ledger = instance.open_ledger(clock)
    try:
        asyncio.run(watcher.run_once())
        issuer = ledger.issuer_by_name(ca.name)
        assert issuer is not None
        from ctstatus.ca import profiles

        crashed = profiles.new_serial()
        ledger.reserve(
            issuer.id,
            crashed,
            not_before=clock(),
            not_after=clock() + timedelta(days=90),
            crl_shard=crashed % 4,
            actor="test: an attempt that died",
        )
        maintenance = Maintenance(
            instance, ledger, watcher.store, clock, recover_seconds=60, reconcile_seconds=300
        )
        first = maintenance.tick()
        assert first.errors == []
        assert first.recovered == []  # younger than recover_grace_seconds: maybe still running
        assert first.reconciled is not None
        assert (ca.name, format(serial, "x")) in first.reconciled.fixed
        clock.advance(seconds=instance.config.issuance.recover_grace_seconds + 1)
        second = maintenance.tick()
        assert second.recovered is not None
        assert [(r.serial, r.after) for r in second.recovered] == [
            (crashed, SerialState.NEVER_SIGNED)
        ]
        record = ledger.get(issuer.id, crashed)
        assert record is not None
        assert record.state is SerialState.NEVER_SIGNED
        assert second.reconciled is not None  # 601 s after the first: due again
        assert second.reconciled.orphans == []
        assert maintenance.tick().recovered is None  # not due again yet
    finally:
        ledger.close()
        watcher.close()


def _orphan(instance: Instance, stack: OwnStack) -> tuple[int, bytes]:
    """A precertificate of our issuing CA in log alpha, with no ledger row (the incident)."""
    serial, precert = signed_precertificate(instance, f"orphan-{secrets.token_hex(3)}.example.com")
    issuing = instance.certificate(instance.config.ca.issuing)
    stack.logs.submit("alpha", [precert, issuing.public_bytes(Encoding.DER)])
    stack.logs.publish("alpha")
    return serial, precert


def test_unlogged_is_judged_only_after_where_following_began(stack: OwnStack) -> None:
    """A ledger precertificate in no followed log is ``reconcile.unlogged``, unless a log was
    started mid-log (``start = "end"``) after it was made: it may be in the prefix never read."""
    from ctstatus.clock import FrozenClock
    from ctstatus.watch.reconcile import _import

    instance = Instance.open(stack.directory)
    ca = instance.config.ca.issuing
    now = datetime.now(UTC)
    # Two precertificates no log received, recorded an hour before and an hour after now.
    before = instance.open_ledger(FrozenClock(now - timedelta(hours=1)))
    after = instance.open_ledger(FrozenClock(now + timedelta(hours=1)))
    issuer = before.issuer_by_name(ca.name)
    assert issuer is not None
    options = {
        "mmd": timedelta(hours=1),
        "crl_shards": 4,
        "abandon": "revoke",
        "reason": RevocationReason.UNSPECIFIED,
    }
    logged = stack.issue("logged-before-start.example.com")
    for log in ("alpha", "bravo", "charlie"):
        stack.logs.publish(log)
    early, early_der = signed_precertificate(instance, "early-unlogged.example.com")
    _import(before, issuer.id, early, early_der, 4, "revoke", RevocationReason.UNSPECIFIED)
    late, late_der = signed_precertificate(instance, "late-unlogged.example.com")
    _import(after, issuer.id, late, late_der, 4, "revoke", RevocationReason.UNSPECIFIED)
    at_end = watcher_for(stack, start="end", db="watch-end.db")
    beginning = watcher_for(stack, start="beginning", db="watch-beginning.db")
    try:
        asyncio.run(at_end.run_once())
        asyncio.run(beginning.run_once())
        unread_ms = at_end.store.unread_until_ms()
        assert unread_ms is not None
        assert (now - timedelta(hours=1)).timestamp() * 1000 < unread_ms
        assert unread_ms < (now + timedelta(hours=1)).timestamp() * 1000
        assert beginning.store.unread_until_ms() is None
        later = now + timedelta(days=1)  # every precertificate is past the MMD

        whole = reconcile(before, beginning.store, later, **options)  # type: ignore[arg-type]
        unlogged = {serial for _, serial in whole.unlogged}
        assert {format(early, "x"), format(late, "x")} <= unlogged
        assert format(logged, "x") not in unlogged

        partial = reconcile(before, at_end.store, later, **options)  # type: ignore[arg-type]
        unlogged = {serial for _, serial in partial.unlogged}
        assert format(late, "x") in unlogged
        assert format(early, "x") not in unlogged  # perhaps in the prefix never read
        assert format(logged, "x") not in unlogged  # in the prefix the watcher never read
    finally:
        before.close()
        after.close()
        at_end.close()
        beginning.close()
