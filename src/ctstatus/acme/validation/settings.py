"""What the validator may connect to and ask; tests and the demo narrow it to loopback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class ValidationSettings:
    """Where validation traffic goes.

    ``dns_servers``: ``"127.0.0.1:5353"`` or ``"127.0.0.1"`` (port 53); empty means the system
    resolver (/etc/resolv.conf). ``resolve``: name or ``"*.suffix"`` -> IP address, used instead
    of A/AAAA lookups for http-01 and tls-alpn-01 connections (like curl --resolve).
    ``http_port``/``https_port``/``tls_alpn_port``: the ports http-01 fetches from and redirects
    may go to, and tls-alpn-01 connects to. ``loopback_only``: connect only to 127.0.0.0/8 and
    ::1 (tests, demo); otherwise only to globally routable addresses (never private, loopback or
    reserved ones). ``caa_identities``: our issuer domain names for CAA issue/issuewild.
    """

    dns_servers: tuple[str, ...] = ()
    resolve: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    http_port: int = 80
    https_port: int = 443
    tls_alpn_port: int = 443
    loopback_only: bool = False
    timeout_seconds: float = 10.0
    caa_identities: tuple[str, ...] = ()
    max_redirects: int = 10
    max_body_bytes: int = 8192
