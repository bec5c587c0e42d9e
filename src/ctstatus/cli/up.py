"""``ctstatus up``: the whole system on one machine, in one process (docs/deployment.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def up_command(
    state: Annotated[
        Path,
        typer.Option(
            "--state",
            "-s",
            envvar="CTSTATUS_STATE",
            help="State directory (CA instance, logs, watcher); created on first start.",
        ),
    ] = Path("ctstatus-state"),
    port_base: Annotated[
        int,
        typer.Option(
            help="Dashboard+API on PORT, OCSP/CRLs on PORT+1, CT logs on PORT+2; "
            "0 lets the system choose (see STATE/urls.json).",
            min=0,
            max=65533,
        ),
    ] = 8900,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Also issue a certificate every few seconds, every 4th with two CT logs "
            "refusing (the abandon path, visible on the dashboard within a minute).",
        ),
    ] = False,
    demo_interval: Annotated[
        float, typer.Option(help="Seconds between demo issuances.", min=0.2)
    ] = 2.0,
    recover_seconds: Annotated[
        float,
        typer.Option(
            help="Seconds between runs of recover (serials a crash left mid-issuance, once "
            "older than [issuance] recover_grace_seconds).",
            min=1,
        ),
    ] = 60.0,
    reconcile_seconds: Annotated[
        float,
        typer.Option(
            help="Seconds between reconcile --fix runs (orphan precertificates seen in CT).",
            min=1,
        ),
    ] = 300.0,
) -> None:
    """Run the CA, three CT logs, OCSP/CRLs, the issuance API, the watcher and the dashboard.

    Everything listens on 127.0.0.1. Ctrl-C or SIGTERM stops cleanly; a restart resumes.
    """
    import asyncio
    import logging

    from ctstatus.stack.run import UpOptions, run_stack

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = UpOptions(
        state=state,
        port_base=port_base,
        demo=demo,
        demo_interval=demo_interval,
        recover_seconds=recover_seconds,
        reconcile_seconds=reconcile_seconds,
    )
    asyncio.run(run_stack(options, say=lambda line: print(line, flush=True)))
