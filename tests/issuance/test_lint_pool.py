"""Lint in worker processes: same findings as in process, and a dead worker loses nothing.

A worker that dies while linting a precertificate's TBS fails that issuance before any real
signature (the serial is ``never_signed``); the next issuance starts a fresh pool.
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ca.issuance import IssuanceError, IssuanceResult
from ctstatus.ca.lint import LintPool, lint_certificate
from ctstatus.ct.transport import new_http_session
from ctstatus.ledger import Ledger, SerialState
from ctstatus.status.answer import Verdict, verdict

from .conftest import Stack, journal, request_for, unique_name


def test_a_pool_lints_exactly_like_the_process(stack: Stack, ledger: Ledger) -> None:
    pool = LintPool(1)
    try:
        result = _issue(stack, ledger, pool, "pool-same")
        for certificate in (result.precertificate, result.certificate):
            der = certificate.public_bytes(Encoding.DER)
            assert asyncio.run(pool.lint(der)) == lint_certificate(der)
    finally:
        pool.close()
    record = ledger.get(stack.issuer_id, result.serial)
    assert record is not None
    assert record.state is SerialState.ISSUED


def test_a_dead_worker_fails_one_issuance_before_signing_and_the_next_one_works(
    stack: Stack, ledger: Ledger
) -> None:
    pool = LintPool(1)
    try:
        _issue(stack, ledger, pool, "pool-warm")
        _kill_a_worker(pool)
        with pytest.raises(IssuanceError) as caught:
            _issue(stack, ledger, pool, "pool-dead")
        serial = caught.value.serial
        assert serial is not None
        assert "nothing left the CA" in caught.value.message
        record = ledger.get(stack.issuer_id, serial)
        assert record is not None
        assert record.state is SerialState.NEVER_SIGNED
        assert record.precert_der is None
        assert verdict(record.state) is Verdict.UNAUTHORIZED
        assert journal(ledger, stack.issuer_id, serial) == ["reserved", "never_signed"]
        assert serial not in stack.precerts_in_logs()

        after = _issue(stack, ledger, pool, "pool-again")
        record = ledger.get(stack.issuer_id, after.serial)
        assert record is not None
        assert record.state is SerialState.ISSUED
    finally:
        pool.close()


def _kill_a_worker(pool: LintPool) -> None:
    """Make one worker exit abruptly; the executor then counts itself broken."""
    future = pool._executor().submit(os._exit, 3)
    with pytest.raises(BrokenProcessPool):
        future.result(timeout=60)


def _issue(stack: Stack, ledger: Ledger, pool: LintPool, label: str) -> IssuanceResult:
    async def run() -> IssuanceResult:
        async with new_http_session() as http:
            ca = stack.issuing_ca(ledger, http, lint_pool=pool)
            return await ca.issue(request_for([unique_name(label)]))

    return asyncio.run(run())


_ORPHAN_SCRIPT = """
import asyncio, os, sys
from ctstatus.ca.lint import LintPool

async def main() -> None:
    pool = LintPool(1)
    await pool.lint(bytes.fromhex(sys.argv[1]))
    print(*pool._pool._processes, flush=True)
    await asyncio.Event().wait()

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_workers_exit_when_the_ca_is_killed(stack: Stack, tmp_path: Path) -> None:
    """kill -9 of the issuing process leaves no lint worker behind."""
    script = tmp_path / "ca.py"
    script.write_text(_ORPHAN_SCRIPT)
    der = stack.instance.certificate(stack.instance.config.ca.issuing).public_bytes(Encoding.DER)
    ca = subprocess.Popen(
        [sys.executable, str(script), der.hex()], stdout=subprocess.PIPE, text=True
    )
    try:
        assert ca.stdout is not None
        workers = [int(pid) for pid in ca.stdout.readline().split()]
        assert workers
        watchers = [os.pidfd_open(pid) for pid in workers]
    finally:
        ca.kill()
        ca.wait()
    for watcher in watchers:
        readable, _, _ = select.select([watcher], [], [], 30)  # readable once the worker exits
        os.close(watcher)
        assert readable, "a lint worker outlived the killed CA process"
