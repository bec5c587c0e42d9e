"""Run the ACME server over HTTPS in the current event loop (``ctstatus acme serve``, ``up``)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from ctstatus.acme.service import build_server, tls_files
from ctstatus.acme.tlscert import TlsFiles
from ctstatus.acme.validation import ValidationSettings
from ctstatus.clock import Clock, system_clock
from ctstatus.instance import Instance
from ctstatus.ledger import Ledger

log = logging.getLogger("ctstatus.acme")


@dataclass(frozen=True)
class Running:
    """Where a started ACME server is: its directory URL and the TLS root clients trust."""

    directory: str
    port: int
    tls: TlsFiles


class _Server(uvicorn.Server):
    """Leaves the process's signal handlers to whoever runs the loop."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return

    def capture_signals(self):  # type: ignore[no-untyped-def]  # uvicorn >= 0.29
        import contextlib

        return contextlib.nullcontext()


async def serve_acme(
    instance: Instance,
    ledger: Ledger,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    started: Callable[[Running], None] = lambda running: None,
    clock: Clock = system_clock,
    validation: ValidationSettings | None = None,
    issue: object = None,
) -> None:
    """Serve until ``stop`` is set. ``issue`` overrides the CA (default: the instance's)."""
    from ctstatus.ca.service import open_issuing_ca
    from ctstatus.ct.transport import new_http_session
    from ctstatus.status.server import uvicorn_options

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    bound = sock.getsockname()[1]
    http = new_http_session()
    ca = None
    try:
        files = tls_files(instance)
        ca = open_issuing_ca(instance, ledger, http, clock) if issue is None else None
        acme = build_server(
            instance,
            ledger,
            ca.issue if ca is not None else issue,  # type: ignore[arg-type]
            port=bound,
            clock=clock,
            validation=validation,
        )
        options = uvicorn_options()
        options.pop("loop", None)
        config = uvicorn.Config(
            acme.app(),
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
            timeout_keep_alive=15,
            ssl_certfile=str(files.certificate),
            ssl_keyfile=str(files.key),
            **options,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the ACME server did not start")
            await asyncio.sleep(0.02)
        started(Running(acme.url("/directory"), bound, files))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        waiter.cancel()
        await task
    finally:
        if ca is not None:
            ca.close()
        await http.close()
        sock.close()
