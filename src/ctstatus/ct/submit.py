"""Submitting one precertificate to logs until a browser CT policy is met (Boulder's way).

Candidate logs are those of the list that are Usable or Qualified, whose temporal interval
covers the certificate's notAfter and that have a URL. They are shuffled with an injected RNG
and ordered so that different operators come first. As many submissions start at once as the
policy needs SCTs; another starts at once when one fails, and one more per ``stagger`` while
any is slow. Each SCT is verified before it counts; as soon as the verified SCTs satisfy
:func:`~ctstatus.ct.policy.evaluate` the rest are cancelled.

The same precertificate chain goes to every log and every retry (invariant 4). When the policy
cannot be met, :class:`PolicyNotMet` still carries every SCT received: a log that accepted the
precertificate has published it, and the CA must know (the Microsec incident).
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ctstatus.clock import Clock, system_clock
from ctstatus.ct.client import CallStats, LogClient, ReceivedSct, prepare_submission
from ctstatus.ct.loglist import Log, LogList
from ctstatus.ct.policy import (
    CtPolicy,
    LoggedSct,
    PolicyVerdict,
    evaluate,
    not_submittable,
    required_scts,
)
from ctstatus.ct.transport import (
    HttpSession,
    LogError,
    LogTimeout,
    LoopTimer,
    RetryPolicy,
    Timer,
    format_seconds,
)


class Outcome(enum.StrEnum):
    SCT = "sct"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class LogReport:
    """What one log did: its SCT or error, when it was started and how long it took."""

    log: Log
    outcome: Outcome
    started_after: float
    elapsed: float
    attempts: int
    sct: ReceivedSct | None = None
    error: LogError | None = None

    def describe(self) -> str:
        """One line: ``log A: SCT in 0.2 s``, ``log B: timeout after 10 s``, …"""
        took = format_seconds(self.elapsed)
        if self.outcome is Outcome.SCT:
            return f"log {self.log.description}: SCT in {took} s"
        if self.outcome is Outcome.CANCELLED:
            return f"log {self.log.description}: cancelled after {took} s"
        assert self.error is not None
        return self.error.summary


@dataclass(frozen=True)
class PolicySubmission:
    """The verified SCTs that met the policy, the verdict, and one report per log started."""

    scts: tuple[ReceivedSct, ...]
    verdict: PolicyVerdict
    reports: tuple[LogReport, ...]
    elapsed: float


class PolicyNotMet(Exception):
    """The policy could not be met in time; ``scts`` are those received all the same.

    ``str()`` reads ``CT policy not met: 1 of 2 SCTs (log B: timeout after 10 s; log C: HTTP
    503)``. Any SCT here means that log has the precertificate: it is public.
    """

    def __init__(
        self,
        message: str,
        *,
        scts: tuple[ReceivedSct, ...],
        verdict: PolicyVerdict,
        reports: tuple[LogReport, ...],
        required: int,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.scts = scts
        self.verdict = verdict
        self.reports = reports
        self.required = required


def candidate_logs(logs: Iterable[Log], not_after: datetime) -> list[Log]:
    """Logs to submit to: Usable or Qualified, accepting ``not_after``, with a URL and a key."""
    return [log for log in logs if not_submittable(log, not_after) is None]


def order_candidates(logs: Sequence[Log], rng: random.Random) -> list[Log]:
    """Shuffle, then interleave operators: the first logs started are of distinct operators."""
    shuffled = list(logs)
    rng.shuffle(shuffled)
    by_operator: dict[str, list[Log]] = {}
    for log in shuffled:
        by_operator.setdefault(log.operator, []).append(log)
    ordered: list[Log] = []
    queues = list(by_operator.values())
    while queues:
        ordered.extend(queue.pop(0) for queue in queues)
        queues = [queue for queue in queues if queue]
    return ordered


@dataclass
class _Running:
    log: Log
    stats: CallStats
    started: float


async def submit_with_policy(
    chain: Sequence[bytes],
    log_list: LogList | Sequence[Log],
    policy: CtPolicy,
    *,
    not_before: datetime,
    not_after: datetime,
    http: HttpSession,
    deadline: float = 30.0,
    stagger: float = 1.0,
    retry: RetryPolicy | None = None,
    clock: Clock = system_clock,
    timer: Timer | None = None,
    rng: random.Random | None = None,
    precert: bool = True,
    clock_skew: float = 10.0,
) -> PolicySubmission:
    """Get verified SCTs for ``chain`` (precert first, then its issuer) meeting ``policy``.

    ``deadline`` bounds the whole submission (each log's retries included); ``retry`` shapes
    each log's attempts. Raises :class:`PolicyNotMet` if the deadline passes or the candidates
    run out first, ``ValueError`` for a chain that cannot be submitted (nothing is sent then).
    """
    prepared = prepare_submission(chain, precert=precert)  # checked once, nothing sent if bad
    timer = timer or LoopTimer()
    rng = rng or random.Random()  # noqa: S311 -- load spreading, not secrets
    logs = log_list.logs if isinstance(log_list, LogList) else tuple(log_list)
    queue = order_candidates(candidate_logs(logs, not_after), rng)
    seeds = {log.log_id: rng.getrandbits(64) for log in queue}
    required = required_scts(not_before, not_after)
    retry = retry or RetryPolicy(deadline=deadline)
    start = timer.now()
    end = start + deadline
    running: dict[asyncio.Task[ReceivedSct], _Running] = {}
    reports: list[LogReport] = []
    received: list[ReceivedSct] = []
    by_id = {log.log_id: log for log in logs}

    def verdict() -> PolicyVerdict:
        logged = [
            LoggedSct(by_id[r.sct.log_id], r.timestamp) for r in received if r.sct.log_id in by_id
        ]
        return evaluate(policy, logged, not_before=not_before, not_after=not_after)

    def launch() -> None:
        log = queue.pop(0)
        client = LogClient(
            log,
            http,
            clock=clock,
            timer=timer,
            rng=random.Random(seeds[log.log_id]),  # noqa: S311
            retry=retry,
            clock_skew=clock_skew,
        )
        stats = CallStats()
        remaining = max(end - timer.now(), 0.001)
        call = client.add_pre_chain if precert else client.add_chain
        task = asyncio.ensure_future(
            call(chain, deadline=remaining, stats=stats, prepared=prepared)
        )
        running[task] = _Running(log, stats, timer.now())

    def finish(task: asyncio.Task[ReceivedSct], *, timed_out: bool) -> None:
        """Report a task cancelled at the end: a timeout if the deadline passed."""
        if not task.cancelled():
            settle(task)
            return
        state = running.pop(task)
        began = state.started - start
        took = timer.now() - state.started
        attempts = state.stats.attempts
        if timed_out:
            budget = end - state.started
            error = LogTimeout(budget, log=state.log.description, attempts=attempts, elapsed=took)
            reports.append(LogReport(state.log, Outcome.FAILED, began, took, attempts, error=error))
        else:
            reports.append(LogReport(state.log, Outcome.CANCELLED, began, took, attempts))

    def settle(task: asyncio.Task[ReceivedSct]) -> None:
        state = running.pop(task)
        began = state.started - start
        took = timer.now() - state.started
        error = task.exception()
        if error is None:
            sct = task.result()
            received.append(sct)
            reports.append(LogReport(state.log, Outcome.SCT, began, took, sct.attempts, sct=sct))
        elif isinstance(error, LogError):
            attempts = max(error.attempts, state.stats.attempts)
            reports.append(LogReport(state.log, Outcome.FAILED, began, took, attempts, error=error))
        else:  # a bug below us must not lose the SCTs already received: report and go on
            unexpected = LogError(
                f"unexpected {type(error).__name__}: {error}", log=state.log.description
            )
            reports.append(
                LogReport(
                    state.log, Outcome.FAILED, began, took, state.stats.attempts, error=unexpected
                )
            )

    try:
        while queue and len(running) < required:
            launch()
        next_hedge = timer.now() + stagger
        current = verdict()
        while not current.compliant and (running or queue):
            now = timer.now()
            if now >= end:
                break
            if not running:
                launch()
                next_hedge = timer.now() + stagger
                continue
            wake = min(end, next_hedge) if queue else end
            done = await _wait_first(set(running), timer, wake - now)
            for task in done:
                settle(task)
                if reports[-1].outcome is Outcome.FAILED and queue:
                    launch()
                    next_hedge = timer.now() + stagger
            current = verdict()
            if queue and running and timer.now() >= next_hedge and not current.compliant:
                launch()
                next_hedge = timer.now() + stagger
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for task in list(running):
            finish(task, timed_out=timer.now() >= end)
    elapsed = timer.now() - start
    scts = tuple(received)
    reports.sort(key=lambda report: report.started_after)
    if current.compliant:
        return PolicySubmission(scts, current, tuple(reports), elapsed)
    counted = len(current.counted)
    reasons = [r.describe() for r in reports if r.outcome is Outcome.FAILED]
    if not reports:
        reasons.append(f"no usable log accepts notAfter {not_after.isoformat()}")
    elif not reasons:
        reasons.extend(current.problems)
    message = f"CT policy not met: {counted} of {required} SCTs ({'; '.join(reasons)})"
    raise PolicyNotMet(
        message, scts=scts, verdict=current, reports=tuple(reports), required=required
    )


async def _wait_first(
    tasks: set[asyncio.Task[ReceivedSct]], timer: Timer, timeout: float
) -> set[asyncio.Task[ReceivedSct]]:
    """Wait until a task finishes or ``timeout`` passes on ``timer`` (injectable in tests)."""
    sleeper = asyncio.ensure_future(timer.sleep(max(timeout, 0.0)))
    try:
        done, _ = await asyncio.wait({*tasks, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
    return {task for task in tasks if task in done}
