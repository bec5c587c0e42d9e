"""Decide when each CRL is due, build it from the ledger, and record it as published.

Per (issuer, shard) a CRL is published when: none exists yet; a serial was revoked that the last
one does not list (the service checks every ``check_interval``, well inside the configured
revocation delay); the last is older than ``republish`` (default 3.5 days, BR asks for 7); or its
URL or scope changed. CRLNumber is time-based (whole seconds in nanoseconds, like Boulder) and
strictly increasing even if the clock stalls. An entry stays until it has appeared on one CRL
issued after its certificate expired (BR §4.10.1, §7.2): an entry is kept while its notAfter is
not before the previous CRL's thisUpdate. Publishing one shard is one transaction under a lock,
so publishers on several hosts never publish the same number twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cryptography import x509
from sqlalchemy import Engine, insert

from ctstatus.keys.signer import Signer
from ctstatus.ledger import Issuer
from ctstatus.ledger.schema import crls
from ctstatus.status.answer import REVOKED_STATES
from ctstatus.status.crl import build_crl, entries_digest
from ctstatus.status.db import (
    CrlRow,
    RevokedEntry,
    latest_crl,
    lock_conn,
    revoked_in_shard,
    writing,
)

log = logging.getLogger(__name__)

_LOCK_BASE: Final = 0x63726C << 40  # "crl"


@dataclass(frozen=True)
class CrlTarget:
    """One CRL an issuer publishes: its shard number and the URL certificates name for it."""

    issuer: Issuer
    shard: int
    url: str
    partitioned: bool


@dataclass(frozen=True)
class CrlSettings:
    validity: timedelta = timedelta(days=7)
    republish: timedelta = timedelta(hours=84)
    revocation_delay: timedelta = timedelta(minutes=5)

    @property
    def check_interval(self) -> float:
        """Seconds between checks: a revocation is published well within the delay."""
        return min(30.0, self.revocation_delay.total_seconds() / 2)


@dataclass(frozen=True)
class Published:
    target: CrlTarget
    reason: str
    crl: CrlRow


class CrlPublisher:
    """Publishes the CRLs of ``targets()`` that are due, signing with ``signer_for(issuer)``."""

    def __init__(
        self,
        engine: Engine,
        targets: Callable[[], Sequence[CrlTarget]],
        signer_for: Callable[[Issuer], Signer | None],
        settings: CrlSettings,
    ) -> None:
        self._engine = engine
        self._targets = targets
        self._signer_for = signer_for
        self.settings = settings
        # (issuer id, shard) -> (id of its newest CRL, the serials that CRL lists)
        self._listed: dict[tuple[int, int], tuple[int, frozenset[int]]] = {}

    def publish_due(self, now: datetime, *, force: bool = False) -> list[Published]:
        """Publish every due CRL (all of them with ``force``); return what was published."""
        out = []
        for target in self._targets():
            signer = self._signer_for(target.issuer)
            if signer is None:
                continue
            published = self._publish(target, signer, now, force=force)
            if published is not None:
                log.info(
                    "published CRL %s number %d (%s, %d entries)",
                    target.url,
                    published.crl.crl_number,
                    published.reason,
                    published.crl.entries,
                )
                out.append(published)
        return out

    def _publish(
        self, target: CrlTarget, signer: Signer, now: datetime, *, force: bool
    ) -> Published | None:
        now = now.replace(microsecond=0)
        issuer = target.issuer
        with writing(self._engine) as conn:
            lock_conn(conn, _LOCK_BASE | (issuer.id << 20) | target.shard)
            last = latest_crl(conn, issuer.id, target.shard)
            entries = revoked_in_shard(
                conn,
                issuer.id,
                target.shard,
                states=sorted(REVOKED_STATES),
                expired_before=None if last is None else last.this_update,
            )
            reason = "forced" if force else self._why(target, last, entries, now)
            if reason is None:
                return None
            number = int(now.timestamp()) * 10**9
            if last is not None:
                number = max(number, last.crl_number + 1)
            next_update = now + self.settings.validity
            der = build_crl(
                issuer.certificate,
                signer,
                entries,
                number=number,
                this_update=now,
                next_update=next_update,
                shard_url=target.url if target.partitioned else None,
            )
            values: dict[str, Any] = {
                "issuer_id": issuer.id,
                "shard": target.shard,
                "partitioned": target.partitioned,
                "url": target.url,
                "crl_number": number,
                "this_update": now,
                "next_update": next_update,
                "entries": len(entries),
                "entries_sha256": entries_digest(entries),
                "crl_der": der,
                "created_at": now,
            }
            crl_id = conn.execute(insert(crls).values(**values).returning(crls.c.id)).scalar_one()
        self._listed[(issuer.id, target.shard)] = (crl_id, frozenset(e.serial for e in entries))
        return Published(target, reason, CrlRow(id=crl_id, **values))

    def _why(
        self,
        target: CrlTarget,
        last: CrlRow | None,
        entries: Sequence[RevokedEntry],
        now: datetime,
    ) -> str | None:
        if last is None:
            return "first"
        if last.url != target.url or last.partitioned != target.partitioned:
            return "scope changed"
        if now >= last.this_update + self.settings.republish:
            return "republish"
        if now >= last.next_update - self.settings.revocation_delay:
            return "expiring"
        listed = self._listed_by(last)
        if any(e.serial not in listed for e in entries):
            return "revocation"
        return None

    def _listed_by(self, crl: CrlRow) -> frozenset[int]:
        key = (crl.issuer_id, crl.shard)
        known = self._listed.get(key)
        if known is not None and known[0] == crl.id:
            return known[1]
        listed = frozenset(r.serial_number for r in x509.load_der_x509_crl(crl.crl_der))
        self._listed[key] = (crl.id, listed)
        return listed
