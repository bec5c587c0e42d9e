"""``ctstatus issue`` and ``ctstatus recover``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from ctstatus.cli.common import console, open_instance

if TYPE_CHECKING:
    from ctstatus.ca.issuance import IssuanceRequest, IssuanceResult
    from ctstatus.instance import Instance


def issue_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="DNS names / IP addresses to certify, with a new P-256 key."),
    ] = None,
    csr: Annotated[
        Path | None, typer.Option(help="Certify the key and names of this CSR (PEM or DER).")
    ] = None,
    lifetime_days: Annotated[
        int | None,
        typer.Option(
            help="Validity in days: 1 up to one day under the BR maximum of today (199 from "
            "2026-03-15, 99 from 2027-03-15, 46 from 2029-03-15). Default: [profiles.tls_server] "
            "lifetime_days, else 90 (46 from 2029-03-15)."
        ),
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option(
            help="The order this is for: a retry with the same id cannot take a second serial "
            "while the first is still live."
        ),
    ] = None,
    key_out: Annotated[
        Path | None,
        typer.Option(help="Where to write the generated key (names mode; default NAME.key.pem)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the certificate chain (PEM) here, not to stdout.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the issuance record.")] = False,
) -> None:
    """Issue a TLS server certificate: precertificate → CT logs → certificate.

    The serial is in the ledger before anything is signed, and the precertificate is stored
    (answered `good`) before it is sent to a log. If the CT policy is not met, or anything else
    fails after that, the precertificate is abandoned and, by default, revoked: it always has a
    status. The error says exactly what each log did.
    """
    import asyncio

    from cryptography.hazmat.primitives import serialization

    from ctstatus.ca import requests
    from ctstatus.errors import UserError
    from ctstatus.keys.files import write_private_file

    instance = open_instance()
    # None lets issuance pick the default for the day it signs; 0 and negatives are refused
    # there with the reason (never silently replaced by the default).
    lifetime = lifetime_days
    key_path: Path | None = None
    if (csr is None) == (not names):
        raise UserError("give either names or --csr FILE", "see `ctstatus issue --help`")
    if csr is not None:
        try:
            data = csr.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {csr}: {exc.strerror or exc}") from None
        request = requests.request_from_csr(data, lifetime_days=lifetime, request_id=request_id)
        key = None
    else:
        assert names is not None
        request, key = requests.request_for_names(
            names, lifetime_days=lifetime, request_id=request_id
        )
        key_path = key_out or Path(f"{names[0].replace('*', '_wildcard')}.key.pem")
        if key_path.exists():
            raise UserError(
                f"{key_path} exists", "choose another --key-out; keys are never overwritten"
            )
    result = asyncio.run(_issue(instance, request))
    if key is not None and key_path is not None:
        write_private_file(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    chain = result.chain_pem(instance.certificate(instance.config.ca.issuing))
    if out is not None:
        out.write_bytes(chain)
    if as_json:
        print(
            json.dumps(
                {
                    "serial": f"{result.serial:x}",
                    "state": "issued",
                    "not_before": result.certificate.not_valid_before_utc.isoformat(),
                    "not_after": result.certificate.not_valid_after_utc.isoformat(),
                    "scts": [
                        {
                            "log": sct.log_name,
                            "operator": sct.operator,
                            "timestamp_ms": sct.sct.timestamp_ms,
                        }
                        for sct in result.scts
                    ],
                    "timings_ms": {k: round(v * 1000, 2) for k, v in result.timings.items()},
                    "key": None if key_path is None else str(key_path),
                    "chain_pem": chain.decode(),
                },
                indent=2,
            )
        )
    elif out is None:
        print(chain.decode(), end="")
    if not as_json:
        logs = ", ".join(f"{s.log_name} ({s.operator})" for s in result.scts)
        console.print(Text(f"issued serial {result.serial:x} with SCTs from {logs}"), style="green")
        if key_path is not None:
            console.print(Text(f"key written to {key_path} (mode 0600)"))


async def _issue(instance: Instance, request: IssuanceRequest) -> IssuanceResult:
    from ctstatus.ca.service import open_issuing_ca
    from ctstatus.clock import system_clock
    from ctstatus.ct.transport import new_http_session

    ledger = instance.open_ledger()
    try:
        async with new_http_session() as http:
            ca = open_issuing_ca(instance, ledger, http, system_clock, lint_workers=0)
            try:
                return await ca.issue(request)
            finally:
                ca.close()
    finally:
        ledger.close()


def recover_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done; change nothing.")
    ] = False,
) -> None:
    """Settle serials a crash left mid-issuance (safe to run any time, and to repeat).

    Rows older than [issuance] recover_grace_seconds: `reserved` ones become `never_signed`
    (their precertificate never left the CA); `precert_signed` ones are abandoned (a log may
    hold the precertificate) and revoked unless [issuance] abandon = "keep".
    """
    from datetime import timedelta

    from ctstatus.ca.issuance import AbandonPolicy
    from ctstatus.ca.recover import recover
    from ctstatus.ca.service import abandon_reason
    from ctstatus.clock import system_clock

    instance = open_instance()
    settings = instance.config.issuance
    ledger = instance.open_ledger()
    try:
        done = recover(
            ledger,
            system_clock,
            policy=AbandonPolicy(settings.abandon),
            reason=abandon_reason(instance),
            grace=timedelta(seconds=settings.recover_grace_seconds),
            dry_run=dry_run,
        )
    finally:
        ledger.close()
    if not done:
        console.print("nothing to recover")
        return
    table = Table("serial", "was", "now" if not dry_run else "would become", "why")
    for item in done:
        table.add_row(f"{item.serial:x}", item.before.value, item.after.value, Text(item.why))
    console.print(table)
