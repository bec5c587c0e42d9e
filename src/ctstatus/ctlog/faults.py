"""Fault injection: how a log misbehaves on purpose, so clients' failure paths can be tested.

The CA must survive logs that refuse, stall, rate-limit, lie or vanish (the Microsec incident
began with one log accepting and the others failing). Faults come from the config
(``[log.faults]``) and can be replaced at run time through the loopback admin endpoint
(``POST /admin/<log>/faults``). Everything is deterministic: ``after`` lets N affected requests
through untouched before the faults apply, and nothing is random.
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Scope(enum.StrEnum):
    """Which requests the request faults affect."""

    ADD = "add"  # add-chain and add-pre-chain only
    ALL = "all"  # every endpoint of the log


class Down(enum.StrEnum):
    """How a log that is down shows it."""

    REFUSE = "refuse"  # the connection is closed without a response
    UNAVAILABLE = "503"  # every request gets 503


class SthFault(enum.StrEnum):
    """How get-sth and the checkpoint lie."""

    BAD_SIGNATURE = "bad_signature"  # the real tree head with a corrupted signature
    WRONG_ROOT = "wrong_root"  # a validly signed tree head over a root that is not the tree's


class Faults(BaseModel):
    """The faults of one log; the default is a log that behaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Scope = Scope.ADD
    after: Annotated[int, Field(ge=0)] = 0
    delay_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    hang: bool = False
    rate_limit_retry_after: Annotated[int, Field(ge=0, le=86400)] | None = None
    reject_status: Annotated[int, Field(ge=400, le=599)] | None = None
    corrupt_sct_signature: bool = False
    sth: SthFault | None = None
    down: Down | None = None

    @model_validator(mode="after")
    def _check(self) -> Faults:
        if self.hang and (self.reject_status is not None or self.rate_limit_retry_after):
            raise ValueError("hang cannot be combined with reject_status or rate limiting")
        return self

    @property
    def affects_requests(self) -> bool:
        """Whether any per-request fault is set (delay, hang, 429, reject)."""
        return bool(
            self.delay_ms
            or self.hang
            or self.rate_limit_retry_after is not None
            or self.reject_status is not None
        )


class FaultState:
    """The live faults of one log and the counter behind ``after``."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.seen = 0

    def replace(self, faults: Faults) -> None:
        """New faults; the ``after`` counter starts again."""
        self.faults = faults
        self.seen = 0

    def applies(self, is_add: bool) -> bool:
        """Whether the request faults apply to this request (counting it towards ``after``)."""
        faults = self.faults
        if not faults.affects_requests:
            return False
        if faults.scope is Scope.ADD and not is_add:
            return False
        self.seen += 1
        return self.seen > faults.after


def corrupt_signature(signature: bytes) -> bytes:
    """The signature with its last byte flipped: still well-formed DER, no longer valid."""
    if not signature:
        return b"\x00"
    return signature[:-1] + bytes([signature[-1] ^ 0x01])
