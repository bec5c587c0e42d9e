"""The HTTP face of the log server: a bare ASGI app routing ``/<log>/…`` to each log.

A bare ASGI callable rather than a framework: the submission path is the hot path, and owning the
body loop is what lets an oversized body be refused before it is read whole. Every request error
is a JSON ``{"error": "..."}`` with a 4xx status (413 too large, 415 wrong content type, 404
unknown, 405 wrong method); a 5xx only ever means the log itself failed or a fault said so.

Routes under ``/<log>/``: RFC 6962 ``ct/v1/*``; static-ct-api ``checkpoint``, ``tile/…`` and
``issuer/<sha256 hex>``. Loopback-only admin routes under ``/admin/<log>/``: ``faults`` (GET,
POST), ``sth`` (POST: sign and publish now), ``sths`` (GET: every STH ever signed).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from ctstatus.ct.b64 import b64decode, b64encode
from ctstatus.ct.errors import DecodeError
from ctstatus.ct.tiles import parse_tile_path
from ctstatus.ctlog.errors import RequestError
from ctstatus.ctlog.faults import Down, Faults
from ctstatus.ctlog.sequencer import SequencerError
from ctstatus.ctlog.service import CtLog
from ctstatus.errors import UserError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger(__name__)

_UINT = re.compile(r"[0-9]{1,19}")
_MAX_INT = (1 << 63) - 1
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_JSON = b"application/json"
_IMMUTABLE = b"public, max-age=31536000, immutable"


class _ClientGone(Exception):
    """The client disconnected before its body was read."""


class _Response:
    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: bytes = _JSON,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ]


def _json(obj: object, status: int = 200, cache: bytes | None = None) -> _Response:
    headers = [(b"cache-control", cache)] if cache else None
    return _Response(status, json.dumps(obj, separators=(",", ":")).encode(), headers=headers)


def _error(
    status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> _Response:
    return _Response(status, json.dumps({"error": message}).encode(), headers=headers)


class _Query:
    """Query parameters, strictly: one value each, decimal integers without signs or spaces."""

    def __init__(self, query_string: bytes) -> None:
        text = query_string.decode("latin-1")
        try:
            self._values = parse_qs(text, keep_blank_values=True, errors="strict")
        except (ValueError, UnicodeDecodeError):
            raise RequestError("malformed query string") from None

    def text(self, name: str) -> str:
        values = self._values.get(name)
        if not values:
            raise RequestError(f"missing parameter {name!r}")
        if len(values) > 1:
            raise RequestError(f"parameter {name!r} given more than once")
        return values[0]

    def integer(self, name: str) -> int:
        value = self.text(name)
        if not _UINT.fullmatch(value) or int(value) > _MAX_INT:
            raise RequestError(f"parameter {name!r} must be a non-negative decimal integer")
        return int(value)


def _is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


class CtLogApp:
    """The ASGI app serving every configured log."""

    def __init__(
        self,
        logs: Mapping[str, CtLog],
        *,
        max_body_bytes: int,
        admin: bool,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.logs = dict(logs)
        self.max_body_bytes = max_body_bytes
        self.admin = admin
        self._on_started = on_started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            response = await self._route(scope, receive)
        except RequestError as exc:
            response = _error(exc.status, exc.message, exc.headers)
        except SequencerError as exc:
            response = _error(503, str(exc))
        except _ClientGone:
            return
        if response is None:
            return
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response.headers}
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for log in self.logs.values():
                        await log.start()
                    if self._on_started is not None:
                        self._on_started()
                except UserError as exc:  # said in one line, no traceback
                    logger.error("start-up failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                except Exception as exc:
                    logger.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for log in self.logs.values():
                    try:
                        await log.stop()
                    except Exception:
                        logger.exception("log %s: shutdown failed", log.name)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive) -> _Response | None:
        path: str = scope["path"]
        parts = path.split("/")
        if len(parts) < 3 or parts[0] != "":
            raise RequestError("not found", 404)
        name, rest = parts[1], "/".join(parts[2:])
        if name == "admin":
            return await self._admin(scope, receive, parts[2:])
        log = self.logs.get(name)
        if log is None:
            raise RequestError(f"no log named {name!r} here", 404)
        faults = log.faults.faults
        if faults.down is not None:
            # Down.REFUSE is normally enforced before the request is parsed (server.py).
            return _error(503, f"log {name} is down (injected fault)")
        is_add = rest in ("ct/v1/add-chain", "ct/v1/add-pre-chain")
        if log.faults.applies(is_add):
            if faults.delay_ms:
                await asyncio.sleep(faults.delay_ms / 1000)
            if faults.hang:
                await _wait_for_disconnect(receive)
                return None
            if faults.rate_limit_retry_after is not None:
                retry = str(faults.rate_limit_retry_after).encode()
                return _error(429, "rate limited (injected fault)", [(b"retry-after", retry)])
            if faults.reject_status is not None:
                return _error(faults.reject_status, "rejected (injected fault)")
        method = scope["method"]
        if is_add:
            _require(method, "POST")
            body = await self._read_json_body(scope, receive)
            sct = await log.add(body, precert=rest.endswith("add-pre-chain"))
            return _json(log.outgoing_sct(sct).to_json())
        _require(method, "GET")
        return self._read(log, rest, _Query(scope.get("query_string", b"")))

    def _read(self, log: CtLog, rest: str, query: _Query) -> _Response:
        if rest == "ct/v1/get-sth":
            return _json(log.outgoing_sth().to_json(), cache=b"no-store")
        if rest == "ct/v1/get-sth-consistency":
            proof = log.consistency(query.integer("first"), query.integer("second"))
            return _json({"consistency": [b64encode(node) for node in proof]})
        if rest == "ct/v1/get-proof-by-hash":
            try:
                leaf = b64decode(query.text("hash"), "hash", length=32)
            except DecodeError as exc:
                raise RequestError(str(exc)) from None
            index, path = log.proof_by_hash(leaf, query.integer("tree_size"))
            return _json({"leaf_index": index, "audit_path": [b64encode(n) for n in path]})
        if rest == "ct/v1/get-entries":
            body = log.entries_json(query.integer("start"), query.integer("end"))
            return _Response(200, body)
        if rest == "ct/v1/get-roots":
            roots = log.validator.roots.certificates
            return _json({"certificates": [b64encode(root) for root in roots]})
        if rest == "ct/v1/get-entry-and-proof":
            leaf_input, extra_data, path = log.entry_and_proof(
                query.integer("leaf_index"), query.integer("tree_size")
            )
            return _json(
                {
                    "leaf_input": b64encode(leaf_input),
                    "extra_data": b64encode(extra_data),
                    "audit_path": [b64encode(n) for n in path],
                }
            )
        if rest == "checkpoint":
            return _Response(
                200,
                log.checkpoint(),
                b"text/plain; charset=utf-8",
                [(b"cache-control", b"no-store")],
            )
        if rest.startswith("tile/"):
            try:
                tile = parse_tile_path(rest)
            except (DecodeError, ValueError) as exc:
                raise RequestError(str(exc), 404) from None
            if tile.is_data:
                body = log.data_tile(tile.index, tile.width)
            else:
                body = log.hash_tile(tile.level, tile.index, tile.width)
            return _Response(
                200, body, b"application/octet-stream", [(b"cache-control", _IMMUTABLE)]
            )
        if rest.startswith("issuer/"):
            digest = rest[len("issuer/") :]
            if not _HEX_SHA256.fullmatch(digest):
                raise RequestError("issuer: expected a lowercase hex SHA-256", 404)
            certificate = log.issuer(bytes.fromhex(digest))
            if certificate is None:
                raise RequestError("no such issuer", 404)
            return _Response(
                200, certificate, b"application/pkix-cert", [(b"cache-control", _IMMUTABLE)]
            )
        raise RequestError(f"no endpoint {rest!r}", 404)

    async def _read_json_body(self, scope: Scope, receive: Receive) -> bytes:
        content_type = _header(scope, b"content-type")
        media = (content_type or b"").split(b";")[0].strip().lower()
        if media != _JSON:
            raise RequestError("Content-Type must be application/json", 415)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestError("malformed Content-Length")
            if int(declared) > self.max_body_bytes:
                raise RequestError(f"body larger than {self.max_body_bytes} bytes", 413)
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:
                raise RequestError(f"body larger than {self.max_body_bytes} bytes", 413)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _admin(self, scope: Scope, receive: Receive, parts: list[str]) -> _Response:
        if not self.admin or not _is_loopback(scope):
            raise RequestError("not found", 404)
        if len(parts) != 2 or parts[0] not in self.logs:
            raise RequestError("admin: expected /admin/<log>/(faults|sth|sths)", 404)
        log, what, method = self.logs[parts[0]], parts[1], scope["method"]
        if what == "faults":
            if method == "GET":
                return _json(log.faults.faults.model_dump(mode="json"))
            _require(method, "POST")
            body = await self._read_json_body(scope, receive)
            try:
                faults = Faults.model_validate_json(body)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                    for e in exc.errors()
                )
                raise RequestError(f"invalid faults: {problems}") from None
            log.faults.replace(faults)
            return _json(faults.model_dump(mode="json"))
        if what == "sth":
            _require(method, "POST")
            return _json((await log.publish_sth()).to_json())
        if what == "sths":
            _require(method, "GET")
            return _json([sth.to_json() for sth in log.store.sths()])
        raise RequestError(f"admin: no endpoint {what!r}", 404)


def _require(method: str, expected: str) -> None:
    if method != expected:
        raise RequestError(
            f"method {method} not allowed here; use {expected}",
            405,
            [(b"allow", expected.encode())],
        )


async def _wait_for_disconnect(receive: Receive) -> None:
    """The ``hang`` fault: answer nothing until the client gives up."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def refused_log(first_bytes: bytes, logs: Mapping[str, CtLog]) -> bool:
    """Whether a request starting with ``first_bytes`` is for a log that is down (refuse)."""
    if not any(log.faults.faults.down is Down.REFUSE for log in logs.values()):
        return False
    line = first_bytes.split(b"\r\n", 1)[0]
    pieces = line.split(b" ")
    if len(pieces) < 2 or not pieces[1].startswith(b"/"):
        return False
    name = pieces[1].split(b"/", 2)[1].split(b"?", 1)[0].decode("latin-1")
    log = logs.get(name)
    return log is not None and log.faults.faults.down is Down.REFUSE
