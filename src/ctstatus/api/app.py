"""The API over HTTP (starlette). Client input never causes a 5xx: every refusal is a JSON
``{"error", "hint"}`` with a 4xx status that says exactly what was wrong."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
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

    async def issue(self, request: Request) -> Response:
        from ctstatus.ca.issuance import IssuanceError, LintFailed
        from ctstatus.ca.requests import BadRequest, request_from_csr
        from ctstatus.ledger import RequestHasSerial

        self._authorize(request)
        body = await _json_body(request, required=True)
        _fields(body, {"csr", "lifetime_days", "request_id"})
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
            result = await self.backend.issue(issuance_request)
        except (BadRequest, LintFailed) as exc:
            raise ApiError(422, exc.message, exc.hint) from None
        except RequestHasSerial as exc:
            raise ApiError(409, str(exc)) from None
        except IssuanceError as exc:
            raise ApiError(503, exc.message, exc.hint) from None
        chain = result.chain_pem(self.backend.issuer_certificate)
        return JSONResponse(
            {
                "serial": format(result.serial, "x"),
                "state": "issued",
                "not_before": result.certificate.not_valid_before_utc.isoformat(),
                "not_after": result.certificate.not_valid_after_utc.isoformat(),
                "chain_pem": chain.decode(),
                "scts": [
                    {"log": s.log_name, "operator": s.operator, "timestamp_ms": s.sct.timestamp_ms}
                    for s in result.scts
                ],
            },
            status_code=201,
        )

    async def get_certificate(self, request: Request) -> Response:
        serial = _serial(request)
        record = await self.backend.record(serial)
        if record is None:
            raise ApiError(404, f"{self.backend.issuer_name} has no serial {serial:x}")
        return JSONResponse(record_json(record))

    async def revoke(self, request: Request) -> Response:
        from ctstatus.ledger import InvalidTransition, UnknownSerial

        self._authorize(request)
        serial = _serial(request)
        body = await _json_body(request, required=False)
        _fields(body, {"reason"})
        reason_name = body.get("reason", "unspecified")
        if not isinstance(reason_name, str) or reason_name not in REVOCATION_REASONS:
            raise ApiError(
                400,
                f"reason must be one of {', '.join(REVOCATION_REASONS)}",
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
        return JSONResponse(record_json(record))

    async def lifecycle(self, request: Request) -> Response:
        serial = _serial(request)
        record = await self.backend.record(serial)
        if record is None:
            raise ApiError(404, f"{self.backend.issuer_name} has no serial {serial:x}")
        journal = await self.backend.journal(serial)
        return JSONResponse({"record": record_json(record), "journal": journal})


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


def api_app(backend: IssuanceBackend, token_hash: str) -> Starlette:
    """A stand-alone API app (the stack mounts the same routes beside the dashboard)."""
    return Starlette(routes=api_routes(backend, token_hash))
