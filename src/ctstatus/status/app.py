"""The status server as one bare ASGI app: OCSP (GET and POST), CRLs, CA certificates.

Routing is by exact path for CRLs (the paths of ``[urls] crl``) and CA certificates (``[urls]
ca_issuers``); every other GET is an OCSP GET request, with the path part of ``[urls] ocsp``
stripped when present; every POST is an OCSP request. Limits are enforced before work is done:
a body over ``max_request_bytes`` is refused (413) as soon as its size is known, a path longer
than ``max_path_bytes`` gets 414. No client input can produce an HTTP 500.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ctstatus.status.crl_serving import ServedCrl
from ctstatus.status.http import (
    OCSP_REQUEST,
    PKIX_CERT,
    BadContentLength,
    BodyTooLarge,
    Headers,
    Receive,
    Scope,
    Send,
    cache_control,
    header,
    read_body,
    send_response,
    send_text,
)
from ctstatus.status.ocsp_request import MalformedRequest, decode_get_path
from ctstatus.status.responder import INTERNAL_ERROR, MALFORMED
from ctstatus.status.service import StatusService

log = logging.getLogger(__name__)

_ALLOW: Final = [(b"allow", b"GET, HEAD, POST")]


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
    """ASGI entry point; ``lifespan`` starts and stops the service's background work."""

    def __init__(self, service: StatusService, settings: AppSettings = AppSettings()) -> None:
        self.service = service
        self.settings = settings
        self._responder = service.responder
        self._crls = service.crls
        self._prefixes = tuple(sorted(settings.ocsp_prefixes, key=len, reverse=True))
        self._limit = settings.max_request_bytes
        self._path_limit = settings.max_path_bytes
        self._certs = dict(settings.ca_certificates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                await self._http(scope, receive, send)
            except OSError:
                pass  # the client went away mid-response
            except Exception:
                log.exception("unexpected error answering %s %r", scope["method"], scope["path"])
                der, headers = INTERNAL_ERROR
                with contextlib.suppress(Exception):  # unless the response had already started
                    await send_response(send, 200, headers, der)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

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

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "POST":
            await self._post(scope, receive, send)
            return
        if method != "GET" and method != "HEAD":
            await send_text(send, 405, "use GET, HEAD or POST\n", _ALLOW)
            return
        path: bytes = scope.get("raw_path") or scope["path"].encode()
        if len(path) > self._path_limit:
            await send_text(send, 414, "request path too long\n")
            return
        head = method == "HEAD"
        crl = self._crls.get(path)
        if crl is not None:
            await self._send_crl(scope, send, crl, head)
            return
        cert = self._certs.get(path)
        if cert is not None:
            headers = [
                (b"content-type", PKIX_CERT),
                (b"content-length", str(len(cert)).encode()),
                (b"cache-control", b"max-age=86400, public"),
            ]
            await send_response(send, 200, headers, cert, head=head)
            return
        if path == b"/healthz":
            await send_text(send, 200, "ok\n")
            return
        try:
            request = decode_get_path(path, self._prefixes)
        except MalformedRequest:
            der, headers = MALFORMED
        else:
            der, headers = await self._responder.respond(request)
            etag = header(scope, b"if-none-match")
            if etag is not None and (b"etag", etag) in headers:
                await send_response(send, 304, _not_modified(headers), b"")
                return
        await send_response(send, 200, headers, der, head=head)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(scope, receive, self._limit)
        except BodyTooLarge:
            await send_text(send, 413, f"an OCSP request is at most {self._limit} bytes\n")
            return
        except BadContentLength:
            await send_text(send, 400, "invalid Content-Length\n")
            return
        content_type = header(scope, b"content-type")
        if content_type is None or content_type.split(b";")[0].strip().lower() != OCSP_REQUEST:
            der, headers = MALFORMED
        else:
            der, headers = await self._responder.respond(body)
        await send_response(send, 200, headers, der)

    async def _send_crl(self, scope: Scope, send: Send, crl: ServedCrl, head: bool) -> None:
        now = self.service.clock().timestamp()
        max_age = max(0, min(self.settings.crl_max_age, int(crl.next_update - now) - 1))
        headers = [*crl.headers, cache_control(max_age)]
        if header(scope, b"if-none-match") == crl.etag:
            await send_response(send, 304, _not_modified(headers), b"")
            return
        await send_response(send, 200, headers, crl.crl.crl_der, head=head)


def _not_modified(headers: Headers) -> Headers:
    keep = (b"etag", b"cache-control", b"expires", b"last-modified")
    return [(k, v) for k, v in headers if k in keep]
