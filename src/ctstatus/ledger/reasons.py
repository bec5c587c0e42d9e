"""Revocation reasons the ledger accepts: exactly the CRL reason codes the Baseline Requirements
allow for TLS certificates (BR §7.2.2). certificateHold (6) is forbidden, so it cannot be stored."""

from __future__ import annotations

from enum import IntEnum


class RevocationReason(IntEnum):
    """RFC 5280 CRLReason codes permitted by BR §7.2.2 (the database CHECKs the same list)."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    PRIVILEGE_WITHDRAWN = 9

    @property
    def rfc5280_name(self) -> str:
        """The RFC 5280 name (``keyCompromise``): the one spelling the CLI, API and journal use."""
        head, *rest = self.name.lower().split("_")
        return head + "".join(part.capitalize() for part in rest)
