"""Reconciliation on a schedule: the daemon settles orphans without a person.

``[reconcile]`` in watch.toml names the CA instance; every ``interval_seconds`` the watcher
compares its index with that ledger (:func:`ctstatus.watch.reconcile.reconcile`) and, with
``fix``, imports and revokes each orphan precertificate. Findings go through the watcher's
problems and alerts like any other. The ledger is opened for the run and closed after it, so a
ledger outage is one failed run (logged, retried next time), never a stopped watcher.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from ctstatus.clock import Clock, Every
from ctstatus.instance import Instance
from ctstatus.ledger import Ledger
from ctstatus.watch.config import ReconcileConfig
from ctstatus.watch.reconcile import ReconcileResult, abandon_reason, reconcile
from ctstatus.watch.store import WatchStore

log = logging.getLogger("ctstatus.watch")


def reconcile_with(
    instance: Instance,
    ledger: Ledger,
    store: WatchStore,
    clock: Clock,
    *,
    fix: bool,
    mmd: timedelta,
) -> ReconcileResult:
    """One reconciliation with the instance's ledger and policy."""
    issuance = instance.config.issuance
    return reconcile(
        ledger,
        store,
        clock(),
        mmd=mmd,
        crl_shards=instance.config.profiles.tls_server.crl_shards,
        abandon=issuance.abandon,
        reason=abandon_reason(issuance.abandon_reason),
        fix=fix,
    )


class ScheduledReconcile:
    """``[reconcile]`` of the daemon: :meth:`run_if_due` once round each loop."""

    def __init__(self, config: ReconcileConfig, base: Path, clock: Clock) -> None:
        self.config = config
        self.directory = (
            config.instance if config.instance.is_absolute() else base / config.instance
        )
        self.clock = clock
        self.every = Every(config.interval_seconds, clock)

    def run_if_due(self, store: WatchStore) -> ReconcileResult | None:
        if not self.every.due():
            return None
        instance = Instance.open(self.directory)
        ledger = instance.open_ledger(self.clock)
        try:
            result = reconcile_with(
                instance,
                ledger,
                store,
                self.clock,
                fix=self.config.fix,
                mmd=timedelta(seconds=self.config.mmd_seconds),
            )
        finally:
            ledger.close()
        log.info(
            "reconcile: %d orphan(s), %d fixed, %d unlogged",
            len(result.orphans),
            len(result.fixed),
            len(result.unlogged),
        )
        return result
