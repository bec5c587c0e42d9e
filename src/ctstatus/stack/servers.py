"""Several uvicorn servers in one asyncio loop, stopped together by the stack's own signals.

uvicorn's ``Server.serve`` installs process signal handlers and re-raises the signal after
shutting down; with several servers in one loop that would race, so the stack owns SIGINT and
SIGTERM and sets ``should_exit`` on every server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any, Literal

import uvicorn

from ctstatus.errors import UserError


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket (port 0: the system picks one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "pick other ports with --port-base (0 lets the system choose)",
        ) from None
    sock.listen(1024)
    return sock


def quiet_server(app: Any, *, lifespan: Literal["auto", "on", "off"] = "on") -> QuietServer:
    from ctstatus.status.server import uvicorn_options

    options = uvicorn_options()
    options.pop("loop", None)
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=15,
        timeout_graceful_shutdown=10,
        **options,
    )
    return QuietServer(config)


async def wait_started(server: uvicorn.Server, task: asyncio.Task[Any], what: str) -> None:
    """Wait until ``server`` accepts connections; fail clearly if it died on the way."""
    while not server.started:
        if task.done():
            task.result()
            raise UserError(f"the {what} did not start (see the messages above)")
        await asyncio.sleep(0.02)
