"""RFC 8555 §6.7 errors as RFC 7807 problem documents (``urn:ietf:params:acme:error:*``)."""

from __future__ import annotations

from typing import Any


class AcmeProblem(Exception):
    """An error the client sees: ``kind`` is the part after ``urn:ietf:params:acme:error:``."""

    def __init__(
        self,
        kind: str,
        detail: str,
        status: int = 400,
        *,
        subproblems: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.status = status
        self.subproblems = subproblems or []
        self.headers = headers or {}

    @property
    def type_urn(self) -> str:
        return f"urn:ietf:params:acme:error:{self.kind}"

    def document(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type_urn, "detail": self.detail, "status": self.status}
        if self.subproblems:
            body["subproblems"] = self.subproblems
        return body


def malformed(detail: str) -> AcmeProblem:
    return AcmeProblem("malformed", detail)


def unauthorized(detail: str) -> AcmeProblem:
    return AcmeProblem("unauthorized", detail, 403)


def not_found(detail: str) -> AcmeProblem:
    return AcmeProblem("malformed", detail, 404)
