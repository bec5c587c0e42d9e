"""In-memory answers of one responder process, kept honest by the ledger feed.

An entry is filled from a ledger read and dropped when the feed reports an event for its serial.
A read that raced with a change must not leave a stale entry behind, so fills carry a *token*
taken before the read: if the serial was invalidated after the token was taken, the fill is
refused (the request that read it is still answered: that was the ledger's state when it read).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ctstatus.ledger import SerialState
from ctstatus.status.http import Headers

Key = tuple[int, int]
"""(issuer_id, serial)"""

DEFAULT_MAX_ENTRIES: Final = 200_000


@dataclass(slots=True)
class Served:
    """A signed response ready to send: DER, fixed headers, and when to stop using it."""

    der: bytes
    headers: Headers
    etag: bytes
    next_update: float
    stale_at: float
    """Epoch seconds after which memory must not serve it (its refresh time has passed)."""
    serial_state: SerialState
    full_headers: Headers | None = None
    """``headers`` plus the usual Cache-Control, built once (while max-age is not capped)."""


@dataclass(slots=True)
class Entry:
    """What one responder knows about one serial: unauthorized, or responses by CertID hash."""

    unauthorized: bool = False
    responses: dict[str, Served] = field(default_factory=dict)


class ResponseCache:
    """Bounded (FIFO eviction) map of (issuer_id, serial) -> Entry with race-safe fills."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        remember: float = 120.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.entries: dict[Key, Entry] = {}
        self._max = max_entries
        self._remember = remember
        self._monotonic = monotonic
        self._seq = 0
        self._changed: dict[Key, tuple[int, float]] = {}
        self._forgotten_seq = 0

    def token(self) -> int:
        """Take before reading the ledger; hand to :meth:`fill` with what was read."""
        return self._seq

    def invalidate(self, key: Key) -> None:
        """The ledger changed for ``key``: drop it and refuse fills read before now."""
        self._seq += 1
        self.entries.pop(key, None)
        self._changed[key] = (self._seq, self._monotonic())

    def clear(self) -> None:
        """Forget everything (e.g. the feed lost track); later fills start over."""
        self._seq += 1
        self._forgotten_seq = self._seq
        self.entries.clear()
        self._changed.clear()

    def _fresh(self, key: Key, token: int) -> bool:
        changed = self._changed.get(key)
        return token >= self._forgotten_seq and (changed is None or changed[0] <= token)

    def fill_unauthorized(self, key: Key, token: int) -> None:
        if self._fresh(key, token):
            self._put(key, Entry(unauthorized=True))

    def fill(self, key: Key, token: int, hash_name: str, served: Served) -> None:
        """Remember ``served`` for ``key`` under ``hash_name`` unless ``key`` changed since."""
        if not self._fresh(key, token):
            return
        entry = self.entries.get(key)
        if entry is None or entry.unauthorized:
            entry = Entry()
            self._put(key, entry)
        entry.responses[hash_name] = served

    def _put(self, key: Key, entry: Entry) -> None:
        self.entries[key] = entry
        while len(self.entries) > self._max:
            del self.entries[next(iter(self.entries))]

    def prune(self) -> None:
        """Forget invalidations older than ``remember`` (fills older than that are refused)."""
        horizon = self._monotonic() - self._remember
        old = [k for k, (_, at) in self._changed.items() if at < horizon]
        for key in old:
            seq, _ = self._changed.pop(key)
            self._forgotten_seq = max(self._forgotten_seq, seq)
