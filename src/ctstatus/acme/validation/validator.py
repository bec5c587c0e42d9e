"""The three RFC 8555/8737 challenge checks and the RFC 8659/8657 CAA check."""

from __future__ import annotations

from ctstatus.clock import Clock, system_clock

from .record import ValidationRecord
from .settings import ValidationSettings


class Validator:
    """Runs challenges against the network allowed by ``settings``; every method raises
    ValidationError with a precise problem type or returns what it checked."""

    def __init__(self, settings: ValidationSettings, *, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock

    async def http_01(self, domain: str, token: str, key_authorization: str) -> ValidationRecord:
        """GET http://domain:http_port/.well-known/acme-challenge/<token>; body (trailing
        whitespace stripped) must equal key_authorization (RFC 8555 §8.3)."""
        raise NotImplementedError

    async def dns_01(self, domain: str, key_authorization: str) -> ValidationRecord:
        """A TXT record at _acme-challenge.<domain without "*."> must hold
        base64url(SHA-256(key_authorization)) (RFC 8555 §8.4)."""
        raise NotImplementedError

    async def tls_alpn_01(self, domain: str, key_authorization: str) -> ValidationRecord:
        """TLS to domain:tls_alpn_port with SNI and ALPN acme-tls/1; the certificate must have
        one dNSName SAN (domain) and a critical acmeIdentifier holding SHA-256(key_authorization)
        (RFC 8737)."""
        raise NotImplementedError

    async def check_caa(
        self, domain: str, *, wildcard: bool, account_uri: str, method: str
    ) -> None:
        """RFC 8659 tree climbing (CNAMEs followed by the resolver), issue vs issuewild, critical
        unknown tags, RFC 8657 accounturi and validationmethods. ValidationError("caa") when the
        records forbid us; ValidationError("dns") when a lookup fails (SERVFAIL, timeout): a
        failed lookup is a refusal, NXDOMAIN or no records is permission."""
        raise NotImplementedError
