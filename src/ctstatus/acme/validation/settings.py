"""What the validator may connect to and ask; tests and the demo narrow it to loopback."""

from __future__ import annotations

import ipaddress
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

    def __post_init__(self) -> None:
        """Refuse settings that would only fail later, at the first challenge."""
        for pattern, address in self.resolve.items():
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(
                    f"resolve[{pattern!r}] = {address!r} is not an IP address "
                    "(the port comes from http_port / tls_alpn_port)"
                ) from None
        for server in self.dns_servers:
            host = server[1:].partition("]")[0] if server.startswith("[") else server
            port = "53"
            if server.startswith("["):
                port = server.partition("]:")[2] or "53"
            elif server.count(":") == 1:
                host, _, port = server.partition(":")
            try:
                ipaddress.ip_address(host)
                if not 0 < int(port) < 65536:
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"dns_servers entry {server!r} is not IP, IP:PORT or [IPv6]:PORT"
                ) from None
        for name in ("http_port", "https_port", "tls_alpn_port"):
            value = getattr(self, name)
            if not 0 < value < 65536:
                raise ValueError(f"{name} = {value} is not a TCP port")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds = {self.timeout_seconds} must be positive")
        if self.max_redirects < 0 or self.max_body_bytes < 1:
            raise ValueError("max_redirects must be >= 0 and max_body_bytes >= 1")
