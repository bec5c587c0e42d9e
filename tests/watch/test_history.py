"""The watcher's check history (``watch_checks``): every check appended, in the same transaction
as the certificate's last-check update, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ctstatus.clock import FrozenClock
from ctstatus.ct.loglist import log_list_document
from ctstatus.ct.merkle import CompactTree
from ctstatus.watch.config import WatchConfig
from ctstatus.watch.problems import Code, Finding
from ctstatus.watch.runner import Watcher
from ctstatus.watch.store import CheckDone, EntryRow, QueuedCert, WatchStore, certs

ISSUER = "ab" * 32
LOG = "cd" * 32


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest, database_factory: Any) -> Iterator[WatchStore]:
    database: AbstractContextManager[str] = database_factory(request.param)
    with database as url, WatchStore.open(url) as store:
        yield store


def queue(store: WatchStore, *serials: str) -> list[QueuedCert]:
    """Watched precertificates of ISSUER, verified and queued as the follower does it."""
    store.cursor(LOG, "test log", "http://127.0.0.1:1/")
    rows = [
        EntryRow(i, True, 1_000 + i, ISSUER, serial, bytes([i]) * 32, True, {"names": []}, None)
        for i, serial in enumerate(serials)
    ]
    tree = CompactTree()
    for row in rows:
        tree.append(bytes([row.idx]) * 32)
    store.commit_batch(LOG, rows, tree, now=1.0, queue=[(row, 0.0) for row in rows])
    return store.due(now=1.0)


def done(cert: QueuedCert, now: float, ocsp: Any, crl: str | None, *codes: Code) -> CheckDone:
    findings = [Finding(code, code.value, {}) for code in codes]
    subject = f"cert:{cert.issuer_key[:16]}:{cert.serial}"
    return CheckDone(cert, subject, "test CA", findings, now, "ocsp.,crl.", now + 60, ocsp, crl)


def last_check(store: WatchStore, serial: str) -> tuple[Any, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(certs.c.last_checked, certs.c.last_result).where(certs.c.serial == serial)
        ).one()
    return row[0], row[1]


def test_every_check_is_kept_oldest_first(store: WatchStore) -> None:
    first, other = queue(store, "1a2b", "3c4d")
    store.finish_checks([done(first, 10.0, "good", "not_listed"), done(other, 10.0, "good", None)])
    store.finish_checks([done(first, 70.0, "revoked", "not_listed")])
    store.finish_checks([done(first, 130.0, "revoked", "revoked", Code.OCSP_SHA256_FAILED)])

    history = store.check_history("1a2b")
    assert [(c.checked_at, c.ocsp, c.crl) for c in history] == [
        (10.0, "good", "not_listed"),
        (70.0, "revoked", "not_listed"),
        (130.0, "revoked", "revoked"),
    ]
    assert history[-1].findings == [Code.OCSP_SHA256_FAILED.value]
    assert {c.issuer_key for c in history} == {ISSUER}
    assert last_check(store, "1a2b") == (130.0, "revoked")  # the latest, as before
    assert [c.ocsp for c in store.check_history("3c4d", issuer_key=ISSUER)] == ["good"]
    assert store.check_history("3c4d", issuer_key="00" * 32) == []
    assert [c.checked_at for c in store.check_history("1a2b", limit=2)] == [70.0, 130.0]


def test_history_and_last_check_are_one_transaction(store: WatchStore) -> None:
    (cert,) = queue(store, "5e6f")
    store.finish_checks([done(cert, 10.0, "good", None)])
    with pytest.raises(sa.exc.IntegrityError):  # the history row is refused (ocsp NOT NULL)...
        store.finish_checks([done(cert, 70.0, None, None)])
    assert last_check(store, "5e6f") == (10.0, "good")  # ...so the last-check update is too
    assert [c.checked_at for c in store.check_history("5e6f")] == [10.0]


def test_trim_drops_only_checks_older_than_the_cutoff(store: WatchStore) -> None:
    (cert,) = queue(store, "7a8b")
    for at in (10.0, 70.0, 130.0):
        store.finish_checks([done(cert, at, "good", None)])
    assert store.trim_checks(before=70.0) == 1
    assert [c.checked_at for c in store.check_history("7a8b")] == [70.0, 130.0]
    assert last_check(store, "7a8b") == (130.0, "good")  # the latest check is not history
    assert store.trim_checks(before=70.0) == 0


def test_the_watcher_loop_trims_history_days(tmp_path: Path) -> None:
    """Each pass trims checks older than ``history_days`` (at most once an hour); 0 keeps all."""
    log_list = tmp_path / "log_list.json"
    log_list.write_text(json.dumps(log_list_document([])))
    clock = FrozenClock(datetime(2026, 11, 1, tzinfo=UTC))
    now = clock().timestamp()
    config = WatchConfig(
        database=f"sqlite:///{tmp_path / 'w.db'}",
        log_list=str(log_list),
        history_days=30,
        start="beginning",
    )
    watcher = Watcher(config, tmp_path, clock=clock, senders=[])
    try:
        (cert,) = queue(watcher.store, "9c0d")
        days = (-40, -31, -29, -1)
        for day in days:
            watcher.store.finish_checks([done(cert, now + day * 86_400, "good", None)])
        assert asyncio.run(watcher.run_once()).trimmed == 2
        kept = [c.checked_at for c in watcher.store.check_history("9c0d")]
        assert kept == [now - 29 * 86_400, now - 86_400]
        late = now - 35 * 86_400  # a stale check written after that trim (a slow batch)
        watcher.store.finish_checks([done(cert, late, "good", None)])
        clock.advance(minutes=30)
        assert asyncio.run(watcher.run_once()).trimmed == 0  # 30 min after the last trim
        clock.advance(minutes=31)
        assert asyncio.run(watcher.run_once()).trimmed == 1
    finally:
        watcher.close()
    keep_all = config.model_copy(update={"history_days": 0})
    watcher = Watcher(keep_all, tmp_path, clock=clock, senders=[])
    try:
        clock.advance(days=400)
        assert asyncio.run(watcher.run_once()).trimmed == 0
        assert len(watcher.store.check_history("9c0d")) == 2
    finally:
        watcher.close()


def test_a_check_names_the_crl_it_used(store: WatchStore) -> None:
    """Which CRL (URL, CRL number, thisUpdate) said "not listed" is kept with the check."""
    (cert,) = queue(store, "4e5f")
    crl = {"url": "http://pki.example.com/crl/1.crl", "number": 7, "this_update": "2026-12-01"}
    plain = done(cert, 10.0, "good", None)
    store.finish_checks([plain])
    checked = CheckDone(
        cert, plain.subject, "test CA", [], 70.0, "ocsp.,crl.", 130.0, "good", "not_listed", crl
    )
    store.finish_checks([checked])
    old, new = store.check_history("4e5f")
    assert (old.crl, old.crl_checked) == (None, None)
    assert (new.crl, new.crl_checked) == ("not_listed", crl)
