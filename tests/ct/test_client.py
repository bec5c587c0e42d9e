"""The async log client against a real HTTP fake log on 127.0.0.1 that fails like real logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.ct.data import fakelog

from ctstatus.clock import FrozenClock
from ctstatus.ct import FailureReason, LogEntryType
from ctstatus.ct.client import LogClient, LogEndpoint, submission_body
from ctstatus.ct.transport import (
    HttpSession,
    InvalidEntries,
    InvalidProof,
    InvalidSct,
    InvalidSth,
    LogConnectionError,
    LogError,
    LogHttpError,
    LogMalformedResponse,
    LogRejected,
    LogResponseTooLarge,
    LogTimeout,
    LoopTimer,
    NoLogKey,
    RetryPolicy,
    new_http_session,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with fakelog.serve() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[HttpSession]:
    async with new_http_session() as client:
        yield client


class FakeTimer:
    """Virtual time: sleeping records the delay and moves the clock, at once."""

    def __init__(self) -> None:
        self.time = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
        await asyncio.sleep(0)


FAST = RetryPolicy(attempt_timeout=2.0, deadline=30.0, max_attempts=4, initial_backoff=1.0)


def client_for(log: Any, http: HttpSession, **options: Any) -> LogClient:
    options.setdefault("timer", FakeTimer())
    options.setdefault("retry", FAST)
    endpoint = LogEndpoint.from_url(log.url, log.key_der, name=log.description)
    return LogClient(endpoint, http, **options)


@pytest.fixture(scope="module")
def ca() -> Any:
    return fakelog.TestCa.create()


@pytest.fixture
def chain(ca: Any) -> list[bytes]:
    return ca.chain()


vector = fakelog.vector


async def test_add_pre_chain_returns_a_verified_sct(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    log = server.new_log("A")
    received = await client_for(log, http).add_pre_chain(chain)
    assert received.sct.log_id == log.log_id
    assert received.attempts == 1
    assert received.log.name == "A"
    assert abs(received.timestamp - datetime.now(UTC)) < timedelta(minutes=1)
    assert log.bodies("add-pre-chain") == [submission_body(chain)]
    assert log.tile_leaves[0].timestamped_entry.entry_type is LogEntryType.PRECERT_ENTRY


async def test_add_chain_of_a_real_certificate(server: Any, http: Any, chain: list[bytes]) -> None:
    log = server.new_log("A")
    real = [vector("x509/cryptography-scts.pem"), vector("x509/letsencryptx3.pem")]
    received = await client_for(log, http).add_chain(real)
    assert received.sct.log_id == log.log_id
    with pytest.raises(ValueError, match="add_pre_chain"):
        await client_for(log, http).add_chain(chain)


async def test_retries_resend_the_same_bytes_with_backoff(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    log = server.new_log("B")
    log.fail(
        "add-pre-chain", fakelog.status(503, "busy"), fakelog.status(500), fakelog.Fault("truncate")
    )
    timer = FakeTimer()
    received = await client_for(log, http, timer=timer).add_pre_chain(chain)
    assert received.attempts == 4
    bodies = log.bodies("add-pre-chain")
    assert len(bodies) == 4
    assert set(bodies) == {submission_body(chain)}  # byte-identical, invariant 4
    assert len(timer.sleeps) == 3
    assert 0.5 <= timer.sleeps[0] <= 1.0
    assert 1.0 <= timer.sleeps[1] <= 2.0


async def test_retry_after_is_honoured(server: Any, http: Any, chain: list[bytes]) -> None:
    log = server.new_log("B")
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    later = (clock.now + timedelta(seconds=12)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    log.fail(
        "add-pre-chain",
        fakelog.status(429, "slow down", retry_after="7"),
        fakelog.status(503, retry_after=later),
    )
    timer = FakeTimer()
    received = await client_for(log, http, timer=timer, clock=clock).add_pre_chain(chain)
    assert received.attempts == 3
    assert timer.sleeps[0] == 7.0
    assert timer.sleeps[1] == 12.0


async def test_retry_after_past_the_deadline_gives_up_at_once(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    log = server.new_log("B")
    log.fail("add-pre-chain", fakelog.status(503, "maintenance", retry_after="600"))
    timer = FakeTimer()
    with pytest.raises(LogHttpError) as caught:
        await client_for(log, http, timer=timer).add_pre_chain(chain, deadline=10)
    assert timer.sleeps == []
    assert caught.value.status == 503
    assert caught.value.summary == "log B: HTTP 503"
    assert str(caught.value) == "log B: HTTP 503: maintenance"


async def test_a_400_is_final(server: Any, http: Any, chain: list[bytes]) -> None:
    log = server.new_log("C")
    log.fail("add-pre-chain", fakelog.status(400, json.dumps({"error_message": "unknown root"})))
    with pytest.raises(LogRejected) as caught:
        await client_for(log, http).add_pre_chain(chain)
    assert caught.value.status == 400
    assert caught.value.attempts == 1
    assert str(caught.value) == "log C: rejected, HTTP 400: unknown root"
    assert len(log.bodies("add-pre-chain")) == 1


async def test_attempts_and_deadline_bound_the_retries(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    log = server.new_log("C")
    log.fail("add-pre-chain", *[fakelog.status(503) for _ in range(10)])
    with pytest.raises(LogHttpError) as caught:
        await client_for(log, http).add_pre_chain(chain)
    assert caught.value.attempts == FAST.max_attempts
    assert str(caught.value) == "log C: HTTP 503 (4 attempts)"
    timer = FakeTimer()
    with pytest.raises(LogHttpError) as caught:
        await client_for(log, http, timer=timer).add_pre_chain(chain, deadline=2.5)
    assert sum(timer.sleeps) < 2.5  # never sleeps past the deadline
    assert caught.value.attempts == len(timer.sleeps) + 1 >= 2


async def test_a_hanging_log_times_out_and_sees_us_hang_up(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    log = server.new_log("B")
    log.fail("add-pre-chain", fakelog.hang(), fakelog.hang())
    retry = RetryPolicy(attempt_timeout=0.2, deadline=5, max_attempts=2, initial_backoff=0.01)
    started = asyncio.get_running_loop().time()
    with pytest.raises(LogTimeout) as caught:
        await client_for(log, http, timer=LoopTimer(), retry=retry).add_pre_chain(chain)
    took = asyncio.get_running_loop().time() - started
    assert 0.4 <= took < 2
    assert caught.value.attempts == 2
    assert str(caught.value).startswith("log B: timeout after 0.")
    assert str(caught.value).endswith("s (2 attempts)")
    for _ in range(100):
        if log.disconnects == 2:
            break
        await asyncio.sleep(0.01)
    assert log.disconnects == 2


async def test_the_overall_deadline_cuts_an_attempt_short(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    log = server.new_log("B")
    log.fail("add-pre-chain", fakelog.hang())
    retry = RetryPolicy(attempt_timeout=5, deadline=30)
    with pytest.raises(LogTimeout) as caught:
        await client_for(log, http, timer=LoopTimer(), retry=retry).add_pre_chain(
            chain, deadline=0.3
        )
    assert caught.value.attempts == 1
    assert caught.value.summary == "log B: timeout after 0.3 s"


async def test_connection_refused(http: Any) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    key = fakelog.FakeLog("D", "d", "http://x").key_der
    endpoint = LogEndpoint.from_url(f"http://127.0.0.1:{port}/", key, name="D")
    with pytest.raises(LogConnectionError) as caught:
        await LogClient(endpoint, http, timer=FakeTimer(), retry=FAST).add_chain(
            [fakelog.vector("x509/letsencryptx3.pem")]
        )
    assert caught.value.attempts == 4
    assert caught.value.summary == "log D: connection failed"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (fakelog.Fault("garbage"), LogMalformedResponse),
        (fakelog.Fault("garbage", body=b"[1, 2]"), LogMalformedResponse),
        (
            fakelog.Fault("garbage", body=b'{"sct_version": 0, "id": "not base64!"}'),
            LogMalformedResponse,
        ),
        (fakelog.Fault("oversize"), LogResponseTooLarge),
        (fakelog.Fault("declared_oversize"), LogResponseTooLarge),
    ],
)
async def test_malformed_answers_are_typed_and_final(
    server: Any, http: Any, chain: list[bytes], fault: Any, error: type[LogError]
) -> None:
    log = server.new_log("E")
    log.fail("add-pre-chain", fault)
    with pytest.raises(error) as caught:
        await client_for(log, http).add_pre_chain(chain)
    assert caught.value.attempts == 1
    assert str(caught.value).startswith("log E: malformed add-pre-chain response: ")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("bad_signature", FailureReason.BAD_SIGNATURE),
        ("wrong_log_id", FailureReason.WRONG_LOG_ID),
        ("future", FailureReason.FUTURE_TIMESTAMP),
    ],
)
async def test_invalid_scts_are_never_returned(
    server: Any, http: Any, chain: list[bytes], kind: str, reason: FailureReason
) -> None:
    log = server.new_log("F")
    log.fail("add-pre-chain", fakelog.Fault(kind))
    with pytest.raises(InvalidSct) as caught:
        await client_for(log, http).add_pre_chain(chain)
    assert caught.value.reason is reason
    assert caught.value.summary == f"log F: invalid SCT ({reason.value})"


async def test_an_sct_for_another_issuer_is_invalid(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    """The SCT must sign exactly the submitted TBS and issuer key: a log that signed the
    precertificate under another issuer key hash is caught."""
    log = server.new_log("F")
    sct = log.submit([chain[0], vector("x509/letsencryptx3.pem")], precert=True)
    log.submitted[__import__("hashlib").sha256(b"".join(chain) + b"\x01").digest()] = sct
    with pytest.raises(InvalidSct) as caught:
        await client_for(log, http).add_pre_chain(chain)
    assert caught.value.reason is FailureReason.BAD_SIGNATURE


async def test_bad_chains_are_refused_before_sending(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    log = server.new_log("G")
    client = client_for(log, http)
    for bad in ([], [chain[0]], [chain[1], chain[1]], [b""], b"abc"):
        with pytest.raises(ValueError, match=r"chain|precertificate|certificate"):
            await client.add_pre_chain(bad)  # type: ignore[arg-type]
    assert log.seen == []


async def test_sth_is_verified(server: Any, http: Any, chain: list[bytes]) -> None:
    log = server.new_log("H")
    log.submit(chain, precert=True)
    client = client_for(log, http)
    sth = await client.get_sth()
    assert sth.tree_size == 1
    log.fail("get-sth", fakelog.Fault("bad_sth"))
    with pytest.raises(InvalidSth) as caught:
        await client.get_sth()
    assert caught.value.summary == "log H: STH does not verify"
    keyless = LogClient(LogEndpoint.from_url(log.url), http)
    assert (await keyless.get_sth_unverified()).tree_size == 1
    with pytest.raises(NoLogKey):
        await keyless.get_sth()


async def test_consistency_and_inclusion_proofs_are_checked(server: Any, http: Any) -> None:
    log = server.new_log("I")
    log.add_synthetic(5)
    client = client_for(log, http)
    first = await client.get_sth()
    log.add_synthetic(8)
    second = await client.get_sth()
    proof = await client.get_sth_consistency(first, second)
    assert proof
    assert await client.get_sth_consistency(second, second) == ()
    log.fail("get-sth-consistency", fakelog.Fault("bad_proof"))
    with pytest.raises(InvalidProof):
        await client.get_sth_consistency(first, second)
    forged = type(first)(first.tree_size, first.timestamp, bytes(32), first.signature)
    with pytest.raises(InvalidProof):
        await client.get_sth_consistency(forged, second)
    inclusion = await client.get_proof_by_hash(log.hashes[7], second)
    assert inclusion.leaf_index == 7
    log.fail("get-proof-by-hash", fakelog.Fault("bad_proof"))
    with pytest.raises(InvalidProof):
        await client.get_proof_by_hash(log.hashes[7], second)


async def test_entries_loop_over_a_capped_log_and_decode(
    server: Any, http: Any, chain: list[bytes]
) -> None:
    log = server.new_log("J")
    log.entries_cap = 3
    log.submit(chain, precert=True)
    log.submit(
        [vector("x509/cryptography-scts.pem"), vector("x509/letsencryptx3.pem")], precert=False
    )
    log.add_synthetic(8)
    client = client_for(log, http)
    entries = [entry async for entry in client.iter_entries(0, 9)]
    assert [e.index for e in entries] == list(range(10))
    assert entries[0].entry_type is LogEntryType.PRECERT_ENTRY
    assert entries[0].pre_certificate == chain[0]
    assert entries[0].chain == (chain[1],)
    assert entries[1].entry_type is LogEntryType.X509_ENTRY
    assert entries[1].certificate_der == vector("x509/cryptography-scts.pem")
    assert len(log.bodies("get-entries")) == 4
    sth = await client.get_sth()
    await client.verify_entry(entries[4], sth)


async def test_entries_not_matching_the_tree_are_caught(server: Any, http: Any) -> None:
    log = server.new_log("K")
    log.add_synthetic(4)
    client = client_for(log, http)
    sth = await client.get_sth()
    log.fail("get-entries", fakelog.Fault("bad_entries"))
    (entry, *_) = await client.get_entries(0, 3)
    with pytest.raises(InvalidEntries) as caught:
        await client.verify_entry(entry, sth)
    assert caught.value.summary == "log K: entry 0 is at index 1 in the tree"


async def test_get_entries_malformed_answers(server: Any, http: Any) -> None:
    log = server.new_log("L")
    log.add_synthetic(3)
    client = client_for(log, http)
    for body in (
        b'{"entries": []}',
        b'{"entries": {}}',
        b'{"entries": [1]}',
        b'{"entries": [{"leaf_input": "AAAA", "extra_data": ""}]}',
    ):
        log.fail("get-entries", fakelog.Fault("garbage", body=body))
        with pytest.raises(LogMalformedResponse):
            await client.get_entries(0, 2)
    four = json.dumps({"entries": [{"leaf_input": "", "extra_data": ""}] * 4}).encode()
    log.fail("get-entries", fakelog.Fault("garbage", body=four))
    with pytest.raises(LogMalformedResponse, match="4 entries for 3 asked"):
        await client.get_entries(0, 2)


async def test_static_log_checkpoint_and_tiles(server: Any, http: Any, chain: list[bytes]) -> None:
    log = server.new_log("Tiled", tiled=True)
    log.submit(chain, precert=True)
    log.add_synthetic(600)
    endpoint = LogEndpoint.from_log(log.as_log("Op"))
    client = LogClient(endpoint, http, timer=FakeTimer(), retry=FAST)
    checkpoint, sth = await client.get_checkpoint()
    assert checkpoint.origin == log.origin
    assert sth.tree_size == 601
    entries = [e async for e in client.iter_tiled_entries(sth, 250, 600)]
    assert [e.index for e in entries] == list(range(250, 601))
    head = [e async for e in client.iter_tiled_entries(sth, 0, 0)]
    assert head[0].pre_certificate == chain[0]
    fingerprint = log.tile_leaves[0].chain_fingerprints[0]
    assert await client.get_issuer(fingerprint) == chain[1]
    log.gzip_tiles = True
    again = [e async for e in client.iter_tiled_entries(sth, 512, 600)]
    assert [e.leaf_hash for e in again] == log.hashes[512:601]


async def test_static_log_lies_are_caught(server: Any, http: Any) -> None:
    log = server.new_log("Liar", tiled=True)
    log.add_synthetic(300)
    client = LogClient(LogEndpoint.from_log(log.as_log("Op")), http, timer=FakeTimer(), retry=FAST)
    log.fail("checkpoint", fakelog.Fault("bad_sth"))
    with pytest.raises(InvalidSth):
        await client.get_checkpoint()
    _, sth = await client.get_checkpoint()
    log.fail("tile", fakelog.Fault("bad_tile"))
    with pytest.raises(InvalidEntries):
        async for _ in client.iter_tiled_entries(sth, 0, 10):
            pass
    log.add_synthetic(1)  # the tree grows: tiles are append-only, the old checkpoint still holds
    assert len([e async for e in client.iter_tiled_entries(sth, 260, 299)]) == 40


async def test_unknown_log_paths_are_http_errors(server: Any, http: Any) -> None:
    endpoint = LogEndpoint.from_url(f"{server.base_url}/nope/", name="M")
    with pytest.raises(LogRejected, match="HTTP 404"):
        await LogClient(endpoint, http, timer=FakeTimer()).get_sth_unverified()
