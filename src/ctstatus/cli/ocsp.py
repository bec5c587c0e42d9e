"""``ctstatus ocsp …``: the OCSP responder (which also serves the CRLs) and its responses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctstatus.cli.common import console, open_instance

app = typer.Typer(help="The OCSP responder and its pre-signed responses.", no_args_is_help=True)


@app.command("serve")
def serve_command(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: [ocsp] host, loopback).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port (default: [ocsp] port); 0 picks a free one (the URL is logged)."),
    ] = None,
    publish: Annotated[
        bool | None,
        typer.Option(
            "--publish-crls/--no-publish-crls",
            help="Publish CRLs from this process (default: [crl] publish).",
        ),
    ] = None,
    use_uvicorn: Annotated[
        bool,
        typer.Option("--uvicorn", help="Serve the ASGI app with uvicorn instead (slower)."),
    ] = False,
) -> None:
    """Serve OCSP (GET and POST) and the CRLs over HTTP, answering only from the ledger.

    Also keeps the pre-signed responses current and, unless disabled, publishes the CRLs.
    Several of these may share one PostgreSQL ledger (docs/deployment.md).
    """
    import logging

    from ctstatus.status import http_server, server, wiring

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    instance = open_instance()
    listen = (
        host or instance.config.ocsp.host,
        instance.config.ocsp.port if port is None else port,
    )
    sock = http_server.bind(*listen)  # a taken port is a one-line error before anything starts
    try:
        wired = wiring.build(instance, publish=publish)
        try:
            if use_uvicorn:
                logging.getLogger(__name__).info(
                    "serving OCSP and CRLs on %s", http_server.url_of(sock)
                )
                server.serve(wired.app, *listen, sock=sock)
            else:
                http_server.run(wired.app, *listen, sock=sock)
        finally:
            wired.close()
    finally:
        sock.close()


@app.command("refresh")
def refresh_command() -> None:
    """Sign every missing, outdated or due response now (what the server does in the background)."""
    import asyncio

    from ctstatus.status import wiring

    wired = wiring.build(open_instance(), publish=False)
    try:
        wired.service.prepare()
        signed = asyncio.run(wired.service.sweep_all())
    finally:
        wired.service.identities.close()
        wired.close()
    console.print(f"signed {signed} OCSP responses")


@app.command("export")
def export_command(
    directory: Annotated[Path, typer.Argument(help="Where to write the responses.")],
    get_paths: Annotated[
        bool,
        typer.Option(
            "--get-paths", help="Also write DIR/get/<base64 request> files for nginx try_files."
        ),
    ] = False,
) -> None:
    """Write every current response as DIR/<issuer-key-hash>/<serial> for a CDN or nginx.

    Signs what is missing or due first (if this process can open the signing key).
    """
    import asyncio

    from ctstatus.status import wiring
    from ctstatus.status.db import load_issuers
    from ctstatus.status.export import export_responses

    wired = wiring.build(open_instance(), publish=False)
    try:
        wired.service.prepare()
        asyncio.run(wired.service.sweep_all())
        report = export_responses(
            wired.engine,
            load_issuers(wired.engine),
            directory,
            now=wired.service.clock(),
            presigner=wired.service.presigner,
            get_paths=get_paths,
        )
    finally:
        wired.service.identities.close()
        wired.close()
    console.print(
        f"wrote {report.written} responses ({report.resigned} re-signed), "
        f"skipped {report.skipped}, removed {report.removed} stale files in {directory}"
    )


@app.command("issue-responder")
def issue_responder_command(
    force: Annotated[
        bool, typer.Option(help="Issue a new certificate even if the current one is not due.")
    ] = False,
) -> None:
    """Issue a delegated OCSP responder certificate (BR §7.1.2.8) if rotation is due.

    Needs the issuing CA's key. Responders pick the new certificate up within minutes.
    """
    from datetime import timedelta

    from ctstatus.clock import system_clock
    from ctstatus.status import wiring
    from ctstatus.status.delegated import issue_responder, rotation_due, scan, usable

    instance = open_instance()
    config = instance.config
    ca = config.ca.issuing
    issuer_cert = instance.certificate(ca)
    directory = wiring.responders_directory(instance, ca.name)
    now = system_clock()
    found = (
        [r for r in scan(directory, issuer_cert) if usable(r, now)] if directory.exists() else []
    )
    current = found[0] if found else None
    if not force and not rotation_due(current, now, timedelta(hours=config.ocsp.validity_hours)):
        assert current is not None
        console.print(f"the current responder certificate is valid until {current.not_after}")
        return
    signer = instance.signer(ca)
    try:
        issued = issue_responder(
            issuer_cert,
            signer,
            wiring.responder_keys(instance),
            directory,
            now=now,
            lifetime=timedelta(days=config.ocsp.responder_lifetime_days),
        )
    finally:
        signer.close()
    console.print(f"issued {issued.stem}.cert.pem, valid {issued.not_before} → {issued.not_after}")
    if config.ocsp.signer != "delegated":
        console.print('note: [ocsp] signer is "ca"; set it to "delegated" to sign with it')
