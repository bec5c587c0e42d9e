"""``ctstatus crl …``: CRL URLs for CCADB, and publishing."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ctstatus.cli.common import console, open_instance

app = typer.Typer(help="Certificate revocation lists.", no_args_is_help=True)


@app.command("urls")
def urls_command(
    issuer: Annotated[
        str | None,
        typer.Option(help="The CA whose CRL URLs to list (default: the issuing CA)."),
    ] = None,
) -> None:
    """Print the JSON array of the CA's CRL URLs, as CCADB asks CAs to disclose them.

    Every shard URL (or the one full-CRL URL), exactly as certificates name it.
    """
    from ctstatus.status.db import load_issuers
    from ctstatus.status.wiring import crl_targets

    instance = open_instance()
    name = issuer or instance.config.ca.issuing.name
    engine = instance.ledger_engine()
    try:
        issuers = [i for i in load_issuers(engine) if i.name == name]
        if not issuers:
            from ctstatus.errors import UserError

            raise UserError(f"no issuer {name!r} in the ledger", "see `ctstatus ledger status`")
        targets = crl_targets(instance.config, engine, issuers)
    finally:
        engine.dispose()
    print(json.dumps([t.url for t in targets]))


@app.command("publish")
def publish_command(
    force: Annotated[bool, typer.Option(help="Publish every CRL, even if none is due.")] = False,
) -> None:
    """Publish every CRL that is due (one pass of what `ocsp serve` does continuously)."""
    from ctstatus.status import wiring

    instance = open_instance()
    wired = wiring.build(instance, publish=True)
    try:
        assert wired.service.publisher is not None
        published = wired.service.publisher.publish_due(wired.service.clock(), force=force)
    finally:
        wired.service.identities.close()
        wired.close()
    for item in published:
        console.print(
            f"{item.target.url}: number {item.crl.crl_number}, {item.crl.entries} entries "
            f"({item.reason})"
        )
    if not published:
        console.print("no CRL was due")
