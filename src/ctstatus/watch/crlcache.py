"""CRLs fetched once per URL, revalidated with conditional requests, parsed once, indexed by
serial, and judged: unreachable, malformed, badly signed or stale CRLs are findings.

A CRL that cannot be trusted proves nothing about absence (crt.sh shows "Unknown" then): the
checker asks :meth:`CrlCache.lookup` and gets ``None`` as the status in that case.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from cryptography import x509

from ctstatus.watch.http import Fetched, fetch
from ctstatus.watch.lean import LeanHttp
from ctstatus.watch.problems import Code, Finding

MAX_CRL_BYTES = 64 * 1024 * 1024


@dataclass
class CrlState:
    """One CRL URL: the validators for the next request, the index, the current findings."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: float = 0.0
    next_update: datetime | None = None
    this_update: datetime | None = None
    crl_number: int | None = None
    revoked: dict[int, tuple[datetime, str | None]] | None = None
    findings: list[Finding] = field(default_factory=list)
    fetches: int = 0
    not_modified: int = 0


class CrlCache:
    """In-memory per-process CRL cache; ``refresh_seconds`` between revalidations."""

    def __init__(self, http: httpx.AsyncClient, *, timeout: float, refresh_seconds: float) -> None:
        self.http = http
        self.timeout = timeout
        self.refresh_seconds = refresh_seconds
        self._states: dict[str, CrlState] = {}
        self.lean: LeanHttp | None = None

    async def get(self, url: str, issuer: x509.Certificate, now: datetime) -> CrlState:
        state = self._states.setdefault(url, CrlState(url))
        stamp = now.timestamp()
        if state.fetches and stamp - state.fetched_at < self.refresh_seconds:
            self._judge_freshness(state, now)
            return state
        headers = {}
        if state.etag and state.revoked is not None:
            headers["If-None-Match"] = state.etag
        if state.last_modified and state.revoked is not None:
            headers["If-Modified-Since"] = state.last_modified
        fetched = await fetch(
            self.http,
            "GET",
            url,
            headers=headers,
            timeout=self.timeout,
            max_bytes=MAX_CRL_BYTES,
            lean=self.lean,
        )
        state.fetches += 1
        state.fetched_at = stamp
        state.findings = []
        if fetched.status == 304 and state.revoked is not None:
            state.not_modified += 1
        elif fetched.finding is not None and fetched.finding.code is not Code.HTTP_CONTENT_TYPE:
            state.revoked = None
            state.findings.append(
                Finding(Code.CRL_UNREACHABLE, fetched.finding.message, fetched.evidence())
            )
            return state
        else:
            self._parse(state, fetched, issuer)
        self._judge_freshness(state, now)
        return state

    def _parse(self, state: CrlState, fetched: Fetched, issuer: x509.Certificate) -> None:
        state.etag = fetched.headers.get("etag")
        state.last_modified = fetched.headers.get("last-modified")
        state.revoked = None
        try:
            crl = x509.load_der_x509_crl(fetched.body)
        except ValueError:
            try:
                crl = x509.load_pem_x509_crl(fetched.body)
            except ValueError as exc:
                state.findings.append(
                    Finding(Code.CRL_MALFORMED, f"{state.url}: {exc}", fetched.evidence())
                )
                return
        if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            state.findings.append(
                Finding(
                    Code.CRL_BAD_SIGNATURE,
                    f"{state.url}: not signed by {issuer.subject.rfc4514_string()}",
                    fetched.evidence(),
                )
            )
            return
        index: dict[int, tuple[datetime, str | None]] = {}
        for entry in crl:
            reason: str | None = None
            with contextlib.suppress(x509.ExtensionNotFound):
                found = entry.extensions.get_extension_for_class(x509.CRLReason).value
                reason = found.reason.value
            index[entry.serial_number] = (entry.revocation_date_utc, reason)
        state.revoked = index
        state.next_update = crl.next_update_utc
        state.this_update = crl.last_update_utc
        state.crl_number = None
        with contextlib.suppress(x509.ExtensionNotFound):
            state.crl_number = crl.extensions.get_extension_for_class(
                x509.CRLNumber
            ).value.crl_number

    @staticmethod
    def _judge_freshness(state: CrlState, now: datetime) -> None:
        state.findings = [f for f in state.findings if f.code is not Code.CRL_STALE]
        if state.revoked is not None and (state.next_update is None or state.next_update < now):
            state.findings.append(
                Finding(
                    Code.CRL_STALE,
                    f"{state.url}: nextUpdate {state.next_update} has passed",
                    {"url": state.url, "next_update": str(state.next_update)},
                )
            )

    def lookup(
        self, state: CrlState, serial: int
    ) -> tuple[str | None, tuple[datetime, str | None] | None]:
        """("revoked" | "not_listed" | None when the CRL proves nothing, revocation info)."""
        if state.revoked is None or any(f.code is Code.CRL_STALE for f in state.findings):
            return None, None
        found = state.revoked.get(serial)
        return ("revoked", found) if found is not None else ("not_listed", None)
