"""How long a TLS server certificate may be valid, by the date it is issued (BR §6.3.2, SC-081).

The Baseline Requirements cap the validity period of subscriber certificates by issuance date:
398 days before 2026-03-15, then 200, 100 from 2027-03-15 and 47 from 2029-03-15 (ballot
SC-081). The validity period counts notBefore to notAfter inclusive (BR §1.6.1), which is how
:func:`ctstatus.ca.profiles.validity` builds it.

We stay :data:`SAFETY_MARGIN_DAYS` under each cap. Our own arithmetic hits the cap exactly, but
not every checker counts the way we do: Apple rounds any partial day up, others count the
notAfter second differently, and a leap second or a clock that is a little off when the
certificate is judged must not turn a compliant certificate into a misissuance that has to be
revoked within five days. One day costs subscribers almost nothing and absorbs every one of
those. The cap that applies is the one in force at the injected clock's time, which becomes the
certificate's notBefore (we never backdate subscriber certificates).

Other profiles (ACME, short-lived) call :func:`max_lifetime_days` and :func:`check_lifetime`
rather than keep their own copy of the schedule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from ctstatus.errors import UserError

SAFETY_MARGIN_DAYS: Final = 1
"""Days we stay under the BR maximum (see the module docstring for why one)."""

BEFORE_SC081_DAYS: Final = 398
"""BR maximum for certificates issued before 2026-03-15."""

SCHEDULE: Final[tuple[tuple[datetime, int], ...]] = (
    (datetime(2026, 3, 15, tzinfo=UTC), 200),
    (datetime(2027, 3, 15, tzinfo=UTC), 100),
    (datetime(2029, 3, 15, tzinfo=UTC), 47),
)
"""SC-081: (issued on or after, BR maximum validity in days), oldest first."""

DEFAULT_LIFETIME_DAYS: Final = 90
"""The default lifetime while the schedule allows it: at most 180 days needs only 2 SCTs."""


class LifetimeError(UserError):
    """A requested lifetime that is not a positive number of days within the BR maximum."""


def br_max_lifetime_days(at: datetime) -> int:
    """The Baseline Requirements' maximum validity (days) for a certificate issued at ``at``."""
    if at.tzinfo is None:
        raise ValueError("the issuance time must be timezone-aware")
    days = BEFORE_SC081_DAYS
    for since, maximum in SCHEDULE:
        if at >= since:
            days = maximum
    return days


def max_lifetime_days(at: datetime) -> int:
    """The longest lifetime we issue at ``at``: the BR maximum less the safety margin."""
    return br_max_lifetime_days(at) - SAFETY_MARGIN_DAYS


def default_lifetime_days(at: datetime, configured: int | None = None) -> int:
    """The lifetime when a request names none: ``configured`` if set, else 90 days or, once the
    schedule drops below that (2029-03-15), the maximum allowed at ``at``."""
    if configured is not None:
        return configured
    return min(DEFAULT_LIFETIME_DAYS, max_lifetime_days(at))


def check_lifetime(days: int, at: datetime) -> int:
    """``days`` if a certificate issued at ``at`` may have it; LifetimeError saying why not."""
    if isinstance(days, bool) or not isinstance(days, int):
        raise LifetimeError(f"the lifetime must be a whole number of days, got {days!r}")
    maximum = max_lifetime_days(at)
    if days < 1:
        raise LifetimeError(
            f"a lifetime of {days} days is not a validity period; give 1..{maximum} days"
        )
    if days > maximum:
        raise LifetimeError(
            f"a lifetime of {days} days is more than the {maximum} days ctstatus issues on "
            f"{at.date().isoformat()} (BR §6.3.2 allows {br_max_lifetime_days(at)} days"
            f"{_since(at)}; we stay {SAFETY_MARGIN_DAYS} day under it)",
            f"ask for at most {maximum} days, or leave the lifetime out to get the default",
        )
    return days


def _since(at: datetime) -> str:
    current = [since for since, _ in SCHEDULE if at >= since]
    if not current:
        return f" before {SCHEDULE[0][0].date().isoformat()}"
    return f" from {current[-1].date().isoformat()}"


__all__ = [
    "BEFORE_SC081_DAYS",
    "DEFAULT_LIFETIME_DAYS",
    "SAFETY_MARGIN_DAYS",
    "SCHEDULE",
    "LifetimeError",
    "br_max_lifetime_days",
    "check_lifetime",
    "default_lifetime_days",
    "max_lifetime_days",
]
