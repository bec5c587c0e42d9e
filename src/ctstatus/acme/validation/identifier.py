"""Which DNS names we accept as ACME identifiers, and which challenges each may use."""

from __future__ import annotations

CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")


def check_identifier(name: str) -> str:
    """The normalized name (lowercase, IDNA A-labels, optional leading ``*.``), or
    ValidationError("rejectedIdentifier") for IP addresses, bad syntax, a TLD not in the Public
    Suffix List, a name that is itself a public suffix (``com``, ``*.com``, ``*.co.uk``,
    ``github.io``), or a ``*`` anywhere but as the whole leftmost label."""
    raise NotImplementedError


def allowed_challenges(identifier: str) -> tuple[str, ...]:
    """The challenge types for a (checked) identifier: wildcards get dns-01 only (RFC 8555
    §7.1.3); the Validator also refuses http-01/tls-alpn-01 for a wildcard."""
    raise NotImplementedError
