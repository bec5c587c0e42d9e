"""What a successful validation checked, kept for the audit log (BR §3.2.2.4 asks for it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ValidationRecord:
    """One validation's evidence: method, name, when, which resolver, and for http-01 and
    tls-alpn-01 the URLs fetched and the addresses resolved and used."""

    method: str
    domain: str
    validated_at: datetime
    resolver: str
    urls: tuple[str, ...] = ()
    addresses_resolved: tuple[str, ...] = ()
    address_used: str | None = None
    port: int | None = None
    query_name: str | None = None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict for the audit log and the challenge's validationRecord."""
        return {
            "method": self.method,
            "domain": self.domain,
            "validated_at": self.validated_at.isoformat(),
            "resolver": self.resolver,
            "urls": list(self.urls),
            "addresses_resolved": list(self.addresses_resolved),
            "address_used": self.address_used,
            "port": self.port,
            "query_name": self.query_name,
        }
