"""The API over HTTP (starlette). Client input never causes a 5xx: every refusal is a JSON
``{"error", "hint"}`` with a 4xx status that says exactly what was wrong -- also for unknown
routes and methods under ``/api``.

CAs are named as in the instance's config (``issuing-ca``), never by internal ids; revocation
reasons are RFC 5280's camelCase names, in and out; a ``request_id`` names an order, so asking
again with the same ``request_id`` and CSR returns the same certificate (200), never a second
serial (DESIGN.md invariant 4), and a different CSR under it is a 409.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ctstatus.api.auth import token_matches
from ctstatus.api.openapi import document
from ctstatus.api.service import (
    REVOCATION_REASONS,
    IssuanceBackend,
    parse_serial,
    record_json,
    same_request,
)

MAX_BODY_BYTES = 128 * 1024
Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def _error(status: int, message: str, hint: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="ctstatus"'} if status == 401 else None
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=headers)


async def _json_body(request: Request, *, required: bool) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is {declared} bytes; at most {MAX_BODY_BYTES}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not body:
        if required:
            raise ApiError(400, "a JSON body is required")
        return {}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, f"the body must be application/json, not {ctype or 'untyped'}")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value


def _fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)}")


def _serial(request: Request) -> int:
    text = request.path_params["serial"]
    serial = parse_serial(text)
    if serial is None:
        raise ApiError(400, f"{text!r} is not a serial number", "give it in hex")
    return serial


class IssuanceApi:
    """Routes bound to one backend and one token hash."""

    def __init__(self, backend: IssuanceBackend, token_hash: str) -> None:
        self.backend = backend
        self.token_hash = token_hash

    def _authorize(self, request: Request) -> None:
        if not token_matches(self.token_hash, request.headers.get("authorization")):
            raise ApiError(
                401,
                "this needs the API token: Authorization: Bearer <token>",
                "`ctstatus up` wrote the token to STATE/api-token when it created the stack",
            )

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(document(MAX_BODY_BYTES))

    def _check_ca(self, body: dict[str, Any]) -> None:
        name = body.get("ca")
        if name is not None and name != self.backend.issuer_name:
            raise ApiError(
                404,
                f"no CA named {str(name)[:80]!r} here; this API issues from "
                f"{self.backend.issuer_name!r}",
                'leave out "ca", or give the name above',
            )

    def _issued_json(
        self, serial: int, certificate: Any, scts: list[dict[str, Any]]
    ) -> dict[str, Any]:
        from cryptography.hazmat.primitives.serialization import Encoding

        chain = certificate.public_bytes(Encoding.PEM) + (
            self.backend.issuer_certificate.public_bytes(Encoding.PEM)
        )
        return {
            "ca": self.backend.issuer_name,
            "serial": format(serial, "x"),
            "state": "issued",
            "not_before": certificate.not_valid_before_utc.isoformat(),
            "not_after": certificate.not_valid_after_utc.isoformat(),
            "chain_pem": chain.decode(),
            "scts": scts,
        }

    async def _retry(self, request_id: str, issuance_request: Any) -> Response | None:
        """The answer to a ``request_id`` that already holds a serial, or None if none does."""
        from cryptography import x509

        held = await self.backend.held_by_request(request_id)
        if held is None:
            return None
        if held.cert_der is None:
            raise ApiError(
                409,
                f"request_id {request_id!r} is being issued as serial {held.serial:x} "
                f"({held.state.value}); no second serial is made for it",
                "ask again in a few seconds; after a crash `ctstatus recover` settles it",
            )
        certificate = x509.load_der_x509_certificate(held.cert_der)
        if not same_request(certificate, issuance_request.public_key, issuance_request.names):
            raise ApiError(
                409,
                f"request_id {request_id!r} already has serial {held.serial:x} for another "
                "key or other names",
                "a request_id names one order; use a new request_id for a new CSR",
            )
        body = self._issued_json(held.serial, certificate, self.backend.embedded_scts(certificate))
        return JSONResponse(body, status_code=200)

    async def issue(self, request: Request) -> Response:
        from ctstatus.ca.issuance import IssuanceError, LintFailed, RequestRefused
        from ctstatus.ca.requests import BadRequest, request_from_csr
        from ctstatus.ledger import RequestHasSerial

        self._authorize(request)
        body = await _json_body(request, required=True)
        _fields(body, {"csr", "lifetime_days", "request_id", "ca"})
        self._check_ca(body)
        csr = body.get("csr")
        if not isinstance(csr, str) or not csr.strip():
            raise ApiError(400, "csr must be a PEM certificate signing request (a string)")
        lifetime = body.get("lifetime_days", self.backend.default_lifetime_days)
        if type(lifetime) is not int or not 1 <= lifetime <= self.backend.max_lifetime_days:
            raise ApiError(
                400, f"lifetime_days must be an integer 1..{self.backend.max_lifetime_days}"
            )
        request_id = body.get("request_id")
        if request_id is not None and (
            not isinstance(request_id, str) or not 1 <= len(request_id) <= 200
        ):
            raise ApiError(400, "request_id must be a string of 1..200 characters")
        try:
            data = csr.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(422, "the CSR is not valid text") from None
        try:
            issuance_request = request_from_csr(data, lifetime_days=lifetime, request_id=request_id)
        except BadRequest as exc:
            raise ApiError(422, exc.message, exc.hint) from None
        if request_id is not None:
            retried = await self._retry(request_id, issuance_request)
            if retried is not None:
                return retried
        try:
            result = await self.backend.issue(issuance_request)
        except (BadRequest, LintFailed, RequestRefused) as exc:
            raise ApiError(422, exc.message, exc.hint) from None
        except RequestHasSerial:  # a concurrent request with this request_id won the race
            assert request_id is not None
            retried = await self._retry(request_id, issuance_request)
            if retried is not None:
                return retried
            raise ApiError(409, f"request_id {request_id!r} is being issued; ask again") from None
        except IssuanceError as exc:
            raise ApiError(503, exc.message, exc.hint) from None
        scts = [
            {
                "log": s.log_name,
                "operator": s.operator,
                "log_id": base64.b64encode(s.sct.log_id).decode(),
                "timestamp_ms": s.sct.timestamp_ms,
            }
            for s in result.scts
        ]
        return JSONResponse(
            self._issued_json(result.serial, result.certificate, scts), status_code=201
        )

    async def get_certificate(self, request: Request) -> Response:
        serial = _serial(request)
        record = await self.backend.record(serial)
        if record is None:
            raise ApiError(404, f"{self.backend.issuer_name} has no serial {serial:x}")
        return JSONResponse(record_json(record, self.backend.issuer_name))

    async def revoke(self, request: Request) -> Response:
        from ctstatus.ledger import InvalidTransition, UnknownSerial

        self._authorize(request)
        serial = _serial(request)
        body = await _json_body(request, required=False)
        _fields(body, {"reason", "ca"})
        self._check_ca(body)
        reason_name = body.get("reason", "unspecified")
        if not isinstance(reason_name, str) or reason_name not in REVOCATION_REASONS:
            raise ApiError(
                400,
                f"reason must be one of {', '.join(REVOCATION_REASONS)} (RFC 5280 names)",
                "certificateHold is not allowed for TLS certificates (BR §7.2.2)",
            )
        try:
            record = await self.backend.revoke(
                serial, REVOCATION_REASONS[reason_name], actor="api:revoke"
            )
        except UnknownSerial:
            raise ApiError(404, f"{self.backend.issuer_name} has no serial {serial:x}") from None
        except InvalidTransition as exc:
            raise ApiError(409, str(exc)) from None
        return JSONResponse(record_json(record, self.backend.issuer_name))

    async def lifecycle(self, request: Request) -> Response:
        serial = _serial(request)
        record = await self.backend.record(serial)
        if record is None:
            raise ApiError(404, f"{self.backend.issuer_name} has no serial {serial:x}")
        journal = await self.backend.journal(serial)
        return JSONResponse(
            {"record": record_json(record, self.backend.issuer_name), "journal": journal}
        )


def _wrap(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, exc.message, exc.hint)

    return wrapped


def api_routes(backend: IssuanceBackend, token_hash: str) -> list[Route]:
    """The API's routes, to mount under ``/api``'s parent app."""
    api = IssuanceApi(backend, token_hash)
    return [
        Route("/api/openapi.json", _wrap(api.openapi), methods=["GET"]),
        Route("/api/v1/certificates", _wrap(api.issue), methods=["POST"]),
        Route("/api/v1/certificates/{serial}", _wrap(api.get_certificate), methods=["GET"]),
        Route("/api/v1/certificates/{serial}/revoke", _wrap(api.revoke), methods=["POST"]),
        Route("/api/v1/serials/{serial}", _wrap(api.lifecycle), methods=["GET"]),
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405: JSON under ``/api``, plain text elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path == "/api" or request.url.path.startswith("/api/"):
        if exc.status_code == 404:
            message = f"no API route {request.url.path}"
            hint = "the routes are in /api/openapi.json"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
            hint = f"use {exc.headers.get('allow') if exc.headers else 'another method'}"
        else:
            message, hint = exc.detail, None
        return JSONResponse(
            {"error": message, "hint": hint}, status_code=exc.status_code, headers=exc.headers
        )
    return Response(exc.detail, status_code=exc.status_code, headers=exc.headers)


EXCEPTION_HANDLERS: dict[Any, Any] = {404: _http_error, 405: _http_error}
"""For every app that mounts :func:`api_routes`."""


def api_app(backend: IssuanceBackend, token_hash: str) -> Starlette:
    """A stand-alone API app (the stack mounts the same routes beside the dashboard)."""
    return Starlette(routes=api_routes(backend, token_hash), exception_handlers=EXCEPTION_HANDLERS)
