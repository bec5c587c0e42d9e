"""Submitting a precertificate to real-HTTP fake logs until the CT policy is met, or not."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.ct.data import fakelog

from ctstatus.ct.loglist import LogState
from ctstatus.ct.policy import CtPolicy
from ctstatus.ct.submit import (
    Outcome,
    PolicyNotMet,
    candidate_logs,
    order_candidates,
    submit_with_policy,
)
from ctstatus.ct.transport import (
    HttpSession,
    InvalidSct,
    LogRejected,
    RetryPolicy,
    new_http_session,
)

pytestmark = pytest.mark.anyio

NOT_BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
NOT_AFTER = NOT_BEFORE + timedelta(days=90)
RETRY = RetryPolicy(attempt_timeout=0.3, deadline=5, max_attempts=1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with fakelog.serve() as running:
        yield running


@pytest.fixture(scope="module")
def chain() -> list[bytes]:
    return fakelog.TestCa.create().chain()


@pytest.fixture
async def http() -> AsyncIterator[HttpSession]:
    async with new_http_session() as client:
        yield client


def three_logs(server: Any) -> tuple[Any, Any, Any]:
    return server.new_log("A"), server.new_log("B"), server.new_log("C")


def seed_starting(logs: list[Any], first: list[str]) -> int:
    """A seed for which the shuffled candidates start with the logs named in ``first``."""
    for seed in range(1000):
        order = order_candidates(logs, random.Random(seed))
        if [log.description for log in order[: len(first)]] == first:
            return seed
    raise AssertionError("no such seed")


async def submit(chain: list[bytes], logs: list[Any], http: Any, **options: Any) -> Any:
    options.setdefault("retry", RETRY)
    options.setdefault("stagger", 10.0)
    options.setdefault("deadline", 5.0)
    return await submit_with_policy(
        chain,
        logs,
        options.pop("policy", CtPolicy.CHROME),
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
        http=http,
        **options,
    )


async def test_quorum_from_two_operators(server: Any, http: Any, chain: list[bytes]) -> None:
    a, b, c = three_logs(server)
    logs = [a.as_log("Op1"), b.as_log("Op2"), c.as_log("Op3")]
    result = await submit(chain, logs, http, rng=random.Random(seed_starting(logs, ["A", "B"])))
    assert result.verdict.compliant
    assert {r.log.name for r in result.scts} == {"A", "B"}
    assert c.seen == []  # two were enough: the third log was never asked
    assert a.bodies("add-pre-chain") == b.bodies("add-pre-chain")  # the same precert bytes


async def test_a_hanging_log_is_hedged_and_cancelled(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    a, b, c = three_logs(server)
    a.fail("add-pre-chain", fakelog.hang())
    logs = [a.as_log("Op1"), b.as_log("Op2"), c.as_log("Op3")]
    seed = seed_starting(logs, ["A", "B"])
    retry = RetryPolicy(attempt_timeout=30, deadline=30, max_attempts=1)
    started = asyncio.get_running_loop().time()
    result = await submit(
        chain, logs, http, rng=random.Random(seed), stagger=0.1, deadline=30, retry=retry
    )
    took = asyncio.get_running_loop().time() - started
    assert result.verdict.compliant
    assert {r.log.name for r in result.scts} == {"B", "C"}
    assert took < 5
    outcomes = {r.log.description: r.outcome for r in result.reports}
    assert outcomes == {"A": Outcome.CANCELLED, "B": Outcome.SCT, "C": Outcome.SCT}
    hedge = next(r for r in result.reports if r.log.description == "C")
    assert hedge.started_after >= 0.1  # started by the stagger, not at once
    for _ in range(200):
        if a.disconnects:
            break
        await asyncio.sleep(0.01)
    assert a.disconnects == 1  # the cancelled request really was hung up on


async def test_a_failure_is_replaced_at_once(server: Any, http: Any, chain: list[bytes]) -> None:
    a, b, c = three_logs(server)
    a.fail("add-pre-chain", fakelog.status(400, '{"error_message": "unknown root"}'))
    logs = [a.as_log("Op1"), b.as_log("Op2"), c.as_log("Op3")]
    result = await submit(chain, logs, http, rng=random.Random(seed_starting(logs, ["A", "B"])))
    assert {r.log.name for r in result.scts} == {"B", "C"}
    failed = next(r for r in result.reports if r.outcome is Outcome.FAILED)
    assert isinstance(failed.error, LogRejected)
    assert failed.describe() == "log A: rejected, HTTP 400: unknown root"


async def test_an_invalid_sct_does_not_count(server: Any, http: Any, chain: list[bytes]) -> None:
    a, b, c = three_logs(server)
    a.fail("add-pre-chain", fakelog.Fault("bad_signature"))
    logs = [a.as_log("Op1"), b.as_log("Op2"), c.as_log("Op3")]
    result = await submit(chain, logs, http, rng=random.Random(seed_starting(logs, ["A", "B"])))
    assert {r.log.name for r in result.scts} == {"B", "C"}
    failed = next(r for r in result.reports if r.outcome is Outcome.FAILED)
    assert isinstance(failed.error, InvalidSct)


async def test_policy_not_met_says_why_and_keeps_the_sct(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    a, b, c = three_logs(server)
    b.fail("add-pre-chain", fakelog.hang())
    c.fail("add-pre-chain", fakelog.status(503, "overloaded"))
    logs = [a.as_log("Op1"), b.as_log("Op2"), c.as_log("Op3")]
    with pytest.raises(PolicyNotMet) as caught:
        await submit(chain, logs, http, rng=random.Random(seed_starting(logs, ["A", "B"])))
    error = caught.value
    assert (
        str(error) == "CT policy not met: 1 of 2 SCTs (log B: timeout after 0.3 s; log C: HTTP 503)"
    )
    assert [r.log.name for r in error.scts] == ["A"]  # A has published the precert
    assert error.scts[0].sct.log_id == a.log_id
    assert [(r.log.description, r.outcome) for r in error.reports] == [
        ("A", Outcome.SCT),
        ("B", Outcome.FAILED),
        ("C", Outcome.FAILED),
    ]


async def test_the_deadline_is_respected(server: Any, http: Any, chain: list[bytes]) -> None:
    a, b, c = three_logs(server)
    for log in (a, b, c):
        log.fail("add-pre-chain", fakelog.hang())
    logs = [a.as_log("Op1"), b.as_log("Op2"), c.as_log("Op3")]
    retry = RetryPolicy(attempt_timeout=30, deadline=30, max_attempts=1)
    started = asyncio.get_running_loop().time()
    with pytest.raises(PolicyNotMet) as caught:
        await submit(chain, logs, http, deadline=0.5, stagger=0.1, retry=retry)
    took = asyncio.get_running_loop().time() - started
    assert 0.5 <= took < 2
    assert re.fullmatch(
        r"CT policy not met: 0 of 2 SCTs \(log [ABC]: timeout after 0\.\d s"
        r"(; log [ABC]: timeout after 0\.\d s){2}\)",
        str(caught.value),
    ), str(caught.value)
    assert caught.value.scts == ()


async def test_same_seed_same_logs(server: Any, http: Any, chain: list[bytes]) -> None:
    logs = [server.new_log(name).as_log(f"Op{name}") for name in "PQRST"]
    picks = []
    for _ in range(2):
        result = await submit(chain, logs, http, rng=random.Random(42))
        picks.append(sorted(r.log.description for r in result.reports))
    assert picks[0] == picks[1]


async def test_apple_policy(server: Any, http: Any, chain: list[bytes]) -> None:
    logs = [server.new_log(name).as_log("SameOp") for name in "UV"]
    logs.append(server.new_log("W").as_log("OtherOp"))
    result = await submit(chain, logs, http, policy=CtPolicy.APPLE, rng=random.Random(1))
    assert result.verdict.compliant
    assert len({r.log.name for r in result.scts}) == 2
    operators = {
        log.operator for log in logs if log.description in {r.log.name for r in result.scts}
    }
    assert operators == {"SameOp", "OtherOp"}  # at most one SCT per operator counts


async def test_no_candidates(server: Any, http: Any, chain: list[bytes]) -> None:
    log = server.new_log("X")
    retired = log.as_log("Op", state=LogState.RETIRED)
    with pytest.raises(PolicyNotMet) as caught:
        await submit(chain, [retired], http)
    assert str(caught.value) == (
        "CT policy not met: 0 of 2 SCTs (no usable log accepts notAfter 2026-04-01T00:00:00+00:00)"
    )
    assert log.seen == []


async def test_a_bad_chain_sends_nothing(server: Any, http: Any, chain: list[bytes]) -> None:
    log = server.new_log("Y")
    with pytest.raises(ValueError, match="precertificate"):
        await submit([chain[1], chain[1]], [log.as_log("Op")], http)
    assert log.seen == []


def test_candidates_by_state_and_interval(server: Any) -> None:
    made = [server.new_log(f"Z{i}") for i in range(6)]
    inside = (NOT_BEFORE, NOT_AFTER + timedelta(days=1))
    outside = (NOT_AFTER + timedelta(days=1), NOT_AFTER + timedelta(days=200))
    logs = [
        made[0].as_log("O", LogState.USABLE),
        made[1].as_log("O", LogState.QUALIFIED, inside),
        made[2].as_log("O", LogState.USABLE, outside),
        made[3].as_log("O", LogState.READONLY),
        made[4].as_log("O", LogState.PENDING),
        made[5].as_log("O", LogState.REJECTED),
    ]
    assert [log.description for log in candidate_logs(logs, NOT_AFTER)] == ["Z0", "Z1"]


@given(
    operators=st.lists(st.sampled_from("abcde"), min_size=1, max_size=12),
    seed=st.integers(0, 2**32),
)
def test_distinct_operators_come_first(operators: list[str], seed: int) -> None:
    class Fake:
        def __init__(self, index: int, operator: str) -> None:
            self.index, self.operator = index, operator

    logs = [Fake(i, op) for i, op in enumerate(operators)]
    ordered = order_candidates(logs, random.Random(seed))  # type: ignore[arg-type]
    distinct = len(set(operators))
    assert len({log.operator for log in ordered[:distinct]}) == distinct
    assert sorted(log.index for log in ordered) == list(range(len(logs)))
    assert ordered == order_candidates(logs, random.Random(seed))  # type: ignore[arg-type]
