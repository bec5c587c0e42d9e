"""Sign the response a serial's ledger record calls for, ready to store and to serve.

Used when a status changes (the feed tells the refresher), by the refresher before half-life, by
the responder on a cache miss, by ``ctstatus revoke`` and by issuance, which may store the first
response in the same transaction as ``precert_signed`` (:func:`ctstatus.status.db.store_responses`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from ctstatus.ledger import Issuer, SerialRecord
from ctstatus.status.answer import answer_for
from ctstatus.status.cache import Served
from ctstatus.status.db import StoredResponse
from ctstatus.status.http import OCSP_RESPONSE, cacheable_headers
from ctstatus.status.issuers import cert_id_hashes
from ctstatus.status.ocsp_response import (
    CertId,
    ResponderIdentity,
    sign_response,
    validity_window,
)

LATEST_REFRESH: Final = timedelta(days=4) - timedelta(hours=1)
"""BR §4.9.9: for validity >= 16 h, a new response no later than 4 days after thisUpdate."""

IdentityFor = Callable[[Issuer, datetime], ResponderIdentity | None]
"""Who signs for an issuer at a given time (None: nobody here can)."""


class NoSigner(Exception):
    """No key is available here to sign for this issuer."""


class Presigner:
    """Builds and signs responses from ledger records, with the configured validity."""

    def __init__(self, identity_for: IdentityFor, validity: timedelta) -> None:
        self._identity_for = identity_for
        self.validity = validity

    def can_sign(self, issuer: Issuer, now: datetime) -> bool:
        return self._identity_for(issuer, now) is not None

    def sign(
        self, issuer: Issuer, record: SerialRecord, hash_name: str, now: datetime
    ) -> StoredResponse:
        """The response for ``record`` (an answered state) with a ``hash_name`` CertID."""
        identity = self._identity_for(issuer, now)
        if identity is None:
            raise NoSigner(f"no OCSP signing key for issuer {issuer.name} in this process")
        answer = answer_for(record)
        this_update, next_update = validity_window(now, self.validity, identity)
        hashes = cert_id_hashes(issuer, hash_name)
        der = sign_response(
            CertId(hash_name, hashes.name_hash, hashes.key_hash, record.serial),  # type: ignore[arg-type]
            answer,
            identity,
            this_update=this_update,
            next_update=next_update,
        )
        return StoredResponse(
            serial_id=record.id,
            hash_algorithm=hash_name,
            issuer_id=issuer.id,
            serial_state=record.state,
            this_update=this_update,
            next_update=next_update,
            refresh_at=refresh_time(this_update, next_update),
            responder=identity.label,
            response_der=der,
        )


def refresh_time(this_update: datetime, next_update: datetime) -> datetime:
    """When to re-sign: at half-life, and never later than 4 days after thisUpdate (BR §4.9.9)."""
    return this_update + min((next_update - this_update) / 2, LATEST_REFRESH)


def to_served(stored: StoredResponse, *, grace: float = 60.0) -> Served:
    """What memory keeps of a stored response: bytes, fixed headers, and when it goes stale."""
    next_update = stored.next_update.timestamp()
    headers = cacheable_headers(
        OCSP_RESPONSE,
        stored.response_der,
        last_modified=stored.this_update.timestamp(),
        expires=next_update,
    )
    return Served(
        der=stored.response_der,
        headers=headers,
        etag=dict(headers)[b"etag"],
        next_update=next_update,
        stale_at=min(stored.refresh_at.timestamp() + grace, next_update - grace),
        serial_state=stored.serial_state,
    )
