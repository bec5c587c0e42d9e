"""Run the status app under uvicorn: httptools and uvloop when installed, loopback by default.

No access log and no Server header on the hot path; keep-alive connections are kept 15 s (OCSP
clients and CDNs reuse them); the HTTP parser's own limits answer oversized headers with 4xx.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import socket
from collections.abc import Generator
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

    _Server = _server_class()
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
    _Server(config).run(sockets=None if sock is None else [sock])


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, but a signal that stopped it is not raised again after the shutdown (which
        would end the process with a KeyboardInterrupt traceback)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            previous = {
                sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server
