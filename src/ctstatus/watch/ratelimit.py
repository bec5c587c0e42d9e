"""Per-log request rate limits: a token bucket every request to a log passes through.

A monitor that catches up on a log fires get-entries (or tile) requests as fast as the log
answers; logs publish limits and answer 429 beyond them. The bucket holds the watcher under
``log_requests_per_second`` (or a per-log override) with a burst of one second's worth, and is
awaited by :class:`~ctstatus.ct.client.LogClient` before every attempt -- get-sth, get-entries,
checkpoints, hash and data tiles, retries included. 429/5xx backoff (at least ``Retry-After``)
stays the client's :class:`~ctstatus.ct.transport.RetryPolicy`; a ``Retry-After`` is also
passed to :meth:`TokenBucket.pause`, which holds every request to that log (the other
in-flight ones included) until it has passed: a log asking for a pause means all of us.

It is the virtual-scheduling form of a token bucket (GCRA): each caller reserves the next slot
and sleeps until it, so waiters are served in order and a reservation needs no lock. Time and
sleep come from an injected :class:`~ctstatus.ct.transport.Timer`.
"""

from __future__ import annotations

from ctstatus.ct.transport import LoopTimer, Timer


class TokenBucket:
    """``rate`` requests per second on average, at most ``burst`` at once."""

    def __init__(self, rate: float, burst: float | None = None, *, timer: Timer | None = None):
        if rate <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = rate
        self.burst = max(1.0, rate if burst is None else burst)
        self.timer = timer or LoopTimer()
        self._interval = 1.0 / rate
        self._tolerance = (self.burst - 1.0) * self._interval
        self._tat: float | None = None  # theoretical arrival time of the next request
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every later slot until ``seconds`` from now (a log's Retry-After)."""
        if seconds > 0:
            self._paused_until = max(self._paused_until, self.timer.now() + seconds)

    def reserve(self) -> float:
        """Take the next slot; the seconds to wait before using it (0: now)."""
        now = self.timer.now()
        tat = now if self._tat is None else max(self._tat, now)
        self._tat = tat + self._interval
        return max(0.0, tat - self._tolerance - now)

    async def acquire(self) -> None:
        """Wait out any pause, then for a slot (cancelling the wait forfeits the slot, which
        only slows later callers)."""
        while (paused := self._paused_until - self.timer.now()) > 0:
            await self.timer.sleep(paused)  # a pause may be extended while we sleep
        wait = self.reserve()
        if wait > 0:
            await self.timer.sleep(wait)
