"""Run issuance in child processes and kill -9 each one at a chosen point (used by test_crash).

Usage: ``python crash_driver.py PLAN.json``. The plan names an instance, the log server's admin
URL and a list of kill points. The driver imports everything and warms pkilint's validators
once, then for each point sets the logs' faults and forks a child that issues one certificate
through the real ``open_issuing_ca(...).issue(...)`` and sends itself SIGKILL at that point.
Nothing in ctstatus knows about this: the child wraps library functions (a ledger method,
``lint_certificate``, ``sign_certificate``, ``submit_with_policy``, ``LogClient.add_pre_chain``, or
the database COMMIT) so that they kill the process before or after the real call.

Each child's ledger clock runs ``backdate_seconds`` behind (only the ledger's: certificates and
SCT checks use the real time), so the rows it leaves are older than ``recover``'s grace period
and a ``recover`` with the real clock settles them, while live attempts stay untouched.

Output: one JSON object per point on stdout: the point, the serial the child reserved (if any),
and how the child ended (``signal`` 9 is the expected kill).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import event

from ctstatus.ca import issuance, profiles, requests
from ctstatus.ca import service as ca_service
from ctstatus.ca.lint import lint_certificate
from ctstatus.ca.service import open_issuing_ca
from ctstatus.clock import system_clock
from ctstatus.ct import client as ct_client
from ctstatus.ct.sct import issuer_key_hash, sign_sct, tbs_for_ct
from ctstatus.ct.structures import LogEntryType, sct_list_extension
from ctstatus.ct.transport import new_http_session
from ctstatus.instance import Instance
from ctstatus.keys import InProcessSigner, KeyAlgorithm
from ctstatus.keys.assemble import sign_certificate
from ctstatus.ledger import Ledger

LEDGER_WRITES = ("reserve", "mark_precert_signed", "mark_issued", "mark_abandoned", "revoke")


def die() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")  # pragma: no cover


def label(point: str) -> str:
    """The DNS label a point's certificate is issued for (the log-side hook matches on it)."""
    return point.replace("/", "-").replace("_", "-")


def set_faults(admin: str, logs: list[str], faults: dict[str, dict[str, Any]]) -> None:
    for log in logs:
        body = json.dumps(faults.get(log, {})).encode()
        request = urllib.request.Request(  # noqa: S310 -- a loopback URL from the test
            f"{admin}/admin/{log}/faults",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()


def warm_up(instance: Instance) -> None:
    """Build pkilint's validators (precertificate and final) before forking: children are fast."""
    issuer = instance.certificate(instance.config.ca.issuing)
    lint_key = InProcessSigner(KeyAlgorithm.ECDSA_P256.generate())
    builder = profiles.tls_server(
        KeyAlgorithm.ECDSA_P256.generate().public_key(),
        [x509.DNSName("warm-up.example.com")],
        issuer,
        profiles.new_serial(),
        datetime.now(UTC),
        90,
        ocsp_url="http://pki.example.com/ocsp",
        ca_issuers_url="http://pki.example.com/ca/issuing-ca.der",
        crl_url="http://pki.example.com/crl/issuing-ca/0.crl",
    )
    precert = sign_certificate(builder.add_extension(x509.PrecertPoison(), True), lint_key)
    precert_der = precert.public_bytes(Encoding.DER)
    lint_certificate(precert_der)
    sct = sign_sct(
        lint_key,
        LogEntryType.PRECERT_ENTRY,
        int(datetime.now(UTC).timestamp() * 1000),
        (issuer_key_hash(issuer.public_bytes(Encoding.DER)), tbs_for_ct(precert_der)),
    )
    final = sign_certificate(builder.add_extension(sct_list_extension([sct]), False), lint_key)
    lint_certificate(final.public_bytes(Encoding.DER))


def arm(point: str, ledger: Ledger, serial_file: Path) -> None:
    """Make this process die at ``point`` (``target/when``)."""
    target, when = point.split("/")
    committing: list[bool] = []
    event.listen(ledger.engine, "commit", lambda _conn: die() if committing else None)

    for method in LEDGER_WRITES:
        real = getattr(ledger, method)

        def wrapper(*args: Any, _real: Any = real, _method: str = method, **kwargs: Any) -> Any:
            armed = _method == target
            if armed and when == "before":
                die()
            if armed and when == "commit":  # in the transaction, before COMMIT reaches the DB
                committing.append(True)
            result = _real(*args, **kwargs)
            if _method == "reserve":
                serial_file.write_text(f"{result.serial:x}")
            if armed and when == "after":
                die()
            return result

        setattr(ledger, method, wrapper)

    if target == "lint":
        real_lint = issuance.lint_certificate

        def lint(der: bytes) -> Any:
            result = real_lint(der)
            die()
            return result  # pragma: no cover

        issuance.lint_certificate = lint
    elif target in ("sign-precert", "sign-final"):
        real_sign = issuance.sign_certificate
        signed: list[int] = []
        wanted = 1 if target == "sign-precert" else 2

        def sign(builder: Any, signer: Any) -> Any:
            result = real_sign(builder, signer)
            if signer.description != "in-process key":  # the issuing key, not the lint key
                signed.append(1)
                if len(signed) == wanted:
                    die()
            return result

        issuance.sign_certificate = sign  # type: ignore[assignment]
    elif target == "submit":
        real_submit = ca_service.submit_with_policy

        async def submit(*args: Any, **kwargs: Any) -> Any:
            result = await real_submit(*args, **kwargs)
            die()
            return result  # pragma: no cover

        ca_service.submit_with_policy = submit  # type: ignore[assignment]
    elif target == "add_pre_chain":
        real_add = ct_client.LogClient.add_pre_chain

        async def add_pre_chain(self: Any, *args: Any, **kwargs: Any) -> Any:
            if when == "in-flight":  # the requests are on the wire, no answer has come back
                asyncio.get_running_loop().call_later(0.1, die)
            result = await real_add(self, *args, **kwargs)
            if when == "first-sct":
                die()
            return result

        ct_client.LogClient.add_pre_chain = add_pre_chain  # type: ignore[method-assign]
    # "log/committed": the test's log server kills us once a log has committed our entry.


def child(plan: dict[str, Any], point: str) -> NoReturn:
    instance = Instance.open(Path(plan["instance"]))
    backdate = timedelta(seconds=plan["backdate_seconds"])
    ledger = Ledger(instance.ledger_engine(), lambda: system_clock() - backdate)
    work = Path(plan["workdir"])
    (work / "child.pid").write_text(str(os.getpid()))
    arm(point, ledger, work / f"{label(point)}.serial")

    async def run() -> None:
        async with new_http_session() as http:
            # lint in process: the kill points wrap issuance.lint_certificate, and the
            # child must not spend its life spawning a lint worker (test_lint_pool kills one)
            ca = open_issuing_ca(instance, ledger, http, system_clock, lint_workers=0)
            request, _key = requests.request_for_names(
                [f"{label(point)}.{plan['domain']}"], lifetime_days=90
            )
            await ca.issue(request)

    try:
        asyncio.run(run())
    except Exception as exc:
        (work / f"{label(point)}.error").write_text(f"{type(exc).__name__}: {exc}")
        os._exit(2)
    os._exit(0)  # not killed: the test reports it


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    work = Path(plan["workdir"])
    instance = Instance.open(Path(plan["instance"]))
    warm_up(instance)
    for item in plan["points"]:
        point = item["point"]
        set_faults(plan["admin"], plan["logs"], item.get("faults", {}))
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(plan, point)
        _, status = os.waitpid(pid, 0)
        serial_file = work / f"{label(point)}.serial"
        error_file = work / f"{label(point)}.error"
        report = {
            "point": point,
            "serial": serial_file.read_text() if serial_file.exists() else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "error": error_file.read_text() if error_file.exists() else None,
        }
        print(json.dumps(report), flush=True)
    set_faults(plan["admin"], plan["logs"], {})


if __name__ == "__main__":
    main()
