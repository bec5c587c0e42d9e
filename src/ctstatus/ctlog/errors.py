"""Errors a client's request can cause; each carries the HTTP status to answer with."""

from __future__ import annotations


class RequestError(Exception):
    """A request the log refuses or cannot answer as asked (always a 4xx or a 503)."""

    def __init__(
        self, message: str, status: int = 400, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers


class ReadError(RequestError):
    """A read request with parameters the log cannot answer (sizes beyond the tree, …)."""


class SubmissionError(RequestError):
    """An add-chain / add-pre-chain submission the log refuses."""
