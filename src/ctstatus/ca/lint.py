"""pkilint (CA/Browser Forum TLS BR lints) in process, with validators built once per type.

Building a validator takes a large part of pkilint's ~1 s CLI start-up; linting one certificate
with a cached validator takes milliseconds, which makes linting every TBS before signing cheap.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from pkilint import finding_filter, loader
from pkilint.cabf import serverauth
from pkilint.cabf.serverauth import serverauth_constants
from pkilint.pkix import certificate as pkix_certificate
from pkilint.validation import ValidationFindingSeverity

from ctstatus.ca.lint_dispatch import accelerate


@dataclass(frozen=True)
class Finding:
    """One lint finding: severity (FATAL, ERROR, WARNING, NOTICE, INFO), code and context."""

    severity: str
    code: str
    message: str | None
    path: str

    @property
    def is_error(self) -> bool:
        return self.severity in ("FATAL", "ERROR")

    def __str__(self) -> str:
        detail = f": {self.message}" if self.message else ""
        return f"{self.severity} {self.code} at {self.path}{detail}"


@functools.cache
def _validator(certificate_type: Any) -> Any:
    return accelerate(
        pkix_certificate.create_pkix_certificate_validator_container(
            serverauth.create_decoding_validators(),
            serverauth.create_validators(certificate_type),
        )
    )


@functools.cache
def _filters(certificate_type: Any) -> Any:
    return serverauth.create_serverauth_finding_filters(certificate_type)


def lint_certificate(der: bytes) -> tuple[str, list[Finding]]:
    """Lint a DER certificate the way ``lint_cabf_serverauth_cert lint -d`` does.

    Returns the detected certificate type (e.g. ``ROOT_CA``, ``PRECERTIFICATE_DV``) and every
    finding of severity NOTICE or worse.
    """
    document = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "certificate")
    certificate_type = serverauth.determine_certificate_type(document)
    results = _validator(certificate_type).validate(document.root)
    results, _ = finding_filter.filter_results(_filters(certificate_type), results)
    findings = [
        Finding(
            severity=description.finding.severity.name,
            code=description.finding.code,
            message=description.message,
            path=str(result.node.path),
        )
        for result in results
        for description in result.finding_descriptions
        if description.finding.severity <= ValidationFindingSeverity.NOTICE
    ]
    return str(certificate_type.name), findings


def _start_worker(parent: int) -> None:
    """Exit with the CA (even after its kill -9), then build the subscriber validators.

    Ctrl-C goes to the whole process group: the worker ignores it and leaves the shutdown to
    the CA, which ends the pool (a worker's KeyboardInterrupt would only print a traceback).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch_parent, name="lint-parent-watch", daemon=True).start()
    for name in ("DV_PRE_CERTIFICATE", "DV_FINAL_CERTIFICATE"):
        _validator(serverauth_constants.CertificateType[name])


class LintWorkerDied(RuntimeError):
    """A lint worker process ended abruptly (killed, or out of memory) during a lint."""

    def __init__(self) -> None:
        super().__init__(
            "the pkilint worker process died while linting (killed or out of memory); "
            "the next issuance starts a new one"
        )


class LintPool:
    """pkilint in worker processes, so a busy CA lints on other cores than its event loop's.

    Linting is pure CPU (pyasn1 and pkilint under the GIL): in the issuing process it holds the
    event loop for milliseconds per certificate, and SCTs that have arrived wait behind it. A
    worker that dies takes its lint with it (the caller sees the error and the serial is
    settled by the usual paths); the next lint starts a fresh pool.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a lint pool needs at least one worker")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def lint(self, der: bytes) -> tuple[str, list[Finding]]:
        """``lint_certificate(der)`` in a worker; :class:`LintWorkerDied` if a worker died."""
        pool = self._executor()
        try:
            result: tuple[str, list[Finding]] = await asyncio.get_running_loop().run_in_executor(
                pool, lint_certificate, der
            )
            return result
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise LintWorkerDied from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
