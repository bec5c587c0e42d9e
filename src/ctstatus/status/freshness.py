"""How a responder learns *at once* that the ledger changed, before it trusts its memory.

* SQLite: ``PRAGMA data_version`` on a connection of our own changes whenever any other
  connection commits. Reading it costs about a microsecond, so the responder checks it before
  every lookup and catches up with the journal first when it moved: memory is then never behind
  the ledger (invariant 3), not even by one poll.
* PostgreSQL: a trigger on ``events`` (migration 0002) sends ``NOTIFY ctstatus_events`` at every
  commit that journals something; a listener wakes the feed at once. Memory then trails a commit
  by the time a notification takes to arrive (milliseconds), and by ``poll_ms`` at worst when
  notifications are lost (the listener reconnects, and the feed polls regardless).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Final

from sqlalchemy import Engine

log = logging.getLogger(__name__)

CHANNEL: Final = "ctstatus_events"


class SqliteDataVersion:
    """Tells whether another connection committed to the SQLite ledger since :meth:`mark`."""

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database
        if not database:
            raise ValueError("a SQLite ledger needs a file")
        self._conn = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._seen = -1

    def _version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def changed(self) -> bool:
        return self._version() != self._seen

    def mark(self) -> None:
        """Call before reading the journal: later commits will show as a change."""
        self._seen = self._version()

    def close(self) -> None:
        self._conn.close()


class ListenerState:
    """Whether the notification listener is connected (then polling can be rare)."""

    def __init__(self) -> None:
        self.connected = False


async def listen(
    engine: Engine, wake: asyncio.Event, state: ListenerState | None = None, *, retry: float = 5.0
) -> None:
    """Set ``wake`` on every ``NOTIFY ctstatus_events``; reconnect after failures. Runs forever."""
    state = state or ListenerState()
    import psycopg

    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, connect_timeout=10
            ) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                state.connected = True
                wake.set()  # anything committed while we were not listening
                async for _ in conn.notifies():
                    wake.set()
        except asyncio.CancelledError:
            state.connected = False
            raise
        except Exception as exc:
            log.warning("ledger notifications unavailable (%s); polling only", exc)
        state.connected = False
        await asyncio.sleep(retry)
