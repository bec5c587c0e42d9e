"""A small HTTP/1.1 keep-alive client for plain-http status URLs (OCSP and CRLs are http:// by
BR rule), because status checks are many tiny requests.

httpx costs ~1.5 ms of CPU per request here and slows down as its pool grows (measured in
bench/watch.py: 675 requests/s sequential, 200/s with 32 in flight, against a responder that
serves 18,000/s to wrk); this does the same exchange in a fraction of that. It speaks only what
a status fetch needs: one request per connection at a time, Content-Length, chunked or
read-to-close bodies, every read bounded in size and time. https:// goes through httpx.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from dataclasses import dataclass, field

from ctstatus.ct.transport import resolve_override

MAX_HEADER_BYTES = 64 * 1024


class LeanHttpError(Exception):
    """The server's answer is not HTTP/1.x we can read (a malformed or truncated response)."""


@dataclass
class LeanResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class _Origin:
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)


class TooLarge(LeanHttpError):
    pass


@dataclass(frozen=True)
class _Route:
    connect: tuple[str, int]
    host_line: str


# "http://" + a netloc of host characters (no userinfo, no percent-encoding) + a path of
# printable ASCII without a fragment: split the same way by urlsplit, whose target is the path
# and query as they stand.
_PLAIN = re.compile(r"http://([A-Za-z0-9.:\[\]-]+)(/[!\"$-~]*)")


def split_url(url: str) -> tuple[str, int, str]:
    """(host, port, request target) of a plain-http URL, by :func:`urllib.parse.urlsplit`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"LeanHttp speaks plain http only: {url}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


class LeanHttp:
    """Connections per ``host:port`` are reused; ``resolve`` maps host[:port] to host:port."""

    def __init__(self, resolve: dict[str, str] | None = None, max_idle: int = 64) -> None:
        self.resolve = resolve or {}
        self.max_idle = max_idle
        self._origins: dict[tuple[str, int], _Origin] = {}
        self._routes: dict[str, _Route] = {}

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int,
    ) -> LeanResponse:
        """One exchange (the caller bounds the time with ``asyncio.timeout``)."""
        route, path = self._route(url)
        lines = [f"{method} {path} HTTP/1.1", route.host_line]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if content is not None or method == "POST":
            lines.append(f"Content-Length: {len(content or b'')}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (content or b"")
        connect_host, connect_port = route.connect
        origin = self._origins.setdefault((connect_host, connect_port), _Origin())
        while origin.idle:
            reader, writer = origin.idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            try:
                return await self._exchange(origin, reader, writer, request, method, max_bytes)
            except (ConnectionError, asyncio.IncompleteReadError, LeanHttpError) as exc:
                if isinstance(exc, TooLarge):
                    raise
                continue  # a stale keep-alive connection: try a fresh one
        reader, writer = await asyncio.open_connection(connect_host, connect_port)
        return await self._exchange(origin, reader, writer, request, method, max_bytes)

    def _route(self, url: str) -> tuple[_Route, str]:
        """(where to connect and the Host line, request target). Status URLs are many and
        share a few origins: a plain URL is cut by :data:`_PLAIN` and its origin looked up,
        anything else goes through :func:`split_url`."""
        match = _PLAIN.fullmatch(url)
        if match is None or url[-1] == "?":  # urlsplit drops an empty query's "?"
            return self._new_route(url)
        route = self._routes.get(match[1])
        if route is None:
            route, _ = self._new_route(url)
            self._routes[match[1]] = route
        return route, match[2]

    def _new_route(self, url: str) -> tuple[_Route, str]:
        host, port, path = split_url(url)
        connect = resolve_override(self.resolve, host, port) or (host, port)
        host_header = host if port == 80 else f"{host}:{port}"
        return _Route(connect, f"Host: {host_header}\r\nAccept-Encoding: identity"), path

    async def _exchange(
        self,
        origin: _Origin,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: bytes,
        method: str,
        max_bytes: int,
    ) -> LeanResponse:
        reuse = False
        try:
            writer.write(request)
            await writer.drain()
            status, headers = await _read_head(reader)
            body, reuse = await _read_body(reader, headers, method, status, max_bytes)
        finally:
            if reuse and len(origin.idle) < self.max_idle:
                origin.idle.append((reader, writer))
            else:
                writer.close()
        return LeanResponse(status, headers, body)

    async def aclose(self) -> None:
        for origin in self._origins.values():
            for _, writer in origin.idle:
                writer.close()
            origin.idle.clear()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise LeanHttpError("response headers too long") from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ConnectionError("connection closed before a response") from None
        raise LeanHttpError("truncated response headers") from None
    if len(head) > MAX_HEADER_BYTES:
        raise LeanHttpError("response headers too long")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/1.") or not fields[1].isdigit():
        raise LeanHttpError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise LeanHttpError(f"malformed header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(fields[1]), headers


async def _read_body(
    reader: asyncio.StreamReader,
    headers: dict[str, str],
    method: str,
    status: int,
    max_bytes: int,
) -> tuple[bytes, bool]:
    """(body, whether the connection may be reused)."""
    keep = headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise LeanHttpError("malformed chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b"".join(chunks), keep
            total += size
            if total > max_bytes:
                raise TooLarge(f"body over {max_bytes} bytes")
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise LeanHttpError(f"bad Content-Length {length[:20]!r}")
        if int(length) > max_bytes:
            raise TooLarge(f"body over {max_bytes} bytes")
        try:
            return await reader.readexactly(int(length)), keep
        except asyncio.IncompleteReadError as exc:
            raise LeanHttpError(f"truncated body: {len(exc.partial)} of {length} bytes") from None
    body = await reader.read(max_bytes + 1)
    while body and len(body) <= max_bytes:
        more = await reader.read(max_bytes + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > max_bytes:
        raise TooLarge(f"body over {max_bytes} bytes")
    return body, False
