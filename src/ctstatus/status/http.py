"""HTTP plumbing of the status server: headers (RFC 5019/9919 §6), bounded bodies, sending.

A bare ASGI layer rather than a framework: the OCSP hot path is a dict lookup and a send, and
every microsecond of routing shows up in the benchmark. Nothing here raises on client input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import formatdate
from typing import Any, Final

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

OCSP_REQUEST: Final = b"application/ocsp-request"
OCSP_RESPONSE: Final = b"application/ocsp-response"
PKIX_CRL: Final = b"application/pkix-crl"
PKIX_CERT: Final = b"application/pkix-cert"
NO_CACHE: Final = (b"cache-control", b"no-cache")


def http_date(timestamp: float) -> bytes:
    """An IMF-fixdate (RFC 9110 §5.6.7), e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(timestamp, usegmt=True).encode()


def strong_etag(body: bytes) -> bytes:
    """RFC 9919 §6.2 recommends the hex SHA-256 of the response as its ETag."""
    return b'"' + hashlib.sha256(body).hexdigest().encode() + b'"'


def cacheable_headers(
    content_type: bytes, body: bytes, *, last_modified: float, expires: float
) -> Headers:
    """The fixed headers of a cacheable response (Cache-Control is added per request)."""
    return [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"last-modified", http_date(last_modified)),
        (b"expires", http_date(expires)),
        (b"etag", strong_etag(body)),
    ]


def cache_control(max_age: int) -> tuple[bytes, bytes]:
    """RFC 5019/9919 §6.2: ``max-age=n, public, no-transform, must-revalidate``."""
    return (b"cache-control", b"max-age=%d, public, no-transform, must-revalidate" % max_age)


def uncacheable(content_type: bytes, body: bytes) -> Headers:
    """Headers for answers a cache must not keep (errors, ``unauthorized``; RFC 9919 §6.2)."""
    return [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        NO_CACHE,
    ]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class BodyTooLarge(Exception):
    """The request body exceeds the limit; raised before the rest is read."""


class BadContentLength(Exception):
    """The Content-Length header is not a non-negative decimal number."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refusing (BodyTooLarge) as soon as it exceeds ``limit`` bytes.

    A declared Content-Length over the limit is refused before a single body byte is read.
    """
    declared = header(scope, b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadContentLength
        if int(declared) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # disconnected: nothing will be sent anyway
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_response(
    send: Send, status: int, headers: Headers, body: bytes, *, head: bool = False
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_text(send: Send, status: int, text: str, extra: Headers | None = None) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        NO_CACHE,
        *(extra or []),
    ]
    await send_response(send, status, headers, body)
