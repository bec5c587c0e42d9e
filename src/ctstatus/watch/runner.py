"""One watcher pass (``watch --once``) and the daemon loop: follow every log, run due checks,
deliver alerts, trim the check history. Logs are polled concurrently; each log is its own
ordered stream, its requests held under its rate limit by a token bucket that lasts as long as
the watcher (so the daemon's passes share it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509

from ctstatus.clock import Clock, Every, system_clock
from ctstatus.ct.client import Limits, LogClient, LogEndpoint
from ctstatus.ct.loglist import DROPPED_STATES, Log, LogList
from ctstatus.ct.transport import LoopTimer, RetryPolicy, Timer, new_http_session
from ctstatus.errors import ConfigError
from ctstatus.watch.alerts import (
    Sender,
    deliver,
    smtp_sender,
    stdout_sender,
    webhook_sender,
)
from ctstatus.watch.checker import Checker, CheckResult, CheckSettings
from ctstatus.watch.config import WatchConfig
from ctstatus.watch.entries import ALL, issuer_key_of
from ctstatus.watch.follower import FollowResult, FollowSettings, LogFollower
from ctstatus.watch.http import ResolvingTransport
from ctstatus.watch.lean import LeanHttp
from ctstatus.watch.leases import Leases, new_holder
from ctstatus.watch.loglive import (
    CHANGE_FAMILY,
    SOURCE_FAMILY,
    LiveLogList,
    ReadResult,
    changes,
)
from ctstatus.watch.problems import Finding
from ctstatus.watch.ratelimit import TokenBucket
from ctstatus.watch.reconcile import ReconcileResult
from ctstatus.watch.scheduled import ScheduledReconcile
from ctstatus.watch.start import StartAt, parse_start
from ctstatus.watch.store import WatchStore

log_ = logging.getLogger("ctstatus.watch")

DAY = 86_400.0
TRIM_EVERY = 3600.0  # seconds between trims of the check history (a full scan of it)
CLAIM_SECONDS = 300.0  # several processes: a claimed check is due again after this if not done
WAKE_SECONDS = 5.0  # between passes: how often to look for checks that came due


@dataclass
class PassResult:
    follow: list[FollowResult] = field(default_factory=list)
    checks: CheckResult = field(default_factory=CheckResult)
    new_problems: int = 0
    alerts: int = 0
    trimmed: int = 0  # history rows dropped (history_days)
    reconciled: ReconcileResult | None = None  # when [reconcile] ran in this pass
    log_list_changes: dict[str, Finding] = field(default_factory=dict)  # when refreshed


def _issuer_keys(paths: list[Path], base: Path) -> dict[str, tuple[bytes, str]]:
    from cryptography.hazmat.primitives.serialization import Encoding

    result: dict[str, tuple[bytes, str]] = {}
    for path in paths:
        data = (path if path.is_absolute() else base / path).read_bytes()
        for certificate in x509.load_pem_x509_certificates(data):
            der = certificate.public_bytes(Encoding.DER)
            result[issuer_key_of(der)] = (der, certificate.subject.rfc4514_string())
    return result


class Watcher:
    """Everything one watcher process holds: store, HTTP client, followers, checker."""

    def __init__(
        self,
        config: WatchConfig,
        base: Path,
        *,
        clock: Clock = system_clock,
        timer: Timer | None = None,
        senders: list[Sender] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.timer = timer or LoopTimer()
        self._trimmed_at: float | None = None
        self.live = LiveLogList(
            config.log_list_sources(), base, config.log_list_cache, timeout=30.0
        )
        read = self.live.read()
        if read.log_list is None:  # no source, and no good copy of one: nothing to follow
            raise read.errors[0]
        log_list = read.log_list
        log_rates(config, log_list)  # config errors before anything is opened
        log_starts(config, log_list)
        self.store = WatchStore.open(_database_url(config.database, base))
        self._record_sources(read)
        self.log_list = log_list
        self._list_every = Every(config.log_list_seconds, clock)
        self._list_every.due()  # just read
        watched_certs = (
            {} if isinstance(config.issuers, str) else _issuer_keys(config.issuers, base)
        )
        own = _issuer_keys(config.own_issuers, base)
        for key, (der, name) in (watched_certs | own).items():
            self.store.add_issuer(key, der, name)
        self.watched: set[str] | str = (
            ALL if config.issuers == ALL else set(watched_certs) | set(own)
        )
        settings = FollowSettings(
            batch_size=config.batch_size,
            concurrency=config.download_concurrency,
            grace_seconds=config.grace_seconds,
            own_issuers=frozenset(own),
        )
        self._retry = RetryPolicy(
            attempt_timeout=config.timeout_seconds, deadline=120, max_attempts=8
        )
        self._limits = Limits(entries_per_request=config.batch_size)
        self._follow_settings = settings
        # The first checks still waiting follow the grace and own issuers of this config.
        self.replanned = self.store.replan(frozenset(own), config.grace_seconds)
        self.logs: list[LogEndpoint] = []
        self.buckets: dict[str, TokenBucket] = {}  # by log URL: one per log, for every pass
        self.starts: dict[str, StartAt] = {}  # by log URL: where a new log is followed from
        self._apply(log_list, strict=True)
        # PostgreSQL: this process follows the logs it holds a lease on and claims its checks.
        self.leases = (
            None
            if self.store.engine.dialect.name == "sqlite"
            else Leases(self.store, clock, seconds=config.lease_seconds, holder=new_holder())
        )
        self.checker = Checker(
            self.store,
            None,
            CheckSettings(
                claim_seconds=None if self.leases is None else CLAIM_SECONDS,
                timeout=config.timeout_seconds,
                concurrency=config.check_concurrency,
                recheck_seconds=config.recheck_seconds,
                probe_seconds=config.probe_seconds,
                retry_seconds=config.retry_seconds,
                retry_max_seconds=config.retry_max_seconds,
            ),
            clock=clock,
        )
        if senders is None:
            senders = []
            if config.alerts.stdout:
                senders.append(stdout_sender())
            if config.alerts.webhook:
                senders.append(webhook_sender(config.alerts.webhook))
            smtp = config.alerts.smtp
            if smtp is not None:
                senders.append(smtp_sender(smtp.host, smtp.port, smtp.sender, smtp.to))
        self.senders = senders
        self.reconciler = (
            None if config.reconcile is None else ScheduledReconcile(config.reconcile, base, clock)
        )

    def _apply(self, log_list: LogList, *, strict: bool) -> None:
        """Follow the logs of ``log_list`` that it does not say are gone (rejected, retired)
        and ``logs`` selects; a log kept keeps its token bucket. ``strict`` (at start): a
        plain-HTTP log off loopback or an override naming no log is an error; on a refresh
        such a log is skipped and the override ignored, and the watcher keeps going."""
        rates = log_rates(config=self.config, log_list=log_list, strict=strict)
        starts = log_starts(self.config, log_list, strict=strict)
        endpoints: list[LogEndpoint] = []
        buckets: dict[str, TokenBucket] = {}
        for log in log_list.logs:
            names = {log.description, log.url, log.log_id_b64}
            if self.config.logs and not names & set(self.config.logs):
                continue
            if log.state in DROPPED_STATES:
                continue
            try:
                _loopback_or_https(log.url or log.submission_url or "")
            except ValueError:
                if strict:
                    raise
                log_.warning("log list: skipping %s (plain HTTP off loopback)", log.description)
                continue
            endpoint = LogEndpoint.from_log(log)
            endpoints.append(endpoint)
            bucket = self.buckets.get(endpoint.url)
            rate = rates[log.log_id_b64]
            if bucket is None or bucket.rate != rate:
                bucket = TokenBucket(rate, timer=self.timer)
            buckets[endpoint.url] = bucket
            self.starts[endpoint.url] = starts[log.log_id_b64]
        self.logs, self.buckets = endpoints, buckets

    def _record_sources(self, read: ReadResult) -> None:
        now = self.clock().timestamp()
        for subject, findings in read.findings.items():
            self.store.record(subject, "log list", findings, now, family=SOURCE_FAMILY)

    async def refresh_log_list(self) -> dict[str, Finding]:
        """Fetch every list now; if any gave a good one, follow it; record what changed (and
        close the changes of the refresh before). The old list stays on any failure."""
        read = await asyncio.to_thread(self.live.read)
        self._record_sources(read)
        new = read.log_list
        if new is None:
            return {}
        found = changes(self.log_list, new)
        now = self.clock().timestamp()
        still_open = {
            p.subject
            for p in self.store.problems(open_only=True)
            if p.subject.startswith("loglist-log:")
        }
        for subject in sorted(still_open | set(found)):
            finding = found.get(subject)
            self.store.record(
                subject, "log list", [] if finding is None else [finding], now, family=CHANGE_FAMILY
            )
        self._apply(new, strict=False)
        self.log_list = new
        return found

    async def run_once(self) -> PassResult:
        """Follow every log to its head, check what is due, alert; count new problems."""
        before = {p.id for p in self.store.problems(open_only=True)}
        result = PassResult()
        if self._list_every.due():
            result.log_list_changes = await self.refresh_log_list()
        async with new_http_session(resolve=dict(self.config.resolve)) as log_http:
            held = None
            if self.leases is not None:
                ids = [e.log_id.hex() for e in self.logs if e.log_id is not None]
                held = await asyncio.to_thread(self.leases.acquire, ids)
            followers = [
                LogFollower(
                    LogClient(
                        endpoint,
                        log_http,
                        clock=self.clock,
                        timer=self.timer,
                        retry=self._retry,
                        limits=self._limits,
                        throttle=self.buckets[endpoint.url].acquire,
                        on_retry_after=self.buckets[endpoint.url].pause,
                    ),
                    self.store,
                    self.watched,
                    dataclasses.replace(self._follow_settings, start=self.starts[endpoint.url]),
                    clock=self.clock,
                )
                for endpoint in self.logs
                if held is None or (endpoint.log_id is not None and endpoint.log_id.hex() in held)
            ]
            result.follow = await self._follow(followers)
        result.checks = await self.check_due()
        if self.reconciler is not None:
            try:
                result.reconciled = self.reconciler.run_if_due(self.store)
            except Exception:  # a ledger outage fails this run, not the watcher
                log_.exception("scheduled reconcile failed; retrying at the next interval")
        after = {p.id for p in self.store.problems(open_only=True)}
        result.new_problems = len(after - before)
        result.alerts = deliver(self.store, self.senders)
        result.trimmed = self.trim_history()
        return result

    async def _follow(self, followers: list[LogFollower]) -> list[FollowResult]:
        """Poll every log at once; with leases, renew them while following, and stop
        following a log whose lease was lost (another process holds it now)."""
        leases = self.leases
        if leases is None:
            return list(await asyncio.gather(*(f.poll() for f in followers)))
        tasks = {f.log_id: asyncio.create_task(f.poll()) for f in followers}

        async def renew() -> None:
            while True:
                await asyncio.sleep(leases.seconds / 3)
                kept = await asyncio.to_thread(leases.renew, set(tasks))
                for log_id, task in tasks.items():
                    if log_id not in kept:
                        log_.warning("lease on log %s lost; another watcher follows it", log_id)
                        task.cancel()

        renewer = asyncio.create_task(renew())
        try:
            done = await asyncio.gather(*tasks.values(), return_exceptions=True)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        for outcome in done:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, asyncio.CancelledError
            ):
                raise outcome
        return [r for r in done if isinstance(r, FollowResult)]

    def keep_leases(self) -> None:
        """Between passes: renew what this process holds, so no other takes it meanwhile."""
        if self.leases is not None:
            ids = {e.log_id.hex() for e in self.logs if e.log_id is not None}
            self.leases.renew(ids)

    async def check_due(self) -> CheckResult:
        """Run the checks due now (retries, requested rechecks, first checks after grace)."""
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(limits=limits)
        if self.config.resolve:
            transport = ResolvingTransport(dict(self.config.resolve), transport)
        async with httpx.AsyncClient(transport=transport) as http:
            lean = LeanHttp(dict(self.config.resolve))
            self.checker.use(http, lean)
            try:
                return await self.checker.run_due()
            finally:
                await lean.aclose()

    async def between_passes(self) -> PassResult | None:
        """Between two passes: run the checks that came due (a retry after a problem, a
        ``ctstatus watch recheck``) and deliver their alerts; None when nothing was due."""
        due = self.store.next_due()
        if due is None or due > self.clock().timestamp():
            return None
        before = {p.id for p in self.store.problems(open_only=True)}
        result = PassResult(checks=await self.check_due())
        after = {p.id for p in self.store.problems(open_only=True)}
        result.new_problems = len(after - before)
        result.alerts = deliver(self.store, self.senders)
        return result

    def trim_history(self) -> int:
        """Drop checks older than ``history_days`` (0: keep all), at most once per
        :data:`TRIM_EVERY`; how many were dropped."""
        days = self.config.history_days
        now = self.clock().timestamp()
        if days <= 0 or (self._trimmed_at is not None and now - self._trimmed_at < TRIM_EVERY):
            return 0
        self._trimmed_at = now
        return self.store.trim_checks(before=now - days * DAY)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Passes every ``poll_seconds``; between them, every :data:`WAKE_SECONDS`, the checks
        that came due. Returns when ``stop`` is set (between transactions)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.run_once()
            waited = 0.0
            while waited < self.config.poll_seconds and not stop.is_set():
                step = min(WAKE_SECONDS, self.config.poll_seconds - waited)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), step)
                waited += step
                if not stop.is_set():
                    self.keep_leases()
                    await self.between_passes()

    def close(self) -> None:
        if self.leases is not None:
            with contextlib.suppress(Exception):  # a closing database: the leases expire
                self.leases.release()
        self.store.close()


def log_rates(config: WatchConfig, log_list: LogList, *, strict: bool = True) -> dict[str, float]:
    """Requests per second for each log of the list (by base64 log ID): the default, or the
    lowest override naming it by description, URL or log ID. An override that names no log of
    the list is a config error (a typo would otherwise go unnoticed)."""
    overrides: dict[str, list[float]] = {}
    for key, rate in config.log_rate_limits.items():
        named = [log for log in log_list.logs if key.rstrip("/") in _names(log)]
        if not named and not strict:
            continue  # the list changed under the config: the override waits for its log
        if not named:
            raise ConfigError(
                f"log_rate_limits names {key!r}, which is no log of the log list",
                "use a log's description, URL or base64 log ID",
            )
        for log in named:
            overrides.setdefault(log.log_id_b64, []).append(rate)
    return {
        log.log_id_b64: min(overrides.get(log.log_id_b64, [config.log_requests_per_second]))
        for log in log_list.logs
    }


def log_starts(
    config: WatchConfig, log_list: LogList, *, strict: bool = True
) -> dict[str, StartAt]:
    """Where each log of the list (by base64 log ID) is followed from if it has no cursor yet:
    ``start``, or the ``log_start`` entry naming it (the same names as ``log_rate_limits``;
    a key naming no log, or two keys naming one log, is a config error; on a refresh of the
    list, not ``strict``, a key naming no log waits for its log)."""
    chosen: dict[str, tuple[str, StartAt]] = {}
    for key, value in config.log_start.items():
        named = [log for log in log_list.logs if key.rstrip("/") in _names(log)]
        if not named and not strict:
            continue
        if not named:
            raise ConfigError(
                f"log_start names {key!r}, which is no log of the log list",
                "use a log's description, URL or base64 log ID",
            )
        for log in named:
            if log.log_id_b64 in chosen and chosen[log.log_id_b64][0] != key:
                raise ConfigError(
                    f"log_start names log {log.description!r} twice "
                    f"({chosen[log.log_id_b64][0]!r} and {key!r})",
                    "keep one entry per log",
                )
            chosen[log.log_id_b64] = (key, parse_start(value))
    default = parse_start(config.start)
    return {log.log_id_b64: chosen.get(log.log_id_b64, ("", default))[1] for log in log_list.logs}


def _names(log: Log) -> set[str]:
    urls = (log.url, log.submission_url, log.monitoring_url)
    return {log.description, log.log_id_b64} | {u.rstrip("/") for u in urls if u}


def _database_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(base / url[len(prefix) :])
    return url


def _loopback_or_https(url: str) -> None:
    """Plain-HTTP logs are accepted only on loopback (tests and the one-machine stack)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"refusing plain-HTTP log outside loopback: {url}")
