"""Which DNS names we accept as ACME identifiers, and which challenges each may use.

The names themselves are judged by :mod:`ctstatus.ca.names` (the Public Suffix List, IDNA
2008), the same rule the CA applies to every request.
"""

from __future__ import annotations

from ctstatus.ca.names import NameRefused, registrable_name

from .errors import ValidationError

CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")
WILDCARD_CHALLENGES = ("dns-01",)


def check_identifier(name: str) -> str:
    """The normalized identifier, or ValidationError("rejectedIdentifier") saying why
    (:func:`ctstatus.ca.names.registrable_name`)."""
    try:
        return registrable_name(name)
    except NameRefused as refused:
        raise ValidationError("rejectedIdentifier", str(refused)) from None


def is_wildcard(identifier: str) -> bool:
    """Whether a checked identifier is a wildcard (``*.example.com``)."""
    return identifier.startswith("*.")


def base_domain(identifier: str) -> str:
    """The name without its ``*.``: where dns-01 and CAA look for a wildcard."""
    return identifier[2:] if is_wildcard(identifier) else identifier


def allowed_challenges(identifier: str) -> tuple[str, ...]:
    """The challenge types for a (checked) identifier: wildcards get dns-01 only (RFC 8555
    §7.1.3); the Validator also refuses http-01/tls-alpn-01 for a wildcard."""
    return WILDCARD_CHALLENGES if is_wildcard(identifier) else CHALLENGES
