"""Counters the dashboard needs and the status server does not expose.

:class:`MeteredApp` wraps the status ASGI app and counts OCSP and CRL requests and their
latency (the responder itself keeps no counters). :class:`Series` keeps recent samples in memory
for the dashboard's charts; issuance history comes from the ledger journal instead, so it
survives restarts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


@dataclass
class RequestStats:
    """Totals since start-up; the sampler turns them into rates."""

    ocsp_requests: int = 0
    crl_requests: int = 0
    other_requests: int = 0
    ocsp_seconds: float = 0.0
    recent_ocsp_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))


class MeteredApp:
    """Count requests by kind and time OCSP answers, around any ASGI app."""

    def __init__(self, app: Any, stats: RequestStats, clock: Callable[[], float]) -> None:
        self.app = app
        self.stats = stats
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        started = self.clock()
        try:
            await self.app(scope, receive, send)
        finally:
            if path.startswith("/crl"):
                self.stats.crl_requests += 1
            elif path.startswith("/ocsp"):
                elapsed = self.clock() - started
                self.stats.ocsp_requests += 1
                self.stats.ocsp_seconds += elapsed
                self.stats.recent_ocsp_ms.append(elapsed * 1000)
            else:
                self.stats.other_requests += 1


@dataclass(frozen=True)
class Sample:
    at: float
    ocsp_per_s: float
    ocsp_p50_ms: float | None
    ocsp_p95_ms: float | None
    open_problems: int


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Series:
    """A bounded ring of samples (an hour at the default 5 s interval)."""

    def __init__(self, stats: RequestStats, maxlen: int = 720) -> None:
        self.stats = stats
        self.samples: deque[Sample] = deque(maxlen=maxlen)
        self._last_count = 0
        self._last_at: float | None = None

    def sample(self, now: float, open_problems: int) -> Sample:
        count = self.stats.ocsp_requests
        rate = 0.0
        if self._last_at is not None and now > self._last_at:
            rate = (count - self._last_count) / (now - self._last_at)
        recent = list(self.stats.recent_ocsp_ms)[-500:]
        self.stats.recent_ocsp_ms.clear()
        sample = Sample(now, rate, percentile(recent, 0.5), percentile(recent, 0.95), open_problems)
        self._last_count, self._last_at = count, now
        self.samples.append(sample)
        return sample

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def reset_clock(self) -> None:
        self._last_at = time.monotonic()
