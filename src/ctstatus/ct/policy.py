"""Browser CT policies as pure functions: given SCTs (already verified), is a certificate OK?

Which policy applies is configuration. The rules follow Chrome's ct_policy.md (2026-07) and
Apple's support page 103214 (see docs/reference in spec-digest §2.3-2.4):

- Chrome: at least one SCT from a log Qualified, Usable or ReadOnly now; SCTs from at least N
  distinct logs that are Qualified, Usable, ReadOnly or Retired (an SCT of a Retired log counts
  only if it predates the retirement); among those, at least two operators.
- Apple: SCTs from logs once or currently approved (ReadOnly and Retired count only before their
  cutoff), at least one from a currently approved log, N distinct logs with at most one (≤180
  days) or two (>180 days) counted per operator.

N is 2 for a lifetime of at most 180 days and 3 above. Lifetime is counted Apple's way: from
notBefore to notAfter inclusive, in days of 86,400 s with any remainder counting as a day.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ctstatus.ct.loglist import Log, LogState


class CtPolicy(enum.StrEnum):
    CHROME = "chrome"
    APPLE = "apple"


@dataclass(frozen=True)
class LoggedSct:
    """A verified SCT: which log, and its timestamp."""

    log: Log
    timestamp: datetime


@dataclass(frozen=True)
class PolicyVerdict:
    policy: CtPolicy
    compliant: bool
    required: int
    counted: tuple[LoggedSct, ...]
    problems: tuple[str, ...]

    def explain(self) -> str:
        counted = ", ".join(f"{s.log.description} ({s.log.operator})" for s in self.counted)
        head = f"{self.policy.value}: {len(self.counted)} of {self.required} SCTs count"
        text = f"{head} [{counted}]" if counted else head
        return text if self.compliant else f"{text}; " + "; ".join(self.problems)


SUBMITTABLE_STATES = frozenset({LogState.USABLE, LogState.QUALIFIED})
"""Log states a CA submits to (ReadOnly, Retired, Rejected and Pending logs take no new SCTs)."""

_NOW_TRUSTED = {LogState.QUALIFIED, LogState.USABLE, LogState.READONLY}
_ONCE_TRUSTED = _NOW_TRUSTED | {LogState.RETIRED}


def lifetime_days(not_before: datetime, not_after: datetime) -> int:
    """Days from notBefore to notAfter inclusive; a partial day counts as a whole one."""
    seconds = int((not_after - not_before + timedelta(seconds=1)).total_seconds())
    return -(-seconds // 86400)


def required_scts(not_before: datetime, not_after: datetime) -> int:
    return 2 if lifetime_days(not_before, not_after) <= 180 else 3


def evaluate(
    policy: CtPolicy,
    scts: Sequence[LoggedSct],
    *,
    not_before: datetime,
    not_after: datetime,
) -> PolicyVerdict:
    """Judge ``scts`` (one per log is enough; duplicates are ignored) under ``policy``.

    Log states are those of the log list given (a current list judges "now").
    """
    required = required_scts(not_before, not_after)
    distinct = _first_per_log(scts)
    if policy is CtPolicy.CHROME:
        return _chrome(distinct, required)
    return _apple(distinct, required, lifetime_days(not_before, not_after))


def not_submittable(log: Log, not_after: datetime) -> str | None:
    """Why a CA cannot get an SCT from ``log`` for a certificate expiring at ``not_after``."""
    if log.state not in SUBMITTABLE_STATES:
        return f"{log.state.value}"
    if not log.accepts(not_after):
        interval = log.temporal_interval
        assert interval is not None
        return (
            f"its temporal interval [{interval.start_inclusive.isoformat()}, "
            f"{interval.end_exclusive.isoformat()}) does not cover notAfter "
            f"{not_after.isoformat()}"
        )
    if not (log.url or log.submission_url):
        return "no submission URL"
    if not log.key_der:
        return "no key"
    return None


@dataclass(frozen=True)
class Feasibility:
    """Whether the logs could meet ``policy`` at all, if every usable one returned an SCT."""

    policy: CtPolicy
    feasible: bool
    usable: tuple[Log, ...]
    excluded: tuple[tuple[Log, str], ...]
    problems: tuple[str, ...]

    def explain(self) -> str:
        if self.feasible:
            return f"{self.policy.value}: {len(self.usable)} usable logs can meet the policy"
        excluded = "; ".join(f"log {log.description}: {why}" for log, why in self.excluded)
        return (
            f"the configured CT logs cannot meet the {self.policy.value} CT policy: "
            + "; ".join(self.problems)
            + f" ({len(self.usable)} usable log(s)"
            + (f"; not usable: {excluded}" if excluded else "")
            + ")"
        )


def feasibility(
    policy: CtPolicy,
    logs: Sequence[Log],
    *,
    not_before: datetime,
    not_after: datetime,
    at: datetime,
) -> Feasibility:
    """Judge, before anything is signed, whether SCTs from every submittable log would comply.

    This is :func:`evaluate` over one hypothetical SCT at ``at`` from each log we could submit
    to, so it cannot disagree with the policy the real SCTs are judged by: if even that fails
    (too few logs for the lifetime, too few operators, shards that do not cover notAfter,
    logs retired, rejected or read-only), no submission can succeed and a precertificate
    signed now would only be published and abandoned.
    """
    excluded = []
    usable = []
    for log in logs:
        why = not_submittable(log, not_after)
        if why is None:
            usable.append(log)
        else:
            excluded.append((log, why))
    verdict = evaluate(
        policy,
        [LoggedSct(log, at) for log in usable],
        not_before=not_before,
        not_after=not_after,
    )
    return Feasibility(policy, verdict.compliant, tuple(usable), tuple(excluded), verdict.problems)


def _first_per_log(scts: Sequence[LoggedSct]) -> list[LoggedSct]:
    """The earliest SCT of each log (Chrome tests against the earliest one presented)."""
    first: dict[bytes, LoggedSct] = {}
    for sct in sorted(scts, key=lambda s: s.timestamp):
        first.setdefault(sct.log.log_id, sct)
    return list(first.values())


def _counts_once_trusted(sct: LoggedSct) -> bool:
    state = sct.log.state
    if state not in _ONCE_TRUSTED:
        return False
    return state is not LogState.RETIRED or sct.timestamp < sct.log.state_since


def _chrome(scts: list[LoggedSct], required: int) -> PolicyVerdict:
    counted = tuple(s for s in scts if _counts_once_trusted(s))
    problems = []
    if not any(s.log.state in _NOW_TRUSTED for s in counted):
        problems.append("no SCT from a log that is Qualified, Usable or ReadOnly now")
    if len(counted) < required:
        problems.append(f"{len(counted)} of {required} SCTs from distinct logs")
    operators = {s.log.operator_at(s.timestamp) for s in counted}
    if len(operators) < 2:
        problems.append(f"SCTs from {len(operators)} operator(s); at least 2 needed")
    return PolicyVerdict(CtPolicy.CHROME, not problems, required, counted, tuple(problems))


def _apple(scts: list[LoggedSct], required: int, days: int) -> PolicyVerdict:
    per_operator_cap = 1 if days <= 180 else 2
    eligible = [s for s in scts if _apple_counts(s)]
    taken: Counter[str] = Counter()
    counted: list[LoggedSct] = []
    for sct in eligible:
        operator = sct.log.operator_at(sct.timestamp)
        if taken[operator] < per_operator_cap:
            taken[operator] += 1
            counted.append(sct)
    problems = []
    if not any(s.log.state in _NOW_TRUSTED for s in counted):
        problems.append("no SCT from a currently approved log")
    if len(counted) < required:
        problems.append(
            f"{len(counted)} of {required} SCTs from distinct logs "
            f"(at most {per_operator_cap} per operator count)"
        )
    return PolicyVerdict(CtPolicy.APPLE, not problems, required, tuple(counted), tuple(problems))


def _apple_counts(sct: LoggedSct) -> bool:
    """Approved once or now; ReadOnly and Retired logs only for SCTs before their cutoff."""
    state = sct.log.state
    if state in (LogState.QUALIFIED, LogState.USABLE):
        return True
    if state in (LogState.READONLY, LogState.RETIRED):
        return sct.timestamp < sct.log.state_since
    return False
