"""The status service: one responder process's state and its background work.

Background tasks, each isolated so that a failure is logged and retried, never fatal:

* feed (every ``poll_interval``, and at once on a PostgreSQL notification): drop cached answers
  the ledger changed, sign new responses for those serials at once, learn new issuers, pick up
  newly published CRLs (on SQLite the responder also catches up before every lookup);
* sweep (every ``sweep_interval``): sign missing and due responses (half-life refresh);
* identities (every ``identity_interval``): rescan and rotate delegated responder certificates;
* CRL publisher (every ``check_interval``): publish the CRLs that are due.

The ``*_once`` methods are what the loops call; tests call them directly with a frozen clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Engine

from ctstatus.errors import UserError
from ctstatus.status.cache import ResponseCache
from ctstatus.status.crl_publisher import CrlPublisher, Published
from ctstatus.status.crl_serving import CrlShelf
from ctstatus.status.db import load_issuers
from ctstatus.status.feed import Change, LedgerFeed
from ctstatus.status.freshness import ListenerState, SqliteDataVersion, listen
from ctstatus.status.identities import IdentitySource
from ctstatus.status.issuers import IssuerIndex
from ctstatus.status.presign import Presigner, to_served
from ctstatus.status.refresher import Refresher, Signed
from ctstatus.status.responder import OcspResponder, ResponderSettings

log = logging.getLogger(__name__)

NOTIFIED_POLL_INTERVAL: Final = 5.0
"""Seconds between safety polls of the journal while PostgreSQL notifications arrive."""


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
        self._gate = SqliteDataVersion(engine) if engine.dialect.name == "sqlite" else None
        self._wake = asyncio.Event()
        self._sign_wake = asyncio.Event()
        self.applied_through = 0
        """The journal id up to which memory has applied changes (for tests and metrics)."""
        self._to_sign: dict[tuple[int, int], None] = {}
        self._new_issuer = False
        self._checked: asyncio.AbstractEventLoop | None = None
        self._sideline_due = True
        self._listener = ListenerState()
        self.responder = OcspResponder(
            engine,
            clock,
            self.issuers,
            self.presigner,
            self.cache,
            settings.responder,
            catch_up=self.catch_up if self._gate is not None else None,
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
            ("identities", self.settings.identity_interval, self._identities_once),
        ]
        self._tasks.append(asyncio.create_task(self._feed_loop()))
        self._tasks.append(asyncio.create_task(self._sign_loop()))
        if self.engine.dialect.name == "postgresql":
            self._tasks.append(asyncio.create_task(listen(self.engine, self._wake, self._listener)))
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
        if self._gate is not None:
            self._gate.close()

    async def _feed_loop(self) -> None:
        """Poll every ``poll_interval``, or at once when a notification says something changed.

        Signing runs in a task of its own, so a batch of signatures never delays the next read
        of the journal (which is what keeps memory current).
        """
        while True:
            try:
                if await self.apply_changes():
                    self._sign_wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("status feed task failed; retrying")
            # While notifications flow, polling is only a safety net.
            interval = self.settings.poll_interval
            if self._listener.connected:
                interval = max(interval, NOTIFIED_POLL_INTERVAL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()

    async def _sign_loop(self) -> None:
        while True:
            await self._sign_wake.wait()
            self._sign_wake.clear()
            try:
                await self.sign_changed()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("status signing task failed")

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
        """Prepare or rotate each issuer's signer; one issuer's failure does not stop the rest."""
        now = self.clock()
        for issuer in list(self.issuers):
            try:
                self.identities.refresh(issuer, now)
            except UserError as exc:
                log.error("cannot prepare the OCSP signer of %s: %s", issuer.name, exc)

    async def _identities_once(self) -> None:
        await asyncio.to_thread(self.refresh_identities)

    def catch_up(self) -> None:
        """SQLite, on the event loop: if anyone committed since we last read the journal, read
        it now and drop what changed, so memory never answers for an older ledger state.

        Checked once per event-loop iteration, before the first lookup in it: uvicorn runs each
        request in a task that starts in the iteration after its bytes were read, so every
        request answered in an iteration arrived before that iteration's check.
        """
        loop = asyncio.get_running_loop()
        if self._checked is loop:
            return
        self._checked = loop
        loop.call_soon(self._uncheck)
        gate = self._gate
        if gate is not None and gate.changed():
            gate.mark()
            self._apply(self.feed.poll())
            self._sideline_due = True  # the feed loop reloads issuers and CRLs
            self.applied_through = self.feed.max_seen

    def _uncheck(self) -> None:
        self._checked = None

    def _apply(self, changes: list[Change]) -> None:
        for change in changes:
            if change.serial is None:
                self._new_issuer = True
                continue
            key = (change.issuer_id, change.serial)
            self.cache.invalidate(key)
            self._to_sign[key] = None

    def _poll_sideline(self, new_issuer: bool) -> None:
        if new_issuer:
            self._reload_issuers()
            self.refresh_identities()
        if self.crls.changed():
            self.crls.reload()

    async def apply_changes(self) -> list[tuple[int, int]]:
        """Drop what the ledger journal says changed; return the (issuer, serial) keys.

        On SQLite nothing is read unless the database changed (``PRAGMA data_version``): a read
        on the event loop would stall every request in flight, which shows in tail latency.
        """
        gate = self._gate
        if gate is not None:
            if gate.changed():
                gate.mark()
                self._apply(self.feed.poll())  # local and fast, and ordered with catch_up
                self._sideline_due = True
        else:
            self._apply(await asyncio.to_thread(self.feed.poll))
            self._sideline_due = True
        if self._sideline_due:
            self._sideline_due = False
            new_issuer, self._new_issuer = self._new_issuer, False
            await asyncio.to_thread(self._poll_sideline, new_issuer)
        self.cache.prune()
        self.applied_through = self.feed.max_seen
        return list(self._to_sign)

    async def sign_changed(self) -> int:
        """Sign (and keep in memory) the responses of serials whose status changed."""
        keys, self._to_sign = list(self._to_sign), {}
        if not keys or not self.settings.refresher:
            return 0
        token = self.cache.token()
        signed = await asyncio.to_thread(self.refresher.changed, keys, self.clock())
        self._remember(signed, token, only_cached=False)
        return len(signed)

    async def poll_once(self) -> list[tuple[int, int]]:
        """:meth:`apply_changes` then :meth:`sign_changed` (the loops run them separately)."""
        keys = await self.apply_changes()
        await self.sign_changed()
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
        if total:
            log.info("signed %d OCSP responses (missing, outdated or due)", total)
        return total

    async def publish_once(self, *, force: bool = False) -> list[Published]:
        if self.publisher is None:
            return []
        published = await asyncio.to_thread(self.publisher.publish_due, self.clock(), force=force)
        if published:
            await asyncio.to_thread(self.crls.reload)
        return published
