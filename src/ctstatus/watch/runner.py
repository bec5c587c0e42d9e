"""One watcher pass (``watch --once``) and the daemon loop: follow every log, run due checks,
deliver alerts. Logs are polled concurrently; each log is its own ordered stream.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509

from ctstatus.clock import Clock, system_clock
from ctstatus.ct.client import Limits, LogClient, LogEndpoint
from ctstatus.ct.loglist import LogList, load_log_list, parse_log_list
from ctstatus.ct.transport import RetryPolicy
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
from ctstatus.watch.store import WatchStore


@dataclass
class PassResult:
    follow: list[FollowResult] = field(default_factory=list)
    checks: CheckResult = field(default_factory=CheckResult)
    new_problems: int = 0
    alerts: int = 0


def read_log_list(source: str, base: Path) -> LogList:
    """A log list v3 from a file or an http(s) URL."""
    if source.startswith(("http://", "https://")):
        response = httpx.get(source, timeout=30)
        response.raise_for_status()
        return parse_log_list(response.content, source=source)
    path = Path(source)
    return load_log_list(path if path.is_absolute() else base / path)


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
        senders: list[Sender] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = WatchStore.open(_database_url(config.database, base))
        watched_certs = (
            {} if isinstance(config.issuers, str) else _issuer_keys(config.issuers, base)
        )
        own = _issuer_keys(config.own_issuers, base)
        for key, (der, name) in (watched_certs | own).items():
            self.store.add_issuer(key, der, name)
        self.watched: set[str] | str = (
            ALL if config.issuers == ALL else set(watched_certs) | set(own)
        )
        log_list = read_log_list(config.log_list, base)
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
        self.logs = []
        for log in log_list.logs:
            if config.logs and not {log.description, log.url, log.log_id_b64} & set(config.logs):
                continue
            _loopback_or_https(log.url or log.submission_url or "")
            self.logs.append(LogEndpoint.from_log(log))
        self.checker = Checker(
            self.store,
            None,
            CheckSettings(
                timeout=config.timeout_seconds,
                concurrency=config.check_concurrency,
                recheck_seconds=config.recheck_seconds,
                probe_seconds=config.probe_seconds,
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

    async def run_once(self) -> PassResult:
        """Follow every log to its head, check what is due, alert; count new problems."""
        before = {p.id for p in self.store.problems(open_only=True)}
        result = PassResult()
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(limits=limits)
        if self.config.resolve:
            transport = ResolvingTransport(dict(self.config.resolve), transport)
        async with httpx.AsyncClient(transport=transport) as http:
            followers = [
                LogFollower(
                    LogClient(
                        endpoint, http, clock=self.clock, retry=self._retry, limits=self._limits
                    ),
                    self.store,
                    self.watched,
                    self._follow_settings,
                    clock=self.clock,
                )
                for endpoint in self.logs
            ]
            result.follow = list(await asyncio.gather(*(f.poll() for f in followers)))
            lean = LeanHttp(dict(self.config.resolve))
            self.checker.use(http, lean)
            try:
                result.checks = await self.checker.run_due()
            finally:
                await lean.aclose()
        after = {p.id for p in self.store.problems(open_only=True)}
        result.new_problems = len(after - before)
        result.alerts = deliver(self.store, self.senders)
        return result

    async def run_forever(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.config.poll_seconds)

    def close(self) -> None:
        self.store.close()


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
