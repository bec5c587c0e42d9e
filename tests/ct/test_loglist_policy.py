"""Log lists (v3 schema) and the Chrome and Apple CT policies."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ctstatus.ct.loglist import (
    Log,
    LogListError,
    LogState,
    log_list_document,
    parse_log_list,
)
from ctstatus.ct.policy import CtPolicy, LoggedSct, evaluate, lifetime_days, required_scts

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _key() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )


def _log_json(description: str, state: str = "usable", **extra: Any) -> dict[str, Any]:
    key = _key()
    entry = {
        "description": description,
        "log_id": base64.b64encode(hashlib.sha256(key).digest()).decode(),
        "key": base64.b64encode(key).decode(),
        "url": f"https://{description.lower().replace(' ', '-')}.example.com/",
        "mmd": 86400,
        "state": {state: {"timestamp": "2026-01-01T00:00:00Z"}},
    }
    entry.update(extra)
    return entry


def _document(*operators: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "version": "42.1",
        "log_list_timestamp": "2026-10-31T00:00:00Z",
        "operators": [{"name": name, "email": [], "logs": logs} for name, logs in operators],
    }


def test_parse_v3_and_round_trip() -> None:
    tiled = _log_json("Tiled One", "qualified")
    del tiled["url"]
    tiled["submission_url"] = "https://tiled.example.com"
    tiled["monitoring_url"] = "https://tiled-mon.example.com/"
    tiled["temporal_interval"] = {
        "start_inclusive": "2026-01-01T00:00:00Z",
        "end_exclusive": "2027-01-01T00:00:00Z",
    }
    document = _document(("Alpha", [_log_json("Alpha A", unknown_field=1)]), ("Beta", []))
    document["operators"][1]["tiled_logs"] = [tiled]
    parsed = parse_log_list(json.dumps(document))
    assert parsed.version == "42.1"
    assert [log.description for log in parsed.logs] == ["Alpha A", "Tiled One"]
    tiled_log = parsed.logs[1]
    assert tiled_log.tiled
    assert tiled_log.submission_url == "https://tiled.example.com/"
    assert tiled_log.accepts(datetime(2026, 6, 1, tzinfo=UTC))
    assert not tiled_log.accepts(datetime(2027, 1, 1, tzinfo=UTC))
    assert parsed.by_id(tiled_log.log_id) is tiled_log
    assert parsed.operators == ["Alpha", "Beta"]
    again = parse_log_list(json.dumps(log_list_document(parsed.logs)))
    assert again.logs == parsed.logs


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda log: log.update(log_id=base64.b64encode(b"x" * 32).decode()), "not SHA-256"),
        (lambda log: log.update(key="!!!"), "base64"),
        (lambda log: log.update(state={"usable": {}, "retired": {}}), "exactly one key"),
        (
            lambda log: log.update(state={"sleeping": {"timestamp": "2026-01-01T00:00:00Z"}}),
            "unknown state",
        ),
        (lambda log: log.update(state={"usable": {"timestamp": "yesterday"}}), "RFC 3339"),
        (lambda log: log.pop("url"), "exactly one of url"),
        (lambda log: log.update(url="ftp://x/"), "http"),
        (lambda log: log.update(mmd=-1), "mmd"),
    ],
)
def test_bad_logs_are_refused_with_a_reason(mutate: Any, message: str) -> None:
    log = _log_json("Broken")
    mutate(log)
    with pytest.raises(LogListError, match=message) as error:
        parse_log_list(json.dumps(_document(("Op", [log]))), source="list.json")
    assert "list.json" in error.value.message


def test_bad_documents() -> None:
    with pytest.raises(LogListError, match="not valid JSON"):
        parse_log_list("{")
    with pytest.raises(LogListError, match="operators must be a list"):
        parse_log_list("{}")
    same = _log_json("Twice")
    with pytest.raises(LogListError, match="same log id twice"):
        parse_log_list(json.dumps(_document(("A", [same]), ("B", [same]))))


def test_operator_at_follows_previous_operators() -> None:
    log = _log_json(
        "Moved", previous_operators=[{"name": "Old", "end_time": "2026-06-01T00:00:00Z"}]
    )
    parsed = parse_log_list(json.dumps(_document(("New", [log])))).logs[0]
    assert parsed.operator_at(datetime(2026, 5, 1, tzinfo=UTC)) == "Old"
    assert parsed.operator_at(datetime(2026, 7, 1, tzinfo=UTC)) == "New"


def _logs(*specs: tuple[str, str, LogState]) -> list[Log]:
    document = {}
    for description, operator, state in specs:
        document.setdefault(operator, []).append(_log_json(description, state.value))
    parsed = parse_log_list(json.dumps(_document(*document.items())))
    return list(parsed.logs)


def _verdict(policy: CtPolicy, logs: list[Log], days: int) -> Any:
    not_before = NOW - timedelta(days=1)
    not_after = not_before + timedelta(days=days) - timedelta(seconds=1)
    scts = [LoggedSct(log, NOW - timedelta(hours=1)) for log in logs]
    return evaluate(policy, scts, not_before=not_before, not_after=not_after)


def test_lifetime_and_required_counts() -> None:
    start = NOW
    assert lifetime_days(start, start + timedelta(days=90) - timedelta(seconds=1)) == 90
    assert lifetime_days(start, start + timedelta(days=180)) == 181  # one second over
    assert required_scts(start, start + timedelta(days=180) - timedelta(seconds=1)) == 2
    assert required_scts(start, start + timedelta(days=180)) == 3


@pytest.mark.parametrize("policy", list(CtPolicy))
def test_two_operators_two_logs_short_lived_is_compliant(policy: CtPolicy) -> None:
    logs = _logs(("A1", "A", LogState.USABLE), ("B1", "B", LogState.QUALIFIED))
    verdict = _verdict(policy, logs, 90)
    assert verdict.compliant, verdict.explain()
    assert verdict.required == 2


@pytest.mark.parametrize("policy", list(CtPolicy))
def test_one_operator_is_not_enough(policy: CtPolicy) -> None:
    logs = _logs(("A1", "A", LogState.USABLE), ("A2", "A", LogState.USABLE))
    verdict = _verdict(policy, logs, 90)
    assert not verdict.compliant
    assert verdict.problems


@pytest.mark.parametrize("policy", list(CtPolicy))
def test_long_lived_needs_three(policy: CtPolicy) -> None:
    two = _logs(("A1", "A", LogState.USABLE), ("B1", "B", LogState.USABLE))
    assert not _verdict(policy, two, 200).compliant
    three = _logs(
        ("A1", "A", LogState.USABLE), ("B1", "B", LogState.USABLE), ("C1", "C", LogState.USABLE)
    )
    assert _verdict(policy, three, 200).compliant


def test_apple_caps_each_operator_chrome_does_not() -> None:
    """Three logs, two of one operator, >180 days: both accept (Apple counts 2 per operator)."""
    logs = _logs(
        ("A1", "A", LogState.USABLE), ("A2", "A", LogState.USABLE), ("B1", "B", LogState.USABLE)
    )
    assert _verdict(CtPolicy.CHROME, logs, 200).compliant
    assert _verdict(CtPolicy.APPLE, logs, 200).compliant
    # ≤180 days: Apple counts one per operator, so A1 + A2 + nothing else from B fails with
    # only A logs, while Chrome needs two operators too.
    only_a = _logs(
        ("A1", "A", LogState.USABLE), ("A2", "A", LogState.USABLE), ("A3", "A", LogState.USABLE)
    )
    apple = _verdict(CtPolicy.APPLE, only_a, 90)
    assert not apple.compliant
    assert len(apple.counted) == 1


@pytest.mark.parametrize("policy", list(CtPolicy))
def test_pending_rejected_and_late_retired_logs_do_not_count(policy: CtPolicy) -> None:
    logs = _logs(
        ("A1", "A", LogState.PENDING), ("B1", "B", LogState.REJECTED), ("C1", "C", LogState.USABLE)
    )
    assert not _verdict(policy, logs, 90).compliant
    # Retired on 2026-01-01 (see _log_json); SCTs from an hour ago are after that: not counted.
    retired = _logs(("A1", "A", LogState.RETIRED), ("B1", "B", LogState.USABLE))
    assert not _verdict(policy, retired, 90).compliant


def test_retired_log_sct_from_before_retirement_counts_for_chrome() -> None:
    logs = _logs(("A1", "A", LogState.RETIRED), ("B1", "B", LogState.USABLE))
    not_before = NOW - timedelta(days=400)
    scts = [LoggedSct(logs[0], datetime(2025, 12, 1, tzinfo=UTC)), LoggedSct(logs[1], NOW)]
    verdict = evaluate(
        CtPolicy.CHROME,
        scts,
        not_before=not_before,
        not_after=not_before + timedelta(days=90),
    )
    assert verdict.compliant, verdict.explain()


def test_duplicate_scts_of_one_log_count_once() -> None:
    logs = _logs(("A1", "A", LogState.USABLE), ("B1", "B", LogState.USABLE))
    scts = [LoggedSct(logs[0], NOW), LoggedSct(logs[0], NOW - timedelta(minutes=1))]
    verdict = evaluate(CtPolicy.CHROME, scts, not_before=NOW, not_after=NOW + timedelta(days=30))
    assert not verdict.compliant
    assert len(verdict.counted) == 1
    assert "1 of 2" in verdict.explain()


def test_feasibility_judges_the_logs_by_the_same_rules_as_the_scts() -> None:
    """Apple: at most one SCT per operator counts up to 180 days, two above."""
    from ctstatus.ct.policy import feasibility

    document = _document(
        ("Alpha", [_log_json("Alpha A"), _log_json("Alpha B")]),
        ("Beta", [_log_json("Beta A", "retired")]),
    )
    logs = parse_log_list(json.dumps(document)).logs
    short = NOW + timedelta(days=90) - timedelta(seconds=1)
    verdict = feasibility(CtPolicy.APPLE, logs, not_before=NOW, not_after=short, at=NOW)
    assert not verdict.feasible
    assert verdict.explain() == (
        "the configured CT logs cannot meet the apple CT policy: 1 of 2 SCTs from distinct logs "
        "(at most 1 per operator count) (2 usable log(s); not usable: log Beta A: retired)"
    )
    document["operators"][1]["logs"] = [_log_json("Beta A"), _log_json("Beta B")]
    logs = parse_log_list(json.dumps(document)).logs
    assert feasibility(CtPolicy.APPLE, logs, not_before=NOW, not_after=short, at=NOW).feasible
    # 181 days need 3 SCTs, two per operator: 4 logs of 2 operators can give them.
    long = NOW + timedelta(days=181)
    assert feasibility(CtPolicy.APPLE, logs, not_before=NOW, not_after=long, at=NOW).feasible
    assert feasibility(CtPolicy.CHROME, logs, not_before=NOW, not_after=long, at=NOW).feasible
    only_alpha = [log for log in logs if log.operator == "Alpha"]
    chrome = feasibility(CtPolicy.CHROME, only_alpha, not_before=NOW, not_after=long, at=NOW)
    assert not chrome.feasible
    assert chrome.problems == (
        "2 of 3 SCTs from distinct logs",
        "SCTs from 1 operator(s); at least 2 needed",
    )
