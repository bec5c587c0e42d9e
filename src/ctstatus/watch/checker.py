"""Check a (pre)certificate's status the way a browser or OCSP Watch would.

OCSP: GET per RFC 5019 (POST when the URL would pass 255 bytes, and as a fallback when GET
fails: a CA must support GET, BR §4.9.9), with a SHA-1 CertID; an answer with another CertID
hash (django-ca's cache answers SHA-1 requests with SHA-256 CertIDs) is a finding on the
certificate. Whether the responder also answers SHA-256 CertIDs is a property of the responder,
so it is probed per issuer and responder URL every ``probe_seconds`` with the serial being
checked, like the random-serial probe: asking it for every certificate doubled the cost of a
check. CRL: from :class:`CrlCache`. Then the two sources are compared. Every finding is stored
against the certificate (``cert:…``), the CRL URL (``crl:…``) or the responder (``probe:…``,
``sha256:…``), which is what lets a problem resolve when a later check no longer finds it.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography import x509

from ctstatus.clock import Clock, system_clock
from ctstatus.ct.b64 import b64encode
from ctstatus.watch.crlcache import CrlCache
from ctstatus.watch.http import Fetched, fetch
from ctstatus.watch.lean import LeanHttp
from ctstatus.watch.ocsp import CertIdRequest, Verdict, classify
from ctstatus.watch.problems import Code, Finding
from ctstatus.watch.store import CheckDone, QueuedCert, WatchStore

CERT_FAMILY = "transport.,ocsp.,cross."
MAX_OCSP_BYTES = 64 * 1024
GET_URL_LIMIT = 255
FLUSH_EVERY = 256


@dataclass(frozen=True)
class CheckSettings:
    timeout: float = 10.0
    concurrency: int = 16
    recheck_seconds: float = 6 * 3600.0
    probe_seconds: float = 3600.0
    crl_refresh_seconds: float = 300.0
    retry_seconds: float = 60.0  # a check that found a problem is retried after this, doubled
    retry_max_seconds: float = 300.0  # per failure in a row, up to this
    claim_seconds: float | None = None  # several processes: claim due checks this long


def retry_delay(failures: int, settings: CheckSettings) -> float:
    """Seconds until the retry after ``failures`` problem checks in a row: 1, 2, 4, … times
    ``retry_seconds``, capped at ``retry_max_seconds`` (and never later than a recheck)."""
    doubled = settings.retry_seconds * 2.0 ** min(max(failures - 1, 0), 30)
    return min(doubled, settings.retry_max_seconds, settings.recheck_seconds)


@dataclass
class CheckResult:
    checked: int = 0
    findings: int = 0
    by_code: dict[str, int] = field(default_factory=dict)


def ocsp_get_url(base: str, request_der: bytes) -> str:
    """RFC 5019 §5: base URL, a slash, the percent-encoded standard base64 of the request.

    Of the base64 alphabet only ``+``, ``/`` and ``=`` are not unreserved, so three replaces
    give what ``urllib.parse.quote(…, safe="")`` gives, without its per-character Python loop."""
    encoded = b64encode(request_der).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return base + encoded if base.endswith("/") else f"{base}/{encoded}"


class Checker:
    """Runs due checks from the store against live responders and CRLs."""

    def __init__(
        self,
        store: WatchStore,
        http: httpx.AsyncClient | None,
        settings: CheckSettings | None = None,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.http = http or httpx.AsyncClient()
        self.settings = settings or CheckSettings()
        self.clock = clock
        self.crls = CrlCache(
            self.http,
            timeout=self.settings.timeout,
            refresh_seconds=self.settings.crl_refresh_seconds,
        )
        self._issuers: dict[str, tuple[x509.Certificate, str]] = {}
        self._probed: dict[str, float] = {}
        self._sha256_probed: dict[tuple[str, str], float] = {}
        self._crl_recorded: dict[str, float] = {}
        self.lean: LeanHttp | None = None
        self._done: list[CheckDone] = []

    def use(self, http: httpx.AsyncClient, lean: LeanHttp | None = None) -> None:
        """Ask through ``http`` (and ``lean`` for plain http) from now on: one pair per pass."""
        self.http = http
        self.lean = lean
        self.crls.http = http
        self.crls.lean = lean

    def _issuer(self, key: str) -> tuple[x509.Certificate, str] | None:
        if key not in self._issuers:
            for k, (der, name) in self.store.issuer_certificates().items():
                self._issuers[k] = (x509.load_der_x509_certificate(der), name)
        return self._issuers.get(key)

    async def run_due(self) -> CheckResult:
        """Check everything due now (bounded concurrency); record findings; schedule rechecks."""
        result = CheckResult()
        now = self.clock()
        due = iter(
            self.store.due(
                now.timestamp(), limit=100_000, claim_seconds=self.settings.claim_seconds
            )
        )

        async def worker() -> None:
            # ``concurrency`` workers share one iterator: no task and no semaphore waiter per
            # certificate (a Semaphore with thousands of waiters costs O(waiters) per acquire).
            for cert in due:
                findings, _next_due = await self.check(cert, now)
                result.checked += 1
                result.findings += len(findings)
                for f in findings:
                    result.by_code[f.code.value] = result.by_code.get(f.code.value, 0) + 1

        try:
            await asyncio.gather(*(worker() for _ in range(max(1, self.settings.concurrency))))
        finally:
            self.flush()
        return result

    def flush(self) -> None:
        """Write the results gathered so far (one transaction)."""
        done, self._done = self._done, []
        if done:
            self.store.finish_checks(done)

    async def check(self, cert: QueuedCert, now: datetime) -> tuple[list[Finding], float]:
        issuer_entry = self._issuer(cert.issuer_key)
        subject = f"cert:{cert.issuer_key[:16]}:{cert.serial}"
        stamp = now.timestamp()
        next_due = stamp + self.settings.recheck_seconds
        if issuer_entry is None:
            return [], next_due  # issuer certificate not known (yet): nothing to ask about
        issuer, scope = issuer_entry
        serial = int(cert.serial, 16)
        info = cert.info
        evidence = {"serial": cert.serial, "names": info.get("names", [])[:5]}
        findings: list[Finding] = []
        ocsp_verdict: Verdict | None = None
        for url in info.get("ocsp", [])[:1]:
            ocsp_verdict, ocsp_findings = await self._ask(url, issuer, serial, "sha1", now)
            findings.extend(ocsp_findings)
            if ocsp_verdict.next_update is not None:
                next_due = min(next_due, max(stamp + 60, ocsp_verdict.next_update.timestamp()))
            await self._probe_sha256(url, cert.issuer_key, issuer, scope, serial, ocsp_verdict, now)
            await self._probe(url, issuer, scope, now)
        crl_status: tuple[str | None, tuple[datetime, str | None] | None] = (None, None)
        crl_issued: datetime | None = None
        crl_checked: dict[str, Any] | None = None  # which CRL said so, for the check history
        for url in info.get("crl", [])[:1]:
            state = await self.crls.get(url, issuer, now)
            if self._crl_recorded.get(url) != state.fetched_at:
                self._crl_recorded[url] = state.fetched_at
                self.store.record(f"crl:{url}", scope, state.findings, stamp, family="crl.")
            crl_status = self.crls.lookup(state, serial)
            crl_issued = state.this_update
            if state.this_update is not None:
                crl_checked = {
                    "url": url,
                    "number": state.crl_number,
                    "this_update": state.this_update.isoformat(),
                }
        if not info.get("ocsp") and not info.get("crl"):
            findings.append(Finding(Code.NO_STATUS_SOURCE, "no OCSP URL and no CRL DP", evidence))
        findings.extend(_cross(ocsp_verdict, crl_status, crl_issued))
        findings = [Finding(f.code, f.message, evidence | f.evidence) for f in findings]
        # A problem is retried within minutes (a responder back from an outage resolves it at
        # the retry, not hours later); a clean check returns to the recheck schedule.
        failures = cert.failures + 1 if findings else 0
        if failures:
            next_due = min(next_due, stamp + retry_delay(failures, self.settings))
        status = "none" if ocsp_verdict is None else str(ocsp_verdict.status)
        self._done.append(
            CheckDone(
                cert,
                subject,
                scope,
                findings,
                stamp,
                CERT_FAMILY,
                next_due,
                status,
                crl_status[0],
                crl_checked,
                failures,
            )
        )
        if len(self._done) >= FLUSH_EVERY:
            self.flush()
        return findings, next_due

    async def _ask(
        self, url: str, issuer: x509.Certificate, serial: int, algorithm: str, now: datetime
    ) -> tuple[Verdict, list[Finding]]:
        request = CertIdRequest.for_issuer(issuer, serial, algorithm)
        der = request.der()
        findings: list[Finding] = []
        fetched = await self._get(url, der)
        if fetched is None or _unusable(fetched):
            post = await fetch(
                self.http,
                "POST",
                url,
                content=der,
                headers={"Content-Type": "application/ocsp-request"},
                timeout=self.settings.timeout,
                max_bytes=MAX_OCSP_BYTES,
                expect_type="application/ocsp-response",
                lean=self.lean,
            )
            if fetched is not None and not _unusable(post):
                findings.append(
                    Finding(
                        Code.OCSP_GET_UNSUPPORTED,
                        "GET failed where POST works (BR §4.9.9 requires GET)",
                        fetched.evidence(),
                    )
                )
            elif fetched is not None and fetched.finding is not None:
                findings.append(fetched.finding)
                return Verdict(), findings
            fetched = post
        if fetched.finding is not None:
            findings.append(fetched.finding)
            if fetched.finding.code is not Code.HTTP_CONTENT_TYPE:
                return Verdict(), findings
        verdict = classify(fetched.body, request, issuer, now)
        findings.extend(
            Finding(f.code, f.message, f.evidence | {"response": fetched.evidence()})
            for f in verdict.findings
        )
        return verdict, findings

    async def _get(self, url: str, der: bytes) -> Fetched | None:
        get_url = ocsp_get_url(url, der)
        if len(get_url) > GET_URL_LIMIT:
            return None
        return await fetch(
            self.http,
            "GET",
            get_url,
            timeout=self.settings.timeout,
            max_bytes=MAX_OCSP_BYTES,
            expect_type="application/ocsp-response",
            lean=self.lean,
        )

    async def _probe_sha256(
        self,
        url: str,
        issuer_key: str,
        issuer: x509.Certificate,
        scope: str,
        serial: int,
        sha1: Verdict,
        now: datetime,
    ) -> None:
        """Now and then per (issuer, responder): the serial just asked with SHA-1, asked again
        with a SHA-256 CertID, must get the same status. Only when SHA-1 gave a status (else
        there is nothing to compare, and the next check of this responder tries again)."""
        stamp = now.timestamp()
        key = (issuer_key, url)
        if sha1.status is None or stamp - self._sha256_probed.get(key, -1e18) < (
            self.settings.probe_seconds
        ):
            return
        self._sha256_probed[key] = stamp
        probe, probe_findings = await self._ask(url, issuer, serial, "sha256", now)
        findings = []
        if probe.status != sha1.status:
            findings.append(
                Finding(
                    Code.OCSP_SHA256_FAILED,
                    f"SHA-256 CertID answered {probe.status}, SHA-1 {sha1.status}",
                    {
                        "serial": format(serial, "x"),
                        "url": url,
                        "sha256_findings": [f.code.value for f in probe_findings],
                    },
                )
            )
        self.store.record(
            f"sha256:{issuer_key[:16]}:{url}",
            scope,
            findings,
            stamp,
            family=Code.OCSP_SHA256_FAILED.value,
        )

    async def _probe(self, url: str, issuer: x509.Certificate, scope: str, now: datetime) -> None:
        """Now and then, a random serial: it must never be ``good`` (BR §4.9.9)."""
        stamp = now.timestamp()
        if stamp - self._probed.get(url, -1e18) < self.settings.probe_seconds:
            return
        self._probed[url] = stamp
        serial = secrets.randbits(127) | 1 << 126
        verdict, _ = await self._ask(url, issuer, serial, "sha1", now)
        findings = []
        if verdict.status == "good":
            findings.append(
                Finding(
                    Code.OCSP_RANDOM_GOOD,
                    f"a random serial {serial:x} was answered good",
                    {"serial": format(serial, "x"), "url": url},
                )
            )
        self.store.record(f"probe:{url}", scope, findings, stamp, family="ocsp.random")


def _unusable(fetched: Fetched) -> bool:
    return fetched.finding is not None and fetched.finding.code is not Code.HTTP_CONTENT_TYPE


def _cross(
    ocsp_verdict: Verdict | None,
    crl: tuple[str | None, tuple[datetime, str | None] | None],
    crl_issued: datetime | None,
) -> list[Finding]:
    """OCSP and the CRL must agree (anchors.md §6.4, cross-source); a CRL issued before an
    OCSP revocation cannot list it yet (BR §4.9.7 gives the CA 24 hours), so that is no finding."""
    crl_status, crl_entry = crl
    if ocsp_verdict is None or ocsp_verdict.status is None or crl_status is None:
        return []
    revoked_at = ocsp_verdict.revoked_at
    if (
        crl_status == "not_listed"
        and revoked_at is not None
        and crl_issued is not None
        and crl_issued < revoked_at
    ):
        return []
    if ocsp_verdict.status == "good" and crl_status == "revoked":
        return [Finding(Code.CRL_REVOKED_OCSP_GOOD, "revoked in the CRL, good in OCSP")]
    if ocsp_verdict.status == "revoked" and crl_status == "not_listed":
        return [Finding(Code.OCSP_REVOKED_NOT_IN_CRL, "revoked in OCSP, not in the CRL")]
    if ocsp_verdict.status == "revoked" and crl_entry is not None:
        crl_time, crl_reason = crl_entry
        ocsp_time = ocsp_verdict.revoked_at or datetime.min.replace(tzinfo=UTC)
        if abs((crl_time - ocsp_time).total_seconds()) > 1 or crl_reason != ocsp_verdict.reason:
            return [
                Finding(
                    Code.REVOCATION_MISMATCH,
                    "OCSP and the CRL disagree on the revocation time or reason",
                    {
                        "ocsp": [str(ocsp_time), ocsp_verdict.reason],
                        "crl": [str(crl_time), crl_reason],
                    },
                )
            ]
    return []
