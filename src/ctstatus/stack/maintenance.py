"""The long-running CA's own housekeeping, on the injected clock: ``recover`` (serials a crash
left mid-issuance, once older than ``[issuance] recover_grace_seconds``, which no live attempt
outlives) and ``reconcile --fix`` (orphans: precertificates in CT the ledger cannot answer
for), so neither waits for a person. Each job failing is logged and retried at its next
interval; it never stops the process.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from ctstatus.ca.issuance import AbandonPolicy
from ctstatus.ca.recover import Recovered, recover
from ctstatus.ca.service import abandon_reason
from ctstatus.clock import Clock, Every
from ctstatus.instance import Instance
from ctstatus.ledger import Ledger
from ctstatus.watch.reconcile import ReconcileResult
from ctstatus.watch.scheduled import reconcile_with
from ctstatus.watch.store import WatchStore

log = logging.getLogger("ctstatus.up")
ACTOR_RECOVER = "up:recover"


@dataclass
class Tick:
    """What one look at the schedule did (None: the job was not due, or failed)."""

    recovered: list[Recovered] | None = None
    reconciled: ReconcileResult | None = None
    errors: list[str] = field(default_factory=list)


class Maintenance:
    """Recover every ``recover_seconds``, reconcile every ``reconcile_seconds``."""

    def __init__(
        self,
        instance: Instance,
        ledger: Ledger,
        store: WatchStore | None,
        clock: Clock,
        *,
        recover_seconds: float = 60.0,
        reconcile_seconds: float = 300.0,
        mmd: timedelta = timedelta(days=1),
    ) -> None:
        self.instance = instance
        self.ledger = ledger
        self.store = store
        self.clock = clock
        self.mmd = mmd
        self.recover_every = Every(recover_seconds, clock)
        self.reconcile_every = Every(reconcile_seconds, clock)

    def tick(self) -> Tick:
        """Run each job that is due (one linear pass: 1. recover, 2. reconcile)."""
        done = Tick()
        issuance = self.instance.config.issuance
        # 1. Settle stale rows first: reconcile then sees them answered, not orphaned.
        if self.recover_every.due():
            try:
                done.recovered = recover(
                    self.ledger,
                    self.clock,
                    policy=AbandonPolicy(issuance.abandon),
                    reason=abandon_reason(self.instance),
                    grace=timedelta(seconds=issuance.recover_grace_seconds),
                    actor=ACTOR_RECOVER,
                )
                if done.recovered:
                    log.warning("recover: settled %d serial(s)", len(done.recovered))
            except Exception as exc:
                log.exception("scheduled recover failed; retrying at the next interval")
                done.errors.append(f"recover: {exc}")
        # 2. Orphans: in CT, not answerable by the ledger -> imported and revoked.
        if self.store is not None and self.reconcile_every.due():
            try:
                done.reconciled = reconcile_with(
                    self.instance, self.ledger, self.store, self.clock, fix=True, mmd=self.mmd
                )
            except Exception as exc:
                log.exception("scheduled reconcile failed; retrying at the next interval")
                done.errors.append(f"reconcile: {exc}")
        return done

    async def run_forever(self, look_seconds: float = 5.0) -> None:
        while True:
            self.tick()
            await asyncio.sleep(look_seconds)
