"""The exceptions of :mod:`ctstatus.ct`, one per kind of failure.

Everything we are handed (SCTs, STHs, proofs, checkpoints, tiles) is hostile until checked
(DESIGN invariant 5). Callers therefore need to tell three things apart: bytes that do not parse
(:class:`DecodeError`), a Merkle proof that does not prove (:class:`ProofError`), and a signature
or claim that does not hold (:class:`VerificationError` and its subclasses). All are ``ValueError``
so a caller that only cares about "bad input" can catch that.
"""

from __future__ import annotations

import enum


class DecodeError(ValueError):
    """Bytes or text that do not decode: truncated, too long, trailing data, bad enum value."""


class EncodeError(ValueError):
    """A value that cannot be encoded (out of range, too long for its length prefix)."""


class ProofError(ValueError):
    """A Merkle inclusion or consistency proof that does not verify; ``str()`` says why."""


class FailureReason(enum.StrEnum):
    """Why a signature or signed claim was rejected; stable strings for logs and metrics."""

    UNSUPPORTED_VERSION = "unsupported_version"
    WRONG_LOG_ID = "wrong_log_id"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    ALGORITHM_MISMATCH = "algorithm_mismatch"
    UNSUPPORTED_LOG_KEY = "unsupported_log_key"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED_INPUT = "malformed_input"
    NO_KNOWN_SIGNATURE = "no_known_signature"
    ORIGIN_MISMATCH = "origin_mismatch"
    EXTENSION_LINES = "extension_lines"


class VerificationError(ValueError):
    """A signed object that does not verify; ``reason`` says which check failed."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


class SctVerificationError(VerificationError):
    """An SCT that does not verify against the given log key and certificate."""


class SthVerificationError(VerificationError):
    """A signed tree head (RFC 6962 STH) whose signature does not verify."""


class CheckpointVerificationError(VerificationError):
    """A static-ct-api checkpoint (signed note) that does not verify for the expected log."""
