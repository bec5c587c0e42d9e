"""The BR §6.3.2 / SC-081 lifetime schedule, on both sides of every boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctstatus.ca.lifetime import (
    LifetimeError,
    br_max_lifetime_days,
    check_lifetime,
    default_lifetime_days,
    max_lifetime_days,
)

JUST_BEFORE = timedelta(seconds=1)
BOUNDARIES = [
    (datetime(2026, 3, 15, tzinfo=UTC), 398, 200),
    (datetime(2027, 3, 15, tzinfo=UTC), 200, 100),
    (datetime(2029, 3, 15, tzinfo=UTC), 100, 47),
]


@pytest.mark.parametrize(("boundary", "before", "after"), BOUNDARIES)
def test_the_br_maximum_changes_exactly_at_each_sc081_date(
    boundary: datetime, before: int, after: int
) -> None:
    assert br_max_lifetime_days(boundary - JUST_BEFORE) == before
    assert br_max_lifetime_days(boundary) == after
    # We stay one day under the cap on both sides.
    assert max_lifetime_days(boundary - JUST_BEFORE) == before - 1
    assert max_lifetime_days(boundary) == after - 1


def test_the_schedule_holds_long_after_the_last_step() -> None:
    assert br_max_lifetime_days(datetime(2040, 1, 1, tzinfo=UTC)) == 47


@pytest.mark.parametrize(("boundary", "before", "after"), BOUNDARIES)
def test_check_accepts_the_maximum_and_refuses_one_more(
    boundary: datetime, before: int, after: int
) -> None:
    for at, cap in ((boundary - JUST_BEFORE, before - 1), (boundary, after - 1)):
        assert check_lifetime(cap, at) == cap
        with pytest.raises(LifetimeError, match=rf"more than the {cap} days") as error:
            check_lifetime(cap + 1, at)
        assert error.value.hint is not None
        assert f"at most {cap} days" in error.value.hint


@pytest.mark.parametrize("days", [0, -1, -90])
def test_zero_and_negative_lifetimes_are_refused(days: int) -> None:
    with pytest.raises(LifetimeError, match=rf"a lifetime of {days} days is not a validity"):
        check_lifetime(days, datetime(2026, 11, 1, tzinfo=UTC))


def test_a_boolean_is_not_a_lifetime() -> None:
    with pytest.raises(LifetimeError, match="whole number"):
        check_lifetime(True, datetime(2026, 11, 1, tzinfo=UTC))


def test_the_default_follows_the_schedule_so_issuance_keeps_working() -> None:
    assert default_lifetime_days(datetime(2026, 11, 1, tzinfo=UTC)) == 90
    assert default_lifetime_days(datetime(2027, 3, 15, tzinfo=UTC)) == 90
    assert default_lifetime_days(datetime(2029, 3, 15, tzinfo=UTC) - JUST_BEFORE) == 90
    assert default_lifetime_days(datetime(2029, 3, 15, tzinfo=UTC)) == 46
    # A configured lifetime is what the operator asked for; check_lifetime judges it.
    assert default_lifetime_days(datetime(2029, 3, 15, tzinfo=UTC), 30) == 30


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        br_max_lifetime_days(datetime(2027, 3, 15))
