"""The OCSP responder: from request bytes to response bytes and headers, answering from the ledger.

Hot path: parse the request, find the issuer in memory, make sure memory has seen every ledger
change (``catch_up``: a cheap check, see ``freshness.py``), find the serial's answer in memory,
send precomputed bytes. On a miss: one read of the serial and its
stored responses; a stored response is served only if it was signed for a state with the same
answer as the ledger's current one and its refresh time has not passed; otherwise a new one is
signed live, with at most ``live_signing_limit`` signings at a time (beyond that: ``tryLater``),
and stored for the other responders. Concurrent misses for the same serial share one read.

Whatever a client sends, the answer is an OCSP response -- an error status if need be -- and
never an exception: a database outage is ``tryLater``, an unexpected error ``internalError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Engine

from ctstatus.clock import system_clock
from ctstatus.errors import UserError
from ctstatus.ledger import Issuer
from ctstatus.status import ocsp_response
from ctstatus.status.answer import answer_for, same_answer
from ctstatus.status.cache import Key, ResponseCache, Served
from ctstatus.status.db import StoredResponse, serial_with_responses, upsert_responses
from ctstatus.status.http import OCSP_RESPONSE, Headers, cache_control, uncacheable
from ctstatus.status.issuers import IssuerIndex
from ctstatus.status.ocsp_request import (
    CertIdQuery,
    MalformedRequest,
    UnsupportedHash,
    parse_request,
)
from ctstatus.status.presign import NoSigner, Presigner, to_served

log = logging.getLogger(__name__)

Reply = tuple[bytes, Headers]
PARSED_MEMO: Final = 65_536
"""How many distinct request encodings to remember parsed (oldest forgotten first)."""

UNAUTHORIZED: Final[Reply] = (
    ocsp_response.UNAUTHORIZED,
    uncacheable(OCSP_RESPONSE, ocsp_response.UNAUTHORIZED),
)
MALFORMED: Final[Reply] = (
    ocsp_response.MALFORMED_REQUEST,
    uncacheable(OCSP_RESPONSE, ocsp_response.MALFORMED_REQUEST),
)
TRY_LATER: Final[Reply] = (
    ocsp_response.TRY_LATER,
    uncacheable(OCSP_RESPONSE, ocsp_response.TRY_LATER),
)
INTERNAL_ERROR: Final[Reply] = (
    ocsp_response.INTERNAL_ERROR,
    uncacheable(OCSP_RESPONSE, ocsp_response.INTERNAL_ERROR),
)


@dataclass(frozen=True, slots=True)
class Miss:
    """A request memory could not answer: :meth:`OcspResponder.resolve` reads the ledger."""

    issuer: Issuer
    query: CertIdQuery
    key: Key


@dataclass(frozen=True)
class ResponderSettings:
    http_max_age: int = 3600
    live_signing_limit: int = 64
    grace: float = 60.0
    """Seconds a response may still be served from memory after its refresh time."""


class OcspResponder:
    """Answers OCSP requests for the issuers in ``issuers`` from the ledger behind ``engine``."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime],
        issuers: IssuerIndex,
        presigner: Presigner,
        cache: ResponseCache,
        settings: ResponderSettings = ResponderSettings(),
        *,
        catch_up: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.issuers = issuers
        self._presigner = presigner
        self.cache = cache
        self._settings = settings
        self._max_age = settings.http_max_age
        self._default_cache_control = cache_control(settings.http_max_age)
        self._pending: dict[tuple[Key, str], asyncio.Future[Reply]] = {}
        self._signing = 0
        self._background: set[asyncio.Task[None]] = set()
        self._catch_up = catch_up
        self._parsed: dict[bytes, CertIdQuery | Reply] = {}
        self._now: Callable[[], float] = (
            time.time if clock is system_clock else lambda: clock().timestamp()
        )

    # ------------------------------------------------------------------------------ hot path

    def _parse(self, der: bytes) -> CertIdQuery | Reply:
        """``parse_request``, remembered: clients repeat byte-identical requests."""
        known = self._parsed.get(der)
        if known is None:
            try:
                known = parse_request(der)
            except MalformedRequest:
                known = MALFORMED
            except UnsupportedHash:
                known = UNAUTHORIZED
            if len(self._parsed) >= PARSED_MEMO:
                del self._parsed[next(iter(self._parsed))]
            self._parsed[der] = known
        return known

    def lookup(self, der: bytes) -> Reply | Miss:
        """The response to the DER request ``der`` if memory has it, else what to resolve."""
        query = self._parse(der)
        if not isinstance(query, CertIdQuery):
            return query
        issuer = self.issuers.find(query)
        if issuer is None:
            return UNAUTHORIZED
        key = (issuer.id, query.serial)
        if self._catch_up is not None:
            self._catch_up()  # apply any ledger change memory has not seen yet
        entry = self.cache.entries.get(key)
        if entry is not None:
            if entry.unauthorized:
                return UNAUTHORIZED
            served = entry.responses.get(query.hash_name)
            if served is not None:
                now = self._now()
                if now < served.stale_at:
                    return served.der, self._headers(served, now)
        return Miss(issuer, query, key)

    async def resolve(self, miss: Miss) -> Reply:
        """Answer a miss from the ledger (and the stored responses, or a new signature)."""
        try:
            return await self._miss(miss.issuer, miss.query, miss.key)
        except Exception:
            log.exception("OCSP lookup failed for serial %x", miss.query.serial)
            return INTERNAL_ERROR

    async def respond(self, der: bytes) -> Reply:
        """The response (DER and headers) to the DER request ``der``."""
        found = self.lookup(der)
        return await self.resolve(found) if isinstance(found, Miss) else found

    def _headers(self, served: Served, now: float) -> Headers:
        remaining = served.next_update - now
        if remaining > self._max_age + 1:
            if served.full_headers is None:
                served.full_headers = [*served.headers, self._default_cache_control]
            return served.full_headers
        # RFC 5019/9919 §6.2: thisUpdate < now + max-age < nextUpdate
        return [*served.headers, cache_control(max(0, int(remaining) - 1))]

    def reply(self, served: Served) -> Reply:
        return served.der, self._headers(served, self._now())

    # ---------------------------------------------------------------------------------- miss

    async def _miss(self, issuer: Issuer, query: CertIdQuery, key: Key) -> Reply:
        pending_key = (key, query.hash_name)
        pending = self._pending.get(pending_key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[pending_key] = future
        try:
            reply = await self._resolve(issuer, query, key)
        except UserError as exc:  # the ledger is unreachable, or similar: try another responder
            log.warning("OCSP lookup failed: %s", exc)
            reply = TRY_LATER
        except Exception:
            log.exception("OCSP lookup failed for serial %x", query.serial)
            reply = INTERNAL_ERROR
        finally:
            del self._pending[pending_key]
        future.set_result(reply)
        return reply

    async def _resolve(self, issuer: Issuer, query: CertIdQuery, key: Key) -> Reply:
        token = self.cache.token()
        record, stored = await asyncio.to_thread(
            serial_with_responses, self._engine, issuer.id, query.serial
        )
        answer = answer_for(record)
        if not answer.signed:
            self.cache.fill_unauthorized(key, token)
            return UNAUTHORIZED
        assert record is not None
        now = self._clock()
        candidate = stored.get(query.hash_name)
        if candidate is not None and self._usable(candidate, record.state, now):
            served = to_served(candidate, grace=self._settings.grace)
        else:
            if self._signing >= self._settings.live_signing_limit:
                return TRY_LATER
            self._signing += 1
            try:
                fresh = await asyncio.to_thread(
                    self._presigner.sign, issuer, record, query.hash_name, now
                )
            except NoSigner:
                return self._fallback(candidate, record.state, now)
            finally:
                self._signing -= 1
            self._store_later(fresh)
            served = to_served(fresh, grace=self._settings.grace)
        self.cache.fill(key, token, query.hash_name, served)
        return self.reply(served)

    def _usable(self, stored: StoredResponse, state: object, now: datetime) -> bool:
        grace = timedelta(seconds=self._settings.grace)
        return (
            same_answer(stored.serial_state, state)  # type: ignore[arg-type]
            and stored.this_update <= now + grace
            and now < stored.refresh_at + grace
            and now < stored.next_update - grace
        )

    def _fallback(self, stored: StoredResponse | None, state: object, now: datetime) -> Reply:
        """No key here: a stored response that is still right and valid beats tryLater."""
        if (
            stored is not None
            and same_answer(stored.serial_state, state)  # type: ignore[arg-type]
            and now < stored.next_update
        ):
            return self.reply(to_served(stored, grace=0))
        return TRY_LATER

    def _store_later(self, response: StoredResponse) -> None:
        task = asyncio.get_running_loop().create_task(self._store(response))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _store(self, response: StoredResponse) -> None:
        try:
            await asyncio.to_thread(upsert_responses, self._engine, [response])
        except Exception:
            log.exception("could not store a live-signed OCSP response")

    async def drain(self) -> None:
        """Wait for background stores (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
