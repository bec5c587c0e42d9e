"""``ctstatus acme …``: the ACME (RFC 8555) front door of the issuing CA."""

from __future__ import annotations

from typing import Annotated

import typer

from ctstatus.cli.common import open_instance

app = typer.Typer(
    help="The ACME server (RFC 8555): certbot, lego and other clients get certificates here.",
    no_args_is_help=True,
)


@app.command("serve")
def serve_command(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: [acme] host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="HTTPS port (default: [acme] port, 14000).", min=0)
    ] = None,
) -> None:
    """Serve ACME over HTTPS until interrupted; state lives in the ledger database.

    Clients start at https://HOST:PORT/directory. Unless [acme] tls_certificate is set, the
    server's certificate comes from a local TLS root made on first start in INSTANCE/acme/
    (acme-tls-root.pem): point the client at it, e.g.

    \b
      REQUESTS_CA_BUNDLE=INSTANCE/acme/acme-tls-root.pem certbot certonly --standalone \\
        --server https://127.0.0.1:14000/directory -d www.example.com
      LEGO_CA_CERTIFICATES=INSTANCE/acme/acme-tls-root.pem lego \\
        --server https://127.0.0.1:14000/directory --email you@example.com \\
        -d www.example.com --http run

    Domain validation connects where [acme.validation] says (docs/acme.md). Several servers
    may share one PostgreSQL ledger: any of them answers any request.
    """
    import asyncio
    import logging
    import signal

    from ctstatus.acme.runner import Running, serve_acme

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    instance = open_instance()
    config = instance.config.acme

    def started(running: Running) -> None:
        typer.echo(f"ctstatus acme: serving {running.directory}")
        typer.echo(f"  clients trust {running.tls.root}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        ledger = instance.open_ledger()
        try:
            await serve_acme(
                instance,
                ledger,
                host=host or config.host,
                port=config.port if port is None else port,
                stop=stop,
                started=started,
            )
        finally:
            ledger.close()

    asyncio.run(main())
