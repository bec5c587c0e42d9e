"""Keep a current pre-signed response for every answered serial (BR §4.9.9 cadence).

Two triggers: the feed reports a status change (sign at once, so a revocation is answered from
the cache within a poll), and a periodic sweep for responses that are missing, were signed for an
older state, or have reached their refresh time (half-life). Several responders may share one
PostgreSQL ledger: a sweep runs only under an advisory lock, so they take turns instead of
signing everything twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Engine

from ctstatus.ledger import Issuer, SerialRecord
from ctstatus.status.answer import ANSWERED_STATES
from ctstatus.status.db import (
    StoredResponse,
    records_by_serials,
    refresh_candidates,
    turn,
    upsert_responses,
)
from ctstatus.status.presign import NoSigner, Presigner

log = logging.getLogger(__name__)

SWEEP_LOCK: Final = 0x6F637370_7265  # "ocsp-re": one sweeping refresher at a time (PostgreSQL)


@dataclass(frozen=True)
class Signed:
    """A freshly signed and stored response, for the caller to put in its cache."""

    issuer_id: int
    serial: int
    response: StoredResponse


class Refresher:
    """Signs and stores responses; returns what it signed so responders can cache it."""

    def __init__(
        self,
        engine: Engine,
        presigner: Presigner,
        issuer_by_id: Callable[[int], Issuer | None],
        hash_names: Sequence[str],
        *,
        batch: int = 200,
    ) -> None:
        self._engine = engine
        self._presigner = presigner
        self._issuer_by_id = issuer_by_id
        self.hash_names = tuple(hash_names)
        self._batch = batch

    def _sign(self, records: Sequence[tuple[SerialRecord, str]], now: datetime) -> list[Signed]:
        out = []
        for record, hash_name in records:
            issuer = self._issuer_by_id(record.issuer_id)
            if issuer is None or record.state not in ANSWERED_STATES:
                continue
            try:
                response = self._presigner.sign(issuer, record, hash_name, now)
            except NoSigner:
                continue
            out.append(Signed(record.issuer_id, record.serial, response))
        upsert_responses(self._engine, [s.response for s in out])
        return out

    def changed(self, keys: Sequence[tuple[int, int]], now: datetime) -> list[Signed]:
        """Sign for serials whose status just changed (from the feed)."""
        signed: list[Signed] = []
        for start in range(0, len(keys), self._batch):
            records = records_by_serials(self._engine, keys[start : start + self._batch])
            wanted = [(r, h) for r in records if r.not_after > now for h in self.hash_names]
            signed += self._sign(wanted, now)
        return signed

    def sweep(self, now: datetime, issuer_ids: Sequence[int]) -> list[Signed]:
        """One batch of missing, outdated or due responses; empty when all are current."""
        if not issuer_ids:
            return []
        with turn(self._engine, SWEEP_LOCK) as mine:
            if not mine:
                return []  # another responder is sweeping
            candidates = refresh_candidates(
                self._engine,
                now=now,
                hash_algorithms=self.hash_names,
                states=sorted(ANSWERED_STATES),
                limit=self._batch,
                issuer_ids=issuer_ids,
            )
            return self._sign([(c.record, c.hash_algorithm) for c in candidates], now)
