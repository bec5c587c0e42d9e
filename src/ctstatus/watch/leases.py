"""Several watcher processes on one PostgreSQL database: the logs split between them by lease.

Each process is a member (a heartbeat row that expires) and takes its fair share of the logs,
``ceil(logs / live members)``: free or expired leases, claimed with ``SELECT … FOR UPDATE SKIP
LOCKED`` so two processes never take the same one; beyond its share it gives leases back, so a
process that joins gets logs at the others' next pass. A lease is renewed while its holder
follows the log (and between passes); a process that dies stops renewing, its leases expire
after ``lease_seconds`` and the others take the logs over, resuming from the committed cursor
(the cursor's compare-and-set in :meth:`WatchStore.commit_batch` refuses a writer that lost
its lease mid-batch). SQLite is single-process: no leases, every log followed, as before.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ctstatus.clock import Clock
from ctstatus.watch.store import WatchStore, leases, members


def new_holder() -> str:
    """This process's name in the lease table: host, pid and a random part (pids recur)."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """The leases of one watcher process."""

    def __init__(self, store: WatchStore, clock: Clock, *, seconds: float, holder: str) -> None:
        self.engine = store.engine
        self.clock = clock
        self.seconds = seconds
        self.holder = holder

    def _now(self) -> float:
        return self.clock().timestamp()

    def acquire(self, log_ids: Collection[str]) -> set[str]:
        """Heartbeat, then hold this process's share of ``log_ids``; the logs held now."""
        now = self._now()
        until = now + self.seconds
        wanted = sorted(log_ids)
        if not wanted:
            return set()
        with self.engine.begin() as conn:
            # 1. I am alive; the dead are forgotten.
            conn.execute(
                pg_insert(members)
                .values(holder=self.holder, expires_at=until)
                .on_conflict_do_update(index_elements=["holder"], set_={"expires_at": until})
            )
            conn.execute(sa.delete(members).where(members.c.expires_at < now))
            live = int(conn.scalar(sa.select(sa.func.count()).select_from(members)) or 1)
            share = math.ceil(len(wanted) / max(live, 1))
            # 2. Every log has a lease row (free at first).
            conn.execute(
                pg_insert(leases)
                .values([{"log_id": i, "holder": None, "expires_at": 0.0} for i in wanted])
                .on_conflict_do_nothing(index_elements=["log_id"])
            )
            # 3. Mine, renewed; beyond my share, given back.
            mine = sorted(
                conn.scalars(
                    sa.select(leases.c.log_id)
                    .where(leases.c.log_id.in_(wanted), leases.c.holder == self.holder)
                    .with_for_update()
                )
            )
            keep, give = mine[:share], mine[share:]
            if give:
                conn.execute(
                    sa.update(leases)
                    .where(leases.c.log_id.in_(give), leases.c.holder == self.holder)
                    .values(holder=None, expires_at=0.0)
                )
            # 4. Free or expired ones up to my share, skipping those another process is taking.
            free: list[str] = []
            if len(keep) < share:
                free = list(
                    conn.scalars(
                        sa.select(leases.c.log_id)
                        .where(
                            leases.c.log_id.in_(wanted),
                            sa.or_(leases.c.holder.is_(None), leases.c.expires_at < now),
                        )
                        .order_by(leases.c.log_id)
                        .limit(share - len(keep))
                        .with_for_update(skip_locked=True)
                    )
                )
            held = keep + free
            conn.execute(
                sa.update(leases)
                .where(leases.c.log_id.in_(held))
                .values(holder=self.holder, expires_at=until)
            )
        return set(held)

    def renew(self, log_ids: Collection[str]) -> set[str]:
        """Extend the leases still mine (and my heartbeat); the ones I still hold."""
        until = self._now() + self.seconds
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(members).where(members.c.holder == self.holder).values(expires_at=until)
            )
            if not log_ids:
                return set()
            return set(
                conn.scalars(
                    sa.update(leases)
                    .where(leases.c.log_id.in_(sorted(log_ids)), leases.c.holder == self.holder)
                    .values(expires_at=until)
                    .returning(leases.c.log_id)
                )
            )

    def release(self) -> None:
        """Give every lease back (a clean stop: the others take over at once)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(leases)
                .where(leases.c.holder == self.holder)
                .values(holder=None, expires_at=0.0)
            )
            conn.execute(sa.delete(members).where(members.c.holder == self.holder))
