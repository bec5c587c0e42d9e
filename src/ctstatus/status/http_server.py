"""A lean HTTP/1.1 server for the status app: uvloop + httptools, one write per response.

Why not uvicorn: profiled under wrk, uvicorn's own per-request work (an ASGI task per request,
two socket writes per response, header validation, proxy and lifespan plumbing) costs more than
twice what answering an OCSP request from memory does, which caps throughput below what cfssl
(Go) reaches on the same core. This server parses with httptools (llhttp, the parser uvicorn
uses), answers synchronously whatever :meth:`StatusApp.quick` can answer from memory, in the
same loop iteration and with a single write, and awaits only cache misses. ``StatusApp`` stays a
plain ASGI app; ``ctstatus ocsp serve --uvicorn`` runs it under uvicorn instead.

What it enforces, because everything here faces the Internet (DESIGN.md invariant 5):

* request line + headers at most ``max_header_bytes`` (431 or 414 otherwise);
* a body over the app's ``max_request_bytes`` is refused with 413 as soon as its announced
  length, or the bytes received, exceed it -- never read whole;
* a request must arrive complete within ``request_timeout`` of its first byte (slow clients that
  trickle bytes are cut off), an idle keep-alive connection is closed after ``keep_alive``;
* responses to pipelined requests go out in order; at most ``max_pipelined`` requests wait per
  connection (then reading pauses), and reading pauses while the client is not reading;
* malformed HTTP gets 400 and the connection is closed; nothing a client sends raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Final, cast

import httptools

from ctstatus.errors import UserError
from ctstatus.status.app import Request, Response, StatusApp, text_response
from ctstatus.status.responder import INTERNAL_ERROR, Miss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 16_384
    request_timeout: float = 10.0
    keep_alive: float = 15.0
    max_pipelined: int = 32
    reap_interval: float = 1.0
    """How often connections are checked against the two timeouts."""


_STATUS_LINES: Final = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus if s.value >= 200
}


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing; the error reply is already queued."""


class _Clock:
    """The Date header, rendered once a second."""

    def __init__(self) -> None:
        self._second = -1
        self.date = b""

    def date_line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self.date = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.date


Item = tuple[Request | Response, bool]
"""A parsed request (or an error response to send) and whether to keep the connection."""


class Connection(asyncio.Protocol):
    """One client connection: parse, answer in order, enforce the limits."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.app = server.app
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Item] = deque()
        self.busy = False
        self.closed = False
        self.rejecting = False
        self.reading = True
        self.writable = True
        self.request_started: float | None = None
        self.last_activity = time.monotonic()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._header_bytes = 0

    # ---------------------------------------------------------------------------- transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)

    def pause_writing(self) -> None:
        self.writable = False
        self._pause_reading()

    def resume_writing(self) -> None:
        self.writable = True
        self._maybe_resume()

    def data_received(self, data: bytes) -> None:
        if self.rejecting or self.closed:
            return
        self.last_activity = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Reject):
                log.exception("HTTP parser callback failed")
                self._reject(400, "bad request\n")
        except httptools.HttpParserUpgrade:
            self._reject(400, "protocol upgrades are not supported\n")
        except httptools.HttpParserError:
            self._reject(400, "malformed HTTP request\n")
        self._pump()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    # ------------------------------------------------------------------------ parser events

    def on_message_begin(self) -> None:
        self.request_started = time.monotonic()
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if len(self._url) > self.app.max_path_bytes:
            self._reject(414, "request path too long\n")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.limits.max_header_bytes:
            self._reject(431, "request headers too large\n")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        limit = self.app.max_request_bytes
        length = None
        expect = None
        for name, value in self._headers:
            if name == b"content-length":
                length = value
            elif name == b"expect":
                expect = value
        if length is not None:
            if not length.isdigit():
                self._reject(400, "invalid Content-Length\n")
            if int(length) > limit:
                self._reject(413, f"an OCSP request is at most {limit} bytes\n")
        if expect is not None and expect.lower() == b"100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.app.max_request_bytes:
            self._reject(413, f"an OCSP request is at most {self.app.max_request_bytes} bytes\n")
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = self._url
        if url[:1] != b"/":  # absolute-form (a proxy's): keep the path
            scheme_end = url.find(b"://")
            slash = url.find(b"/", scheme_end + 3) if scheme_end >= 0 else -1
            url = url[slash:] if slash >= 0 else b"/"
        query = url.find(b"?")
        path = url if query < 0 else url[:query]
        method = self.parser.get_method().decode("ascii", "replace")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = Request(method, path, self._headers, body)
        self.queue.append((request, self.parser.should_keep_alive()))
        self.request_started = None
        if len(self.queue) > self.limits.max_pipelined:
            self._pause_reading()

    def _reject(self, status: int, text: str) -> None:
        """Answer ``status`` after what is already queued, then close; stop parsing."""
        self.rejecting = True
        self.request_started = None
        self.queue.append((text_response(status, text), False))
        raise _Reject

    # ------------------------------------------------------------------------------ answers

    def _pump(self) -> None:
        """Answer queued requests in order; stop at the first that must wait for the ledger."""
        while self.queue and not self.busy and not self.closed:
            item, keep_alive = self.queue.popleft()
            if not isinstance(item, Request):
                self._write(item, False, False)
                return
            try:
                found = self.app.quick(item)
            except Exception:
                log.exception("unexpected error answering %s %r", item.method, item.path[:200])
                found = (200, INTERNAL_ERROR[1], INTERNAL_ERROR[0])
            if isinstance(found, Miss):
                self.busy = True
                task = asyncio.get_running_loop().create_task(self._slow(item, found, keep_alive))
                self.server.tasks.add(task)
                task.add_done_callback(self.server.tasks.discard)
                return
            self._write(found, keep_alive, item.method == "HEAD")
        self._maybe_resume()

    async def _slow(self, request: Request, miss: Miss, keep_alive: bool) -> None:
        try:
            response = await self.app.resolve(request, miss)
        except Exception:
            log.exception("unexpected error answering %s %r", request.method, request.path[:200])
            response = (200, INTERNAL_ERROR[1], INTERNAL_ERROR[0])
        self.busy = False
        if self.closed:
            return
        self.last_activity = time.monotonic()
        self._write(response, keep_alive, request.method == "HEAD")
        self._pump()

    def _write(self, response: Response, keep_alive: bool, head: bool) -> None:
        if self.closed or self.transport is None:
            return
        status, headers, body = response
        parts = [_STATUS_LINES.get(status) or f"HTTP/1.1 {status} -\r\n".encode()]
        parts.append(self.server.clock.date_line())
        length = False
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
            if name == b"content-length":
                length = True
        if not length and status != 304:
            parts.append(b"content-length: %d\r\n" % len(body))
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if not head and status != 304:
            parts.append(body)
        self.transport.write(b"".join(parts))
        if not keep_alive:
            self.close()

    def _pause_reading(self) -> None:
        if self.reading and self.transport is not None and not self.closed:
            self.reading = False
            self.transport.pause_reading()

    def _maybe_resume(self) -> None:
        if (
            not self.reading
            and self.writable
            and len(self.queue) <= self.limits.max_pipelined // 2
            and self.transport is not None
            and not self.closed
        ):
            self.reading = True
            self.transport.resume_reading()

    def check_timeouts(self, now: float) -> None:
        """Close a connection whose request is too slow, or that has idled too long."""
        if self.request_started is not None:
            if now - self.request_started > self.limits.request_timeout:
                self.close()
        elif not self.busy and not self.queue and now - self.last_activity > self.limits.keep_alive:
            self.close()


class HttpServer:
    """Serves a :class:`StatusApp` and runs its service's background work."""

    def __init__(self, app: StatusApp, limits: Limits = Limits()) -> None:
        self.app = app
        self.limits = limits
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.clock = _Clock()
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def serve(
        self,
        host: str,
        port: int,
        *,
        ready: Callable[[], None] | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        """Start the service, listen (on ``sock`` if given), run until :meth:`stop` or a signal."""
        loop = self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.app.service.start()
        gc.freeze()  # start-up objects (keys, caches, modules) stay out of every GC pass
        # Background threads (ledger reads, signing) hold the GIL for at most 1 ms at a time
        # instead of 5: a request waiting behind them is what the p99 latency measures.
        sys.setswitchinterval(0.001)
        if sock is not None:
            server = await loop.create_server(lambda: Connection(self), sock=sock, backlog=4096)
        else:
            server = await loop.create_server(
                lambda: Connection(self), host, port, backlog=4096, reuse_address=True
            )
        self.port = server.sockets[0].getsockname()[1]
        reaper = loop.create_task(self._reap())
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop)  # fails off the main thread (tests)
        log.info("serving OCSP and CRLs on %s", url_of(server.sockets[0]))
        if ready is not None:
            ready()
        try:
            await self._stop.wait()
        finally:
            server.close()
            reaper.cancel()
            for connection in list(self.connections):
                if not connection.busy:
                    connection.close()
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=5)
            for connection in list(self.connections):
                connection.close()
            await server.wait_closed()
            await self.app.service.stop()

    def stop(self) -> None:
        """Stop serving (from the server's own thread; see :meth:`stop_threadsafe`)."""
        if self._stop is not None:
            self._stop.set()

    def stop_threadsafe(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.stop)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self.limits.reap_interval)
            now = time.monotonic()
            for connection in list(self.connections):
                connection.check_timeouts(now)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port), or a one-line :class:`UserError`.

    Bound before anything else starts, so a taken port is said at once and plainly.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(4096)
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "stop what uses that port, or pick another with --port (--port 0: any free port)",
        ) from None
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(
    app: StatusApp,
    host: str,
    port: int,
    limits: Limits = Limits(),
    *,
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted, on uvloop when it is installed."""
    server = HttpServer(app, limits)
    serving = server.serve(host, port, sock=sock)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the fast path
        asyncio.run(serving)
    else:
        uvloop.run(serving)
