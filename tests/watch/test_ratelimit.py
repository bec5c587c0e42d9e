"""Per-log rate limits and 429/5xx backoff when following logs, on an injected timer (no sleeps):
every request to a log (get-sth, get-entries, checkpoint, tiles, retries) takes a slot of its
token bucket, and a log answering 429 is asked again only after its Retry-After."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.ct.data import fakelog

from ctstatus.ct.client import Limits, LogClient, LogEndpoint
from ctstatus.ct.loglist import log_list_document
from ctstatus.ct.transport import RetryPolicy, new_http_session
from ctstatus.errors import ConfigError
from ctstatus.watch.config import WatchConfig
from ctstatus.watch.follower import FollowResult, FollowSettings, LogFollower
from ctstatus.watch.ratelimit import TokenBucket
from ctstatus.watch.runner import Watcher
from ctstatus.watch.store import WatchStore

from .conftest import WatchCa, start_logs, stop_logs

WATCHER_RETRY = RetryPolicy(attempt_timeout=10, deadline=120, max_attempts=8)  # as the Watcher


class FakeTimer:
    """Monotonic time that only moves when someone sleeps; sleeping returns at once."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


class RecordingBucket(TokenBucket):
    """A token bucket that remembers the slot (start time) it gave each request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots: list[float] = []

    def reserve(self) -> float:
        now = self.timer.now()
        wait = super().reserve()
        self.slots.append(now + wait)
        return wait


def test_bucket_gives_a_burst_then_one_slot_per_interval() -> None:
    timer = FakeTimer()
    bucket = RecordingBucket(2.0, timer=timer)  # burst: one second's worth, 2
    assert [bucket.reserve() for _ in range(6)] == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    timer.t = 100.0  # idle long enough: the burst is back, no debt is carried
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.5]


def test_concurrent_waiters_are_served_in_order() -> None:
    timer = FakeTimer()
    bucket = RecordingBucket(4.0, burst=1, timer=timer)

    async def run() -> None:
        await asyncio.gather(*(bucket.acquire() for _ in range(5)))

    asyncio.run(run())
    assert bucket.slots == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert timer.t == 1.0  # the fake time moved only by their sleeps: none left before its slot


def test_a_slow_rate_is_allowed_and_zero_is_not() -> None:
    assert TokenBucket(0.1).burst == 1.0
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


# -- following a real log on loopback --------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[fakelog.FakeLogServer]:
    with fakelog.serve() as running:
        yield running


@pytest.fixture(scope="module")
def ca() -> fakelog.TestCa:
    return fakelog.TestCa.create("rate limit test CA")


def filled(server: fakelog.FakeLogServer, ca: fakelog.TestCa, count: int, **kw: Any) -> Any:
    log = server.new_log(f"log {len(server.logs)}", **kw)
    for serial in range(1, count + 1):
        log.submit(ca.chain(serial=serial, names=(f"n{serial}.example.test",)), precert=True)
    return log


def follow(
    tmp_path: Path,
    log: Any,
    bucket: TokenBucket,
    timer: FakeTimer,
    *,
    batch: int,
    concurrency: int = 1,
) -> FollowResult:
    async def run() -> FollowResult:
        async with new_http_session() as http:
            client = LogClient(
                LogEndpoint.from_log(log.as_log("test operator")),
                http,
                timer=timer,
                retry=WATCHER_RETRY,
                limits=Limits(entries_per_request=batch),
                throttle=bucket.acquire,
            )
            settings = FollowSettings(batch_size=batch, concurrency=concurrency)
            with WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}") as store:
                return await LogFollower(client, store, "all", settings).poll()

    return asyncio.run(run())


def test_every_get_sth_and_get_entries_takes_a_slot(
    tmp_path: Path, server: fakelog.FakeLogServer, ca: fakelog.TestCa
) -> None:
    log = filled(server, ca, 12)
    timer = FakeTimer()
    bucket = RecordingBucket(1.0, timer=timer)
    result = follow(tmp_path, log, bucket, timer, batch=3)
    assert (result.verified_size, result.findings) == (12, [])
    assert [s.endpoint for s in log.seen] == ["get-sth"] + ["get-entries"] * 4
    assert bucket.slots == [0.0, 1.0, 2.0, 3.0, 4.0]  # one request a second, none earlier
    assert timer.sleeps == [1.0] * 4


def test_tiled_log_checkpoint_and_tiles_are_limited_with_downloads_in_flight(
    tmp_path: Path, server: fakelog.FakeLogServer, ca: fakelog.TestCa
) -> None:
    log = filled(server, ca, 600, tiled=True)
    timer = FakeTimer()
    bucket = RecordingBucket(2.0, timer=timer)
    result = follow(tmp_path, log, bucket, timer, batch=256, concurrency=4)
    assert (result.verified_size, result.findings) == (600, [])
    kinds = [s.endpoint for s in log.seen]
    assert kinds[0] == "checkpoint"
    assert kinds.count("data") == 3  # 256 + 256 + 88
    assert len(log.seen) == len(bucket.slots)  # every request went through the bucket
    # A burst of 2, then one slot every 0.5 s, in the order requests asked for them.
    assert bucket.slots == [max(0.0, (i - 1) * 0.5) for i in range(len(log.seen))]


def test_retry_after_is_honoured_and_counted_against_the_limit(
    tmp_path: Path, server: fakelog.FakeLogServer, ca: fakelog.TestCa
) -> None:
    log = filled(server, ca, 4)
    log.fail("get-sth", *[fakelog.status(429, "slow down", retry_after="30")] * 2)
    log.fail("get-entries", fakelog.status(503, "busy", retry_after="7"))
    timer = FakeTimer()
    bucket = RecordingBucket(1.0, timer=timer)
    result = follow(tmp_path, log, bucket, timer, batch=4)
    assert (result.verified_size, result.findings) == (4, [])
    assert [s.endpoint for s in log.seen] == ["get-sth"] * 3 + ["get-entries"] * 2
    # Retry-After beats the backoff; get-entries right after the head waits its 1 s slot.
    assert timer.sleeps == [30.0, 30.0, 1.0, 7.0]
    assert bucket.slots == [0.0, 30.0, 60.0, 61.0, 68.0]  # retries take slots too


def test_a_log_that_keeps_answering_429_is_not_hammered(
    tmp_path: Path, server: fakelog.FakeLogServer, ca: fakelog.TestCa
) -> None:
    log = filled(server, ca, 2)
    log.fail("get-sth", *[fakelog.status(429, "slow down", retry_after="30")] * 50)
    timer = FakeTimer()
    result = follow(tmp_path, log, RecordingBucket(100.0, timer=timer), timer, batch=2)
    assert [f.code.value for f in result.findings] == ["log.unreachable"]
    assert "HTTP 429" in result.findings[0].message
    # Asked at 0, 30, 60 and 90 s; a fifth wait would end past the 120 s deadline.
    assert len(log.seen) == 4
    assert timer.sleeps == [30.0, 30.0, 30.0]


def test_5xx_without_retry_after_backs_off_exponentially(
    tmp_path: Path, server: fakelog.FakeLogServer, ca: fakelog.TestCa
) -> None:
    log = filled(server, ca, 2)
    log.fail("get-sth", *[fakelog.status(500, "oops")] * 50)
    timer = FakeTimer()
    result = follow(tmp_path, log, RecordingBucket(100.0, timer=timer), timer, batch=2)
    assert [f.code.value for f in result.findings] == ["log.unreachable"]
    assert len(log.seen) == WATCHER_RETRY.max_attempts
    bases = [min(8.0, 0.5 * 2**i) for i in range(len(timer.sleeps))]
    assert all(b / 2 <= s <= b for s, b in zip(timer.sleeps, bases, strict=True)), timer.sleeps


# -- the watcher: config and the real log server's 429 ---------------------------------------


def _log_list(tmp_path: Path, logs: list[Any]) -> Path:
    path = tmp_path / "log_list.json"
    path.write_text(json.dumps(log_list_document(logs)))
    return path


def test_config_default_and_overrides(
    tmp_path: Path, server: fakelog.FakeLogServer, ca: fakelog.TestCa
) -> None:
    one, two, three = (filled(server, ca, 1) for _ in range(3))
    listed = [log.as_log("op") for log in (one, two, three)]
    config = WatchConfig(
        database=f"sqlite:///{tmp_path / 'w.db'}",
        log_list=str(_log_list(tmp_path, listed)),
        log_requests_per_second=5,
        log_rate_limits={
            one.url.rstrip("/"): 0.5,  # by URL, trailing slash or not
            listed[1].log_id_b64: 50,  # by log ID: faster than the default is allowed
            two.description: 2,  # and by description: the lowest override wins
        },
    )
    watcher = Watcher(config, tmp_path, senders=[])
    try:
        rates = {url: bucket.rate for url, bucket in watcher.buckets.items()}
    finally:
        watcher.close()
    assert rates == {one.url: 0.5, two.url: 2.0, three.url: 5.0}


def test_an_override_for_no_listed_log_is_a_config_error(
    tmp_path: Path, server: fakelog.FakeLogServer, ca: fakelog.TestCa
) -> None:
    log = filled(server, ca, 1)
    config = WatchConfig(
        log_list=str(_log_list(tmp_path, [log.as_log("op")])),
        log_rate_limits={"https://ct.example.invalid/typo/": 1},
    )
    with pytest.raises(ConfigError, match="no log of the log list"):
        Watcher(config, tmp_path, senders=[])
    assert not (tmp_path / "watch.sqlite3").exists()  # refused before opening anything


def test_watcher_backs_off_a_rate_limiting_ctstatus_log(tmp_path: Path) -> None:
    """``ctstatus log serve`` answering 429 (Retry-After: 40) to everything: one watcher pass
    asks three times, 40 s apart by its timer, and opens log.unreachable."""
    ca = WatchCa.create("429")
    logs = start_logs(tmp_path / "logs", [ca.root])
    try:
        logs.set_faults("alpha", scope="all", rate_limit_retry_after=40)
        config = WatchConfig(
            database=f"sqlite:///{tmp_path / 'w.db'}",
            log_list=str(logs.log_list),
            start="beginning",
            alerts={"stdout": False},
        )
        timer = FakeTimer()
        watcher = Watcher(config, tmp_path, timer=timer, senders=[])
        try:
            result = asyncio.run(watcher.run_once())
            codes = {p.code for p in watcher.store.problems(open_only=True)}
        finally:
            watcher.close()
        assert [f.code.value for f in result.follow[0].findings] == ["log.unreachable"]
        assert codes == {"log.unreachable"}
        assert logs.prepared.logs["alpha"].faults.seen == 3  # at 0, 40 and 80 s
        assert timer.sleeps == [40.0, 40.0]
    finally:
        stop_logs(logs)


# -- a Retry-After pauses every request to the log ---------------------------------------


def test_a_pause_holds_every_later_request_until_it_ends() -> None:
    timer = FakeTimer()
    bucket = RecordingBucket(100.0, timer=timer)

    async def run() -> None:
        await bucket.acquire()  # a request in flight when the log says 429, Retry-After: 20
        bucket.pause(20.0)
        bucket.pause(5.0)  # a shorter pause from another answer does not cut it short
        await asyncio.gather(bucket.acquire(), bucket.acquire())  # the log's other requests

    asyncio.run(run())
    assert bucket.slots[0] == 0.0
    assert all(slot >= 20.0 for slot in bucket.slots[1:]), bucket.slots
    assert len(bucket.slots) == 3


def test_a_pause_extended_while_waiting_is_waited_out() -> None:
    timer = FakeTimer()
    bucket = RecordingBucket(100.0, timer=timer)

    async def run() -> None:
        bucket.pause(10.0)
        waiter = asyncio.create_task(bucket.acquire())
        await asyncio.sleep(0)  # the waiter sleeps towards t=10
        bucket.pause(30.0)  # from t=10 (the fake clock moved): until 40
        await waiter

    asyncio.run(run())
    assert bucket.slots == [40.0]


def test_the_client_reports_each_retry_after_to_the_log_pause(
    tmp_path: Path, server: fakelog.FakeLogServer, ca: fakelog.TestCa
) -> None:
    """What the Watcher wires: ``on_retry_after=bucket.pause``, so a 429 on one request holds
    the log's other requests (in flight or not yet sent) for as long as the log asked."""
    log = filled(server, ca, 3)
    log.fail("get-sth", fakelog.status(429, "slow down", retry_after="25"))
    timer = FakeTimer()
    bucket = RecordingBucket(100.0, timer=timer)
    paused: list[float] = []

    def pause(seconds: float) -> None:
        paused.append(seconds)
        bucket.pause(seconds)

    async def run() -> FollowResult:
        async with new_http_session() as http:
            client = LogClient(
                LogEndpoint.from_log(log.as_log("test operator")),
                http,
                timer=timer,
                retry=WATCHER_RETRY,
                throttle=bucket.acquire,
                on_retry_after=pause,
            )
            with WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}") as store:
                return await LogFollower(client, store, "all").poll()

    result = asyncio.run(run())
    assert (result.verified_size, result.findings) == (3, [])
    assert paused == [25.0]
    assert bucket.slots[0] == 0.0
    assert all(slot >= 25.0 for slot in bucket.slots[1:]), bucket.slots
