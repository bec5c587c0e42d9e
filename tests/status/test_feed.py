"""The ledger feed: every committed change is seen, including ones committed out of id order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from ctstatus.ledger import Ledger, SerialState, create_ledger_engine, migrate
from ctstatus.status.feed import LedgerFeed


def test_changes_are_reported_in_order(make_issuer: Callable[..., Any], status_engine: Any) -> None:
    issuer = make_issuer()
    feed = LedgerFeed(status_engine)
    feed.start()
    record = issuer.serial(SerialState.REVOKED)
    changes = [c for c in feed.poll() if c.issuer_id == issuer.id]
    assert [c.action for c in changes] == ["reserve", "precert_signed", "issued", "revoke"]
    assert {c.serial for c in changes} == {record.serial}
    assert feed.poll() == []


@pytest.mark.postgres
def test_a_late_commit_with_a_lower_id_is_not_missed(
    fresh_postgres_url: str, issuer_factory: Callable[..., Any]
) -> None:
    """PostgreSQL hands out ids at insert and commits in any order: id n can appear after n+1.

    (SQLite has one writer at a time, so there ids always commit in order.)
    """
    status_engine = create_ledger_engine(fresh_postgres_url)
    migrate(status_engine)
    issuer = issuer_factory(Ledger(status_engine))
    clock = [0.0]
    feed = LedgerFeed(status_engine, gap_timeout=60, monotonic=lambda: clock[0])
    feed.start()
    insert = sa.text(
        "INSERT INTO events (issuer_id, serial_id, at, actor, action, detail) "
        "VALUES (:i, NULL, now(), 'test', :a, '{}') RETURNING id"
    )
    slow = status_engine.connect()
    slow_tx = slow.begin()
    early = slow.execute(insert, {"i": issuer.id, "a": "slow"}).scalar_one()
    with status_engine.begin() as fast:
        late = fast.execute(insert, {"i": issuer.id, "a": "fast"}).scalar_one()
    assert early < late
    assert [c.action for c in feed.poll()] == ["fast"]
    assert feed.gaps >= 1
    slow_tx.commit()
    slow.close()
    assert [c.action for c in feed.poll()] == ["slow"]
    assert feed.gaps == 0
    status_engine.dispose()


def test_gaps_are_given_up_after_the_timeout(status_engine: Any) -> None:
    clock = [0.0]
    feed = LedgerFeed(status_engine, gap_timeout=60, monotonic=lambda: clock[0])
    feed.start()
    feed._gaps = {10**12: 0.0}  # an id that will never commit (a rolled-back transaction)
    feed.poll()
    assert feed.gaps == 1
    clock[0] = 61
    feed.poll()
    assert feed.gaps == 0
