"""The status service: one responder process's state and its background work.

Background tasks, each isolated so that a failure is logged and retried, never fatal:

* feed (every ``poll_interval``): drop cached answers the ledger changed, sign new responses for
  those serials at once, learn new issuers, pick up newly published CRLs;
* sweep (every ``sweep_interval``): sign missing and due responses (half-life refresh);
* identities (every ``identity_interval``): rescan and rotate delegated responder certificates;
* CRL publisher (every ``check_interval``): publish the CRLs that are due.

The ``*_once`` methods are what the loops call; tests call them directly with a frozen clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from ctstatus.status.cache import ResponseCache
from ctstatus.status.crl_publisher import CrlPublisher, Published
from ctstatus.status.crl_serving import CrlShelf
from ctstatus.status.db import load_issuers
from ctstatus.status.feed import LedgerFeed
from ctstatus.status.identities import IdentitySource
from ctstatus.status.issuers import IssuerIndex
from ctstatus.status.presign import Presigner, to_served
from ctstatus.status.refresher import Refresher, Signed
from ctstatus.status.responder import OcspResponder, ResponderSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSettings:
    validity: timedelta = timedelta(hours=96)
    hash_names: tuple[str, ...] = ("sha1", "sha256")
    refresher: bool = True
    poll_interval: float = 0.25
    sweep_interval: float = 30.0
    identity_interval: float = 300.0
    responder: ResponderSettings = field(default_factory=ResponderSettings)


class StatusService:
    """Responder, refresher, CRL shelf and publisher around one ledger."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime],
        identities: IdentitySource,
        settings: ServiceSettings = ServiceSettings(),
        *,
        publisher: CrlPublisher | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.identities = identities
        self.settings = settings
        self.issuers = IssuerIndex()
        self.cache = ResponseCache()
        self.feed = LedgerFeed(engine)
        self.presigner = Presigner(identities.identity, settings.validity)
        self.responder = OcspResponder(
            engine, clock, self.issuers, self.presigner, self.cache, settings.responder
        )
        self.refresher = Refresher(engine, self.presigner, self.issuers.by_id, settings.hash_names)
        self.crls = CrlShelf(engine)
        self.publisher = publisher
        self._tasks: list[asyncio.Task[None]] = []

    # ---------------------------------------------------------------------------- lifecycle

    def prepare(self) -> None:
        """Blocking start-up: issuers, the feed's position, signing identities, served CRLs."""
        self._reload_issuers()
        self.feed.start()
        self.refresh_identities()
        self.crls.reload()

    async def start(self) -> None:
        await asyncio.to_thread(self.prepare)
        loops: list[tuple[str, float, Callable[[], Awaitable[object]]]] = [
            ("feed", self.settings.poll_interval, self.poll_once),
            ("identities", self.settings.identity_interval, self._identities_once),
        ]
        if self.settings.refresher:
            loops.append(("sweep", self.settings.sweep_interval, self.sweep_all))
        if self.publisher is not None:
            loops.append(("crl", self.publisher.settings.check_interval, self.publish_once))
        for name, interval, step in loops:
            self._tasks.append(asyncio.create_task(self._loop(name, interval, step)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.responder.drain()
        self.identities.close()

    async def _loop(
        self, name: str, interval: float, step: Callable[[], Awaitable[object]]
    ) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("status %s task failed; retrying in %.1f s", name, interval)
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------------------- steps

    def _reload_issuers(self) -> None:
        for issuer in load_issuers(self.engine):
            if self.issuers.by_id(issuer.id) is None:
                self.issuers.add(issuer)

    def refresh_identities(self) -> None:
        now = self.clock()
        for issuer in list(self.issuers):
            self.identities.refresh(issuer, now)

    async def _identities_once(self) -> None:
        await asyncio.to_thread(self.refresh_identities)

    def _poll_sync(self) -> tuple[list[tuple[int, int]], bool, bool]:
        changes = self.feed.poll()
        keys = [(c.issuer_id, c.serial) for c in changes if c.serial is not None]
        new_issuer = any(c.serial is None for c in changes)
        if new_issuer:
            self._reload_issuers()
        crl_changed = self.crls.changed()
        if crl_changed:
            self.crls.reload()
        return list(dict.fromkeys(keys)), new_issuer, crl_changed

    async def poll_once(self) -> list[tuple[int, int]]:
        """Apply what the ledger journal says changed; return the (issuer, serial) keys."""
        keys, new_issuer, _ = await asyncio.to_thread(self._poll_sync)
        for key in keys:
            self.cache.invalidate(key)
        if new_issuer:
            await asyncio.to_thread(self.refresh_identities)
        if keys and self.settings.refresher:
            token = self.cache.token()
            signed = await asyncio.to_thread(self.refresher.changed, keys, self.clock())
            self._remember(signed, token, only_cached=False)
        self.cache.prune()
        return keys

    def _remember(self, signed: list[Signed], token: int, *, only_cached: bool) -> None:
        grace = self.settings.responder.grace
        for item in signed:
            key = (item.issuer_id, item.serial)
            if only_cached and key not in self.cache.entries:
                continue
            served = to_served(item.response, grace=grace)
            self.cache.fill(key, token, item.response.hash_algorithm, served)

    async def sweep_once(self) -> int:
        """One batch of missing or due responses; returns how many were signed."""
        now = self.clock()
        ids = [i.id for i in self.issuers if self.presigner.can_sign(i, now)]
        token = self.cache.token()
        signed = await asyncio.to_thread(self.refresher.sweep, now, ids)
        self._remember(signed, token, only_cached=True)
        return len(signed)

    async def sweep_all(self) -> int:
        """Sweep until everything is current, yielding to requests between batches."""
        total = 0
        while (count := await self.sweep_once()) > 0:
            total += count
            await asyncio.sleep(0)
        return total

    async def publish_once(self, *, force: bool = False) -> list[Published]:
        if self.publisher is None:
            return []
        published = await asyncio.to_thread(self.publisher.publish_due, self.clock(), force=force)
        if published:
            await asyncio.to_thread(self.crls.reload)
        return published
