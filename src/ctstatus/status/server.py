"""Run the status app under uvicorn: httptools and uvloop when installed, loopback by default.

No access log and no Server header on the hot path; keep-alive connections are kept 15 s (OCSP
clients and CDNs reuse them); the HTTP parser's own limits answer oversized headers with 4xx.
"""

from __future__ import annotations

import importlib.util
import socket
from typing import Any

from ctstatus.status.app import StatusApp


def uvicorn_options() -> dict[str, Any]:
    """The fastest protocol and loop implementations available."""
    return {
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    }


def serve(
    app: StatusApp,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down cleanly through the lifespan)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=15,
        backlog=4096,
        log_level=log_level,
        **uvicorn_options(),
    )
    uvicorn.Server(config).run(sockets=None if sock is None else [sock])
