"""The one error validation raises: an RFC 8555 §6.7 problem type and a detail for the client."""

from __future__ import annotations

PROBLEMS = frozenset(
    {
        "connection",
        "dns",
        "incorrectResponse",
        "unauthorized",
        "tls",
        "caa",
        "rejectedIdentifier",
        "malformed",
    }
)


class ValidationError(Exception):
    """A challenge or identifier failed; ``problem`` is the suffix after
    ``urn:ietf:params:acme:error:``, ``detail`` says what was tried and what was found."""

    def __init__(self, problem: str, detail: str) -> None:
        if problem not in PROBLEMS:
            raise ValueError(f"unknown ACME problem type {problem!r}")
        super().__init__(f"{problem}: {detail}")
        self.problem = problem
        self.detail = detail

    @property
    def type_urn(self) -> str:
        """The full problem type for an RFC 7807 document."""
        return f"urn:ietf:params:acme:error:{self.problem}"
