"""``ctstatus ct …``: check the SCTs of a certificate, read CT logs (RFC 6962 and static).

Heavy imports (cryptography, aiohttp, the ct library) happen inside the commands so that
``ctstatus --help`` stays fast. Every network or input problem is one :class:`UserError` line.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from ctstatus.errors import UserError

if TYPE_CHECKING:
    from ctstatus.ct.client import LogClient, LogEndpoint
    from ctstatus.ct.inspect import EmbeddedSctReport

app = typer.Typer(
    help="Certificate Transparency: check a certificate's SCTs, read a log's tree and entries.",
    no_args_is_help=True,
)

T = TypeVar("T")
MAX_ENTRIES = 1000


class PolicyName(enum.StrEnum):
    chrome = "chrome"
    apple = "apple"


LogListOption = Annotated[
    Path | None,
    typer.Option("--log-list", help="A v3 log list (JSON); the log's key is taken from it."),
]
KeyOption = Annotated[
    Path | None,
    typer.Option("--key", help="The log's public key (PEM or DER SubjectPublicKeyInfo)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _certificate_der(path: Path, what: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = _read(path, what)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        x509.load_der_x509_certificate(data)
    except ValueError:
        raise UserError(f"{what} {path} is not a PEM or DER certificate") from None
    return data


def _public_key_der(path: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_der_public_key,
        load_pem_public_key,
    )

    data = _read(path, "key")
    try:
        key = load_pem_public_key(data) if b"-----BEGIN" in data else load_der_public_key(data)
    except (ValueError, TypeError):
        raise UserError(f"{path} is not a PEM or DER public key") from None
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _endpoint(
    url: str, log_list: Path | None, key: Path | None, origin: str | None = None
) -> tuple[LogEndpoint, bool]:
    """The log at ``url``; the bool says whether a key is known (so answers are verified)."""
    from dataclasses import replace

    from ctstatus.ct.client import LogEndpoint
    from ctstatus.ct.loglist import load_log_list

    if log_list is not None and key is not None:
        raise UserError("give --log-list or --key, not both")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"{url!r} is not an http(s) URL")
    wanted = url if url.endswith("/") else url + "/"
    endpoint = LogEndpoint.from_url(wanted)
    if log_list is not None:
        listed = load_log_list(log_list)
        match = next(
            (
                log
                for log in listed.logs
                if wanted in (log.url, log.submission_url, log.monitoring_url)
            ),
            None,
        )
        if match is None:
            raise UserError(
                f"no log with URL {wanted} in {log_list}", "use the URL exactly as the list has it"
            )
        endpoint = LogEndpoint.from_log(match)
        if match.monitoring_url and wanted == match.monitoring_url:
            endpoint = LogEndpoint(
                match.description, match.submission_url or wanted, match.key_der, wanted, match
            )
    elif key is not None:
        endpoint = LogEndpoint.from_url(wanted, _public_key_der(key))
    if origin is not None:
        endpoint = replace(endpoint, checkpoint_origin=origin)
    return endpoint, endpoint.key_der is not None


def _run(endpoint: LogEndpoint, work: Callable[[LogClient], Awaitable[T]]) -> T:
    """Run ``work`` with a client for ``endpoint``; every log failure becomes one clear line."""
    import asyncio

    from ctstatus.ct.client import LogClient
    from ctstatus.ct.transport import LogError, RetryPolicy, new_http_session

    async def main() -> T:
        async with new_http_session() as http:
            retry = RetryPolicy(attempt_timeout=10, deadline=30, max_attempts=3)
            return await work(LogClient(endpoint, http, retry=retry))

    try:
        return asyncio.run(main())
    except LogError as exc:
        raise UserError(str(exc)) from None


@app.command("verify-scts")
def verify_scts(
    cert: Annotated[Path, typer.Argument(help="The certificate (PEM or DER) with embedded SCTs.")],
    issuer: Annotated[Path, typer.Option("--issuer", help="Its issuing CA certificate.")],
    log_list: Annotated[Path, typer.Option("--log-list", help="A v3 log list (JSON).")],
    policy: Annotated[
        PolicyName, typer.Option("--policy", help="Whose CT policy to judge by.")
    ] = PolicyName.chrome,
    as_json: JsonOption = False,
) -> None:
    """Verify each embedded SCT with its log's key, then judge them by a browser CT policy.

    Signatures and policy are reported separately: an old SCT can verify perfectly while its
    log is no longer trusted. Exits 1 if any SCT is invalid or the policy is not met.
    """
    import json
    from datetime import UTC, datetime

    from ctstatus.ct.errors import DecodeError
    from ctstatus.ct.inspect import check_embedded_scts
    from ctstatus.ct.loglist import load_log_list
    from ctstatus.ct.policy import CtPolicy

    certificate_der = _certificate_der(cert, "certificate")
    issuer_der = _certificate_der(issuer, "issuer")
    logs = load_log_list(log_list)
    try:
        report = check_embedded_scts(
            certificate_der, issuer_der, logs, CtPolicy(policy.value), now=datetime.now(UTC)
        )
    except (DecodeError, ValueError) as exc:
        raise UserError(f"{cert}: cannot read its SCT list: {exc}") from None
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_sct_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_sct_report(report: EmbeddedSctReport) -> None:
    from rich.table import Table

    from ctstatus.cli.common import console
    from ctstatus.ct.inspect import iso_ms

    summary = report.certificate
    console.print(f"certificate: {summary.subject}  serial {summary.serial}")
    console.print(f"issuer:      {summary.issuer}")
    if not report.issuer_matches:
        console.print("[yellow]warning: --issuer is not the certificate's issuer[/]")
    if not report.checks:
        console.print("[red]no embedded SCTs[/]")
    table = Table(title=f"{len(report.checks)} embedded SCT(s)", title_justify="left")
    for column in ("log", "operator", "log state", "timestamp", "signature"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        log = check.log
        state = f"{log.state.value} since {log.state_since:%Y-%m-%d}" if log else "-"
        style = "green" if check.valid else "yellow" if check.valid is None else "red"
        table.add_row(
            check.log_name,
            log.operator if log else "-",
            state,
            iso_ms(check.timestamp),
            f"[{style}]{check.verdict}[/]",
        )
    if report.checks:
        console.print(table)
    signatures = "all valid" if report.signatures_ok else "NOT all valid"
    console.print(f"signatures: {signatures}")
    verdict = report.verdict
    met = "[green]met[/]" if verdict.compliant else "[red]NOT met[/]"
    counted = ", ".join(s.log.description for s in verdict.counted) or "none"
    console.print(
        f"policy {verdict.policy.value}: {met} ({len(verdict.counted)} of {verdict.required} "
        f"SCTs count: {counted})"
    )
    for problem in verdict.problems:
        console.print(f"  - {problem}", markup=False)


@app.command("get-sth")
def get_sth(
    url: Annotated[str, typer.Argument(help="The log's URL (the prefix before ct/v1/).")],
    log_list: LogListOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch the log's signed tree head; verify its signature when the log's key is known."""
    import json

    from ctstatus.ct.b64 import b64encode
    from ctstatus.ct.inspect import iso_ms

    endpoint, verifiable = _endpoint(url, log_list, key)
    sth = _run(endpoint, lambda c: c.get_sth() if verifiable else c.get_sth_unverified())
    from datetime import UTC, datetime

    when = iso_ms(datetime.fromtimestamp(sth.timestamp / 1000, UTC))
    status = (
        f"verified with the key of log {b64encode(endpoint.log_id or b'')}"
        if verifiable
        else "UNVERIFIED (no key: pass --log-list or --key)"
    )
    if as_json:
        document = {**sth.to_json(), "log": endpoint.name, "verified": verifiable}
        typer.echo(json.dumps(document, indent=2))
        return
    from ctstatus.cli.common import console

    console.print(f"log:        {endpoint.name}")
    console.print(f"tree size:  {sth.tree_size}")
    console.print(f"timestamp:  {when}")
    console.print(f"root hash:  {b64encode(sth.root_hash)}")
    console.print(f"signature:  {status}", markup=False)


@app.command("entries")
def entries(
    url: Annotated[str, typer.Argument(help="The log's URL (the prefix before ct/v1/).")],
    start: Annotated[int, typer.Argument(help="First entry index.", min=0)],
    end: Annotated[int, typer.Argument(help="Last entry index (inclusive).", min=0)],
    log_list: LogListOption = None,
    key: KeyOption = None,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Prove each entry in a verified STH (needs the key)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List entries START..END: type, serial, issuer, names and validity of each (at most 1000)."""
    import json

    from ctstatus.ct.reader import LogEntry, describe_certificate

    if end < start:
        raise UserError(f"END ({end}) is before START ({start})")
    if end - start + 1 > MAX_ENTRIES:
        raise UserError(f"at most {MAX_ENTRIES} entries at a time", "narrow START..END")
    endpoint, verifiable = _endpoint(url, log_list, key)
    if verify and not verifiable:
        raise UserError("--verify needs the log's key", "pass --log-list or --key")

    async def fetch(c: LogClient) -> list[LogEntry]:
        found = [entry async for entry in c.iter_entries(start, end)]
        if verify:
            sth = await c.get_sth()
            for entry in found:
                await c.verify_entry(entry, sth)
        return found

    found = _run(endpoint, fetch)
    rows = []
    for entry in found:
        kind = (
            entry.entry_type.name.removesuffix("_ENTRY").lower()
            if entry.entry_type is not None
            else "unknown"
        )
        rows.append(
            {
                "index": entry.index,
                "type": kind,
                **describe_certificate(entry.certificate_der).to_json(),
            }
        )
    if as_json:
        typer.echo(
            json.dumps({"log": endpoint.name, "verified": verify, "entries": rows}, indent=2)
        )
        return
    _print_entries(endpoint.name, rows, verify)


def _print_entries(name: str, rows: list[dict[str, object]], verified: bool) -> None:
    from rich.table import Table

    from ctstatus.cli.common import console

    note = "proven in the current STH" if verified else "not verified against an STH"
    table = Table(title=f"{name}: {len(rows)} entries ({note})", title_justify="left")
    for column in ("index", "type", "serial", "issuer", "names", "notBefore", "notAfter"):
        fixed = column in ("index", "type", "notBefore", "notAfter")
        table.add_column(column, overflow="fold", no_wrap=fixed)
    for row in rows:
        names = row["names"]
        assert isinstance(names, list)
        table.add_row(
            str(row["index"]),
            str(row["type"]),
            str(row["serial"] or row["error"] or "-"),
            str(row["issuer"] or "-"),
            ", ".join(map(str, names)) or "-",
            str(row["not_before"] or "-"),
            str(row["not_after"] or "-"),
        )
    console.print(table)


@app.command("checkpoint")
def checkpoint(
    url: Annotated[str, typer.Argument(help="The static-ct-api log's monitoring URL.")],
    log_list: LogListOption = None,
    key: KeyOption = None,
    origin: Annotated[
        str | None,
        typer.Option("--origin", help="The checkpoint origin, if not the URL without scheme."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch a static-ct-api log's checkpoint; verify it when the log's key is known."""
    import json
    from datetime import UTC, datetime

    from ctstatus.ct.b64 import b64encode
    from ctstatus.ct.inspect import iso_ms

    endpoint, verifiable = _endpoint(url, log_list, key, origin)
    if not verifiable:
        raise UserError(
            "a checkpoint can only be checked with the log's key", "pass --log-list or --key"
        )
    note, sth = _run(endpoint, lambda c: c.get_checkpoint())
    if as_json:
        document = {**sth.to_json(), "origin": note.origin, "log": endpoint.name, "verified": True}
        typer.echo(json.dumps(document, indent=2))
        return
    from ctstatus.cli.common import console

    console.print(f"origin:     {note.origin}")
    console.print(f"tree size:  {sth.tree_size}")
    console.print(f"timestamp:  {iso_ms(datetime.fromtimestamp(sth.timestamp / 1000, UTC))}")
    console.print(f"root hash:  {b64encode(sth.root_hash)}")
    console.print("signature:  verified (RFC 6962 note signature)", markup=False)
