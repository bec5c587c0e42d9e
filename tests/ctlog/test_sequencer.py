"""The sequencer on its own, with an injected clock: batching, duplicates, STH timing, failures."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ctstatus.ct.sct import log_id, verify_tree_head
from ctstatus.ct.structures import SignedCertificateTimestamp
from ctstatus.ctlog.errors import SubmissionError
from ctstatus.ctlog.sequencer import Sequencer, SequencerError
from ctstatus.ctlog.storage import LogStore
from ctstatus.ctlog.validate import Candidate, ChainValidator, RootStore
from ctstatus.keys.signer import InProcessSigner

from .conftest import CtCa


class Clock:
    def __init__(self, now: int = 1_800_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def signer() -> InProcessSigner:
    return InProcessSigner(ec.generate_private_key(ec.SECP256R1()), "test log")


def candidates(ca: CtCa, count: int) -> list[Candidate]:
    validator = ChainValidator(RootStore([ca.root]))
    return [
        validator.validate([ca.precert().precert, ca.issuing_der], precert=True)
        for _ in range(count)
    ]


def open_store(path: Path, signer: InProcessSigner) -> LogStore:
    return LogStore(path, log_id(signer.public_key()))


def test_group_commit_batches_and_shares_duplicates(
    tmp_path: Path, signer: InProcessSigner, test_ca: CtCa
) -> None:
    store = open_store(tmp_path / "log.sqlite3", signer)
    commits: list[int] = []
    original = store.append

    def counting_append(entries, *args):  # type: ignore[no-untyped-def]
        commits.append(len(entries))
        original(entries, *args)

    store.append = counting_append  # type: ignore[method-assign]
    items = candidates(test_ca, 50)

    async def run() -> list[bytes]:
        sequencer = Sequencer(store, signer, Clock(), batch_max=16, linger_ms=5, name="t")
        await sequencer.start()
        # Every candidate twice, concurrently: the duplicates wait for the same entry.
        results = await asyncio.gather(*(sequencer.sequence(c) for c in items + items))
        await sequencer.drain()
        sequencer.close()
        return results

    scts = asyncio.run(run())
    assert scts[:50] == scts[50:]
    assert sum(commits) == 50  # each entry once
    assert max(commits) <= 16
    assert len(commits) <= 10  # batched, not one commit per entry
    indexes = sorted(SignedCertificateTimestamp.decode(s).extensions for s in scts[:50])
    assert len(set(indexes)) == 50
    store.close()


def test_tree_heads_strictly_increase_and_are_re_signed_when_old(
    tmp_path: Path, signer: InProcessSigner, test_ca: CtCa
) -> None:
    clock = Clock()
    path = tmp_path / "log.sqlite3"
    items = candidates(test_ca, 3)

    async def first_life() -> list[int]:
        store = open_store(path, signer)
        sequencer = Sequencer(store, signer, clock, batch_max=8, linger_ms=0, name="t")
        await sequencer.start()
        first = await sequencer.sign_tree_head()
        # Unchanged tree, newest STH young: the same STH comes back.
        assert await sequencer.sign_tree_head(only_if_older_than_ms=1000) == first
        clock.now += 1000
        second = await sequencer.sign_tree_head(only_if_older_than_ms=1000)
        assert second.timestamp > first.timestamp
        assert second.tree_size == first.tree_size == 0
        await sequencer.sequence(items[0])
        clock.now -= 60_000  # the wall clock steps back a minute
        third = await sequencer.sign_tree_head(only_if_older_than_ms=10**9)
        assert third.tree_size == 1
        assert third.timestamp > second.timestamp
        await sequencer.drain()
        sequencer.close()
        store.close()
        return [first.timestamp, second.timestamp, third.timestamp]

    async def second_life() -> None:
        store = open_store(path, signer)
        sequencer = Sequencer(store, signer, clock, batch_max=8, linger_ms=0, name="t")
        latest = await sequencer.start()
        assert latest is not None
        assert latest.tree_size == 1
        fourth = await sequencer.sign_tree_head()
        assert fourth.timestamp > latest.timestamp  # also across restarts
        await sequencer.sequence(items[1])
        fifth = await sequencer.sign_tree_head()
        heads = store.sths()
        for head in heads:
            verify_tree_head(head, signer.public_key())
        assert [h.timestamp for h in heads] == sorted({h.timestamp for h in heads})
        assert fifth.tree_size == 2
        await sequencer.drain()
        sequencer.close()
        store.close()

    asyncio.run(first_life())
    asyncio.run(second_life())


def test_a_failed_commit_answers_no_sct_and_leaves_the_tree_alone(
    tmp_path: Path, signer: InProcessSigner, test_ca: CtCa
) -> None:
    store = open_store(tmp_path / "log.sqlite3", signer)
    items = candidates(test_ca, 2)
    original = store.append

    def failing_append(*args):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    async def run() -> None:
        sequencer = Sequencer(store, signer, Clock(), batch_max=8, linger_ms=0, name="t")
        await sequencer.start()
        store.append = failing_append  # type: ignore[method-assign]
        with pytest.raises(SequencerError, match="disk full"):
            await sequencer.sequence(items[0])
        assert sequencer.committed_size == 0
        store.append = original  # type: ignore[method-assign]
        first = SignedCertificateTimestamp.decode(await sequencer.sequence(items[1]))
        assert first.extensions.endswith(b"\x00" * 5)  # index 0: the failed batch left no gap
        head = await sequencer.sign_tree_head()
        assert head.tree_size == 1
        assert store.sths() == [head]
        await sequencer.drain()
        sequencer.close()

    asyncio.run(run())
    store.close()


def test_temporal_interval(test_ca: CtCa) -> None:
    start = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    validator = ChainValidator(
        RootStore([test_ca.root]), (start, start + datetime.timedelta(days=365))
    )
    with pytest.raises(SubmissionError, match="temporal interval"):
        validator.validate([test_ca.precert().precert, test_ca.issuing_der], precert=True)
    inside = test_ca.precert(not_after=start + datetime.timedelta(days=10))
    assert validator.validate([inside.precert, test_ca.issuing_der], precert=True)


def test_a_database_of_another_log_is_refused(tmp_path: Path, signer: InProcessSigner) -> None:
    from ctstatus.ctlog.storage import StorageError

    open_store(tmp_path / "log.sqlite3", signer).close()
    other = InProcessSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(StorageError, match="another log key"):
        open_store(tmp_path / "log.sqlite3", other)
