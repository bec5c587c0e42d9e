"""The status server's request handling: OCSP (GET and POST), CRLs, CA certificates.

Routing is by exact path for CRLs (the paths of ``[urls] crl``), CA certificates (``[urls]
ca_issuers``) and ``/healthz``; a GET whose path (after the path part of ``[urls] ocsp``) looks
like a base64 OCSP request is one (``malformedRequest`` if it does not decode, see
:func:`decode_get_path`); a POST to ``/`` or to an ``[urls] ocsp`` path is an OCSP request.
Everything else is a plain-text 404 -- a scanner's ``/favicon.ico`` is not an OCSP error. Nothing
a client sends can produce an HTTP 500.

The logic is transport-neutral (:class:`Request` in, :data:`Response` out) and has two
front ends: :meth:`StatusApp.quick` answers synchronously whatever memory can answer (the
OCSP hot path, CRLs, certificates, errors) and :meth:`StatusApp.answer` awaits the rest (a
cache miss). ``ctstatus ocsp serve`` runs them behind :mod:`ctstatus.status.http_server`;
``StatusApp`` is also a plain ASGI application (``__call__``), for uvicorn or any ASGI server.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ctstatus.status.crl_serving import ServedCrl
from ctstatus.status.http import (
    NO_CACHE,
    OCSP_REQUEST,
    PKIX_CERT,
    BadContentLength,
    BodyTooLarge,
    Headers,
    Receive,
    Scope,
    Send,
    cache_control,
    read_body,
    send_response,
)
from ctstatus.status.ocsp_request import MalformedRequest, NotAnOcspPath, decode_get_path
from ctstatus.status.responder import INTERNAL_ERROR, MALFORMED, Miss, Reply
from ctstatus.status.service import StatusService

log = logging.getLogger(__name__)

Response = tuple[int, Headers, bytes]
"""(HTTP status, headers without Date/Content-Length, body)"""

_ALLOW: Final = [(b"allow", b"GET, HEAD, POST")]
NOT_FOUND: Final = (
    "not found: this server answers OCSP requests (GET /<base64 request>, POST /) and serves "
    "CRLs and CA certificates at the paths in the certificates\n"
)
DECODED_MEMO: Final = 65_536
"""How many GET paths to remember decoded (clients repeat byte-identical URLs)."""


@dataclass(slots=True)
class Request:
    """What the handlers need of an HTTP request; headers have lowercase names."""

    method: str
    path: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def text_response(status: int, text: str, extra: Headers | None = None) -> Response:
    return (
        status,
        [(b"content-type", b"text/plain; charset=utf-8"), NO_CACHE, *(extra or [])],
        (text.encode()),
    )


@dataclass(frozen=True)
class AppSettings:
    ocsp_prefixes: tuple[bytes, ...] = ()
    max_request_bytes: int = 8192
    crl_max_age: int = 300
    ca_certificates: Mapping[bytes, bytes] = field(default_factory=dict)

    @property
    def max_path_bytes(self) -> int:
        """Room for the URL-encoded base64 of the largest request we accept (3 x 4/3 + slack)."""
        return 4 * self.max_request_bytes + 256


class StatusApp:
    """Request handling; ``lifespan`` (ASGI) or the HTTP server start the service's work."""

    def __init__(self, service: StatusService, settings: AppSettings = AppSettings()) -> None:
        self.service = service
        self.settings = settings
        self._responder = service.responder
        self._crls = service.crls
        self._prefixes = tuple(sorted(settings.ocsp_prefixes, key=len, reverse=True))
        self._post_paths = frozenset(
            {b"/", b"", *self._prefixes, *(prefix + b"/" for prefix in self._prefixes)}
        )
        self.max_request_bytes = settings.max_request_bytes
        self.max_path_bytes = settings.max_path_bytes
        self._certs = dict(settings.ca_certificates)
        self._decoded: dict[bytes, bytes] = {}

    # --------------------------------------------------------------------- transport-neutral

    def quick(self, request: Request) -> Response | Miss:
        """The response, or a :class:`Miss` to hand to :meth:`resolve` (it needs the ledger)."""
        method = request.method
        if method == "POST":
            if request.path not in self._post_paths:
                return text_response(404, NOT_FOUND)
            content_type = request.header(b"content-type")
            if content_type != OCSP_REQUEST and (
                content_type is None or content_type.split(b";")[0].strip().lower() != OCSP_REQUEST
            ):
                return _ocsp(MALFORMED)
            found = self._responder.lookup(request.body)
            return found if isinstance(found, Miss) else _ocsp(found)
        if method != "GET" and method != "HEAD":
            return text_response(405, "use GET, HEAD or POST\n", _ALLOW)
        path = request.path
        if len(path) > self.max_path_bytes:
            return text_response(414, "request path too long\n")
        crl = self._crls.get(path)
        if crl is not None:
            return self._crl(request, crl)
        cert = self._certs.get(path)
        if cert is not None:
            return 200, [(b"content-type", PKIX_CERT), (b"cache-control", b"max-age=86400")], cert
        if path == b"/healthz":
            return text_response(200, "ok\n")
        der = self._decoded.get(path)
        if der is None:
            try:
                der = decode_get_path(path, self._prefixes)
            except NotAnOcspPath:
                return text_response(404, NOT_FOUND)
            except MalformedRequest:
                return _ocsp(MALFORMED)
            if len(self._decoded) >= DECODED_MEMO:
                del self._decoded[next(iter(self._decoded))]
            self._decoded[path] = der
        found = self._responder.lookup(der)
        if isinstance(found, Miss):
            return found
        return self._conditional(request, found)

    async def resolve(self, request: Request, miss: Miss) -> Response:
        """Finish a request :meth:`quick` could not answer from memory."""
        reply = await self._responder.resolve(miss)
        if request.method == "POST":
            return _ocsp(reply)
        return self._conditional(request, reply)

    async def answer(self, request: Request) -> Response:
        """:meth:`quick`, then :meth:`resolve` if needed; never raises."""
        try:
            found = self.quick(request)
            if isinstance(found, Miss):
                return await self.resolve(request, found)
            return found
        except Exception:
            log.exception("unexpected error answering %s %r", request.method, request.path[:200])
            return _ocsp(INTERNAL_ERROR)

    def _conditional(self, request: Request, reply: Reply) -> Response:
        der, headers = reply
        etag = request.header(b"if-none-match")
        if etag is not None and (b"etag", etag) in headers:
            return 304, _not_modified(headers), b""
        return 200, headers, der

    def _crl(self, request: Request, crl: ServedCrl) -> Response:
        now = self.service.clock().timestamp()
        max_age = max(0, min(self.settings.crl_max_age, int(crl.next_update - now) - 1))
        headers = [*crl.headers, cache_control(max_age)]
        if request.header(b"if-none-match") == crl.etag:
            return 304, _not_modified(headers), b""
        return 200, headers, crl.crl.crl_der

    # ------------------------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            with contextlib.suppress(OSError):  # the client went away mid-response
                await self._asgi_http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _asgi_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(bytes(k), bytes(v)) for k, v in scope["headers"]]
        request = Request(scope["method"], scope.get("raw_path") or scope["path"].encode(), headers)
        if request.method == "POST":
            try:
                request.body = await read_body(scope, receive, self.max_request_bytes)
            except BodyTooLarge:
                status, out, body = text_response(
                    413, f"an OCSP request is at most {self.max_request_bytes} bytes\n"
                )
                await send_response(send, status, _with_length(out, body), body)
                return
            except BadContentLength:
                status, out, body = text_response(400, "invalid Content-Length\n")
                await send_response(send, status, _with_length(out, body), body)
                return
        status, out, body = await self.answer(request)
        with contextlib.suppress(Exception):  # unless the client is gone
            await send_response(
                send, status, _with_length(out, body, status), body, head=request.method == "HEAD"
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.service.start()
                except Exception as exc:
                    log.exception("status service failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _ocsp(reply: Reply) -> Response:
    der, headers = reply
    return 200, headers, der


def _with_length(headers: Headers, body: bytes, status: int = 200) -> Headers:
    if status == 304 or any(k == b"content-length" for k, _ in headers):
        return headers
    return [*headers, (b"content-length", str(len(body)).encode())]


def _not_modified(headers: Headers) -> Headers:
    keep = (b"etag", b"cache-control", b"expires", b"last-modified")
    return [(k, v) for k, v in headers if k in keep]
