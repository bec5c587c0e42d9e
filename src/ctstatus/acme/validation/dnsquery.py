"""DNS look-ups for validation through dnspython, with failures turned into ACME problems.

Answers are never cached: each challenge and each CAA check asks afresh (BR §3.2.2.8 wants
CAA checked at issuance time, and a TXT record added a second ago must be seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.resolver

from .errors import ValidationError
from .settings import ValidationSettings

Status = Literal["ok", "nodata", "nxdomain"]


@dataclass(frozen=True)
class Answer:
    """What one query found: ``ok`` with records, ``nodata`` (name exists, no such records)
    or ``nxdomain`` (name does not exist)."""

    status: Status
    records: tuple[dns.rdata.Rdata, ...] = ()


def _nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    """``"127.0.0.1:5353"``, ``"[::1]:5353"``, ``"::1"`` or ``"127.0.0.1"`` (port 53)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return dns.nameserver.Do53Nameserver(host, int(port or 53))
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return dns.nameserver.Do53Nameserver(host, int(port))
    return dns.nameserver.Do53Nameserver(text, 53)


class Lookup:
    """One resolver for one Validator, built from its settings."""

    def __init__(self, settings: ValidationSettings) -> None:
        self.settings = settings
        self.description = ",".join(settings.dns_servers) if settings.dns_servers else "system"
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _get(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            if self.settings.dns_servers:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [_nameserver(s) for s in self.settings.dns_servers]
            else:
                try:
                    resolver = dns.asyncresolver.Resolver()
                except dns.resolver.NoResolverConfiguration as e:
                    raise ValidationError(
                        "dns", f"no DNS resolver configured (/etc/resolv.conf): {e}"
                    ) from e
            resolver.lifetime = self.settings.timeout_seconds
            resolver.timeout = self.settings.timeout_seconds
            resolver.cache = None
            self._resolver = resolver
        return self._resolver

    async def query(self, name: str, rdtype: str) -> Answer:
        """Records of ``rdtype`` at ``name`` (CNAMEs followed); ValidationError("dns") when the
        look-up itself fails (SERVFAIL, REFUSED, timeout, malformed answer)."""
        resolver = self._get()
        try:
            answer = await resolver.resolve(
                dns.name.from_text(name), rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return Answer("nxdomain")
        except dns.resolver.NoNameservers as e:
            raise ValidationError(
                "dns", f"{rdtype} look-up for {name} failed via {self.description}: {e}"
            ) from e
        except dns.exception.Timeout as e:
            raise ValidationError(
                "dns",
                f"{rdtype} look-up for {name} via {self.description} timed out after "
                f"{self.settings.timeout_seconds:g} s",
            ) from e
        except dns.exception.DNSException as e:
            raise ValidationError(
                "dns", f"{rdtype} look-up for {name} via {self.description} failed: {e}"
            ) from e
        if answer.rrset is None:
            return Answer("nodata")
        return Answer("ok", tuple(answer.rrset))
