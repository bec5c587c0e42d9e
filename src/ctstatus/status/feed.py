"""Tail the ledger's event journal: how every responder learns within a poll that a status changed.

Each responder keeps answers in memory; this feed is what keeps them honest (invariant 3). Every
state change writes an event in the same transaction, so reading new events tells us which
cached answers to drop. One subtlety: on PostgreSQL, event ids come from a sequence and
transactions commit in any order, so id 41 can become visible after id 42 was read. Ids skipped
over are therefore remembered as *gaps* and asked for again on every poll until they appear or
``gap_timeout`` passes (a rolled-back transaction leaves a gap forever).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Engine, func, or_, select

from ctstatus.ledger.schema import events, serials
from ctstatus.status.db import reading

MAX_GAPS: Final = 5000


@dataclass(frozen=True, slots=True)
class Change:
    """One journal event: ``serial`` is None for issuer events (``issuer_added``)."""

    event_id: int
    issuer_id: int
    serial: int | None
    action: str


class LedgerFeed:
    """Reads journal events newer than the last poll, including late-committed ones."""

    def __init__(
        self,
        engine: Engine,
        *,
        gap_timeout: float = 60.0,
        batch: int = 5000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._gap_timeout = gap_timeout
        self._batch = batch
        self._monotonic = monotonic
        self._max_seen: int | None = None
        self._gaps: dict[int, float] = {}

    def start(self) -> None:
        """Begin at the journal's current end: older changes are already in the ledger's state."""
        with reading(self._engine) as conn:
            self._max_seen = int(conn.scalar(select(func.coalesce(func.max(events.c.id), 0))) or 0)

    def poll(self) -> list[Change]:
        """Events committed since the last poll (in id order, gaps filled late included)."""
        if self._max_seen is None:
            self.start()
        assert self._max_seen is not None
        now = self._monotonic()
        self._gaps = {i: t for i, t in self._gaps.items() if now - t < self._gap_timeout}
        condition = events.c.id > self._max_seen
        if self._gaps:
            condition = or_(condition, events.c.id.in_(sorted(self._gaps)))
        query = (
            select(events.c.id, events.c.issuer_id, events.c.action, serials.c.serial)
            .select_from(events.outerjoin(serials, serials.c.id == events.c.serial_id))
            .where(condition)
            .order_by(events.c.id)
            .limit(self._batch)
        )
        with reading(self._engine) as conn:
            rows = conn.execute(query).all()
        changes = []
        for event_id, issuer_id, action, serial_hex in rows:
            self._gaps.pop(event_id, None)
            if event_id > self._max_seen:
                for missing in range(self._max_seen + 1, min(event_id, self._max_seen + MAX_GAPS)):
                    self._gaps[missing] = now
                self._max_seen = event_id
            serial = None if serial_hex is None else int(serial_hex, 16)
            changes.append(Change(event_id, issuer_id, serial, action))
        if len(self._gaps) > MAX_GAPS:
            for oldest in sorted(self._gaps)[: len(self._gaps) - MAX_GAPS]:
                del self._gaps[oldest]
        return changes

    @property
    def max_seen(self) -> int:
        """The highest journal id read so far."""
        return self._max_seen or 0

    @property
    def gaps(self) -> int:
        """How many skipped ids are still awaited (for metrics and tests)."""
        return len(self._gaps)
