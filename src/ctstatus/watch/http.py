"""One bounded HTTP exchange with everything kept as evidence (status, headers, body, time).

Transport trouble is a finding, not an exception: a relying party that cannot reach a
responder has learnt something about the CA. Which trouble matters to whoever fixes it, so a
name that does not resolve (``transport.dns``), a TLS handshake that fails (``transport.tls``)
and a refused or broken connection (``transport.connect``) are told apart by the exception that
caused them (``socket.gaierror``, ``ssl.SSLError``), in both HTTP paths.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ctstatus.ct.transport import resolve_override
from ctstatus.watch.lean import LeanHttp, LeanHttpError, TooLarge
from ctstatus.watch.problems import Code, Finding


@dataclass
class Fetched:
    """What came back, or the finding that explains why nothing usable did."""

    url: str
    method: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    elapsed: float = 0.0
    finding: Finding | None = None
    error: str | None = None  # a failed connection: why, as the resolver / OS / TLS said it
    error_code: Code | None = None  # and its transport code (kept when a CRL wraps it)

    def evidence(self, max_body: int = 4096) -> dict[str, Any]:
        evidence: dict[str, Any] = {
            "url": self.url,
            "method": self.method,
            "status": self.status,
            "headers": self.headers,
            "elapsed_ms": round(self.elapsed * 1000, 1),
            "body_b64": base64.b64encode(self.body[:max_body]).decode(),
            "body_length": len(self.body),
        }
        if self.error is not None:
            evidence["error"] = self.error
            evidence["error_code"] = None if self.error_code is None else self.error_code.value
        return evidence


async def fetch(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float,
    max_bytes: int,
    expect_type: str | None = None,
    lean: LeanHttp | None = None,
) -> Fetched:
    """GET or POST ``url``; non-2xx/304, wrong type, empty or oversized bodies are findings.

    With ``lean``, plain-http URLs go through :class:`LeanHttp` (status checks are many)."""
    result = Fetched(url, method)
    start = time.monotonic()
    if lean is not None and url.startswith("http://"):
        try:
            async with asyncio.timeout(timeout):
                answer = await lean.request(
                    method, url, headers=headers, content=content, max_bytes=max_bytes
                )
        except TimeoutError:
            return _failed(result, start, Code.HTTP_TIMEOUT, f"no answer within {timeout:g} s")
        except TooLarge:
            return _failed(result, start, Code.HTTP_TOO_LARGE, f"body over {max_bytes} bytes")
        except LeanHttpError as exc:
            return _failed(result, start, Code.HTTP_TRUNCATED, str(exc))
        except OSError as exc:
            code, why = classify_failure(exc)
            return _failed(result, start, code, why)
        result.status, result.headers, result.body = answer.status, answer.headers, answer.body
        result.elapsed = time.monotonic() - start
        return _judge(result, expect_type)
    try:
        async with http.stream(
            method, url, content=content, headers=headers, timeout=timeout
        ) as response:
            result.status = response.status_code
            result.headers = dict(response.headers)
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    result.elapsed = time.monotonic() - start
                    result.finding = Finding(
                        Code.HTTP_TOO_LARGE, f"{method} {url}: body over {max_bytes} bytes"
                    )
                    return result
                chunks.append(chunk)
            result.body = b"".join(chunks)
    except httpx.TimeoutException:
        result.elapsed = time.monotonic() - start
        result.finding = Finding(
            Code.HTTP_TIMEOUT, f"{method} {url}: no answer within {timeout:g} s", result.evidence()
        )
        return result
    except httpx.HTTPError as exc:
        code, why = classify_failure(exc)
        return _failed(result, start, code, why)
    result.elapsed = time.monotonic() - start
    return _judge(result, expect_type)


def classify_failure(exc: BaseException) -> tuple[Code, str]:
    """The transport code of a failed exchange, and why, from the exception and its causes.

    httpx wraps the OS error twice (``httpx.ConnectError`` <- ``httpcore.ConnectError`` <-
    ``socket.gaierror`` / ``ssl.SSLError``), and a TLS peer that hangs up mid-handshake shows
    as ``anyio.EndOfStream`` <- ``ssl.SSLEOFError``; so the whole chain is searched."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 16 and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for error in chain:
        if isinstance(error, socket.gaierror):
            return Code.HTTP_DNS, f"DNS: {_describe(error)}"
    for error in chain:
        if isinstance(error, ssl.SSLError):
            return Code.HTTP_TLS, f"TLS handshake: {_describe(error)}"
    return Code.HTTP_CONNECT, _describe(next((e for e in reversed(chain) if str(e)), exc))


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _failed(result: Fetched, start: float, code: Code, why: str) -> Fetched:
    result.elapsed = time.monotonic() - start
    if code in (Code.HTTP_DNS, Code.HTTP_TLS, Code.HTTP_CONNECT):
        result.error, result.error_code = why, code
    result.finding = Finding(code, f"{result.method} {result.url}: {why}", result.evidence())
    return result


def _judge(result: Fetched, expect_type: str | None) -> Fetched:
    """Status, emptiness and content type of a complete response."""
    method, url = result.method, result.url
    if result.status == 304:
        return result
    if result.status != 200:
        result.finding = Finding(
            Code.HTTP_STATUS, f"{method} {url}: HTTP {result.status}", result.evidence()
        )
    elif not result.body:
        result.finding = Finding(Code.HTTP_EMPTY, f"{method} {url}: empty body", result.evidence())
    elif expect_type is not None:
        content_type = result.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != expect_type:
            result.finding = Finding(
                Code.HTTP_CONTENT_TYPE,
                f"{method} {url}: Content-Type {content_type or 'missing'}, not {expect_type}",
                result.evidence(),
            )
    return result


class ResolvingTransport(httpx.AsyncBaseTransport):
    """curl's ``--resolve``: send requests for some host[:port] to another address, keeping
    the Host header (a staging CA, or tests whose certificates name public hosts)."""

    def __init__(self, resolve: dict[str, str], inner: httpx.AsyncBaseTransport) -> None:
        self.resolve = resolve
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        target = resolve_override(self.resolve, url.host, port)
        if target is not None:
            host, port = target
            request.url = url.copy_with(host=host, port=port)
            request.headers["Host"] = url.netloc.decode("ascii")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
