"""The clock is injected everywhere time matters, so tests never sleep and never race midnight."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Current UTC time, truncated to whole seconds (X.509 and the ledger keep seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


class FrozenClock:
    """A clock that only moves when told to; for tests and reproducible tooling."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        from datetime import timedelta

        self.now = self.now + timedelta(**kwargs)


class Every:
    """A job's schedule on the injected clock: due at the first look, then every ``seconds``
    after the last run (a daemon asks ``due`` each time round its loop)."""

    def __init__(self, seconds: float, clock: Clock = system_clock) -> None:
        self.seconds = seconds
        self.clock = clock
        self.last: datetime | None = None

    def due(self) -> bool:
        """Whether the job is due now; if so, it counts as run now."""
        now = self.clock()
        if self.last is not None and (now - self.last).total_seconds() < self.seconds:
            return False
        self.last = now
        return True
