"""``ctstatus watch report``: problems by CA and code, as a rich table or JSON."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from ctstatus.watch.store import Problem


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def report_json(problems: list[Problem]) -> str:
    return json.dumps(
        {
            "summary": [
                {"ca": ca, "code": code, "open": n}
                for (ca, code), n in sorted(_counts(problems).items())
            ],
            "problems": [p.to_json() for p in problems],
        },
        indent=2,
        default=str,
    )


def _counts(problems: list[Problem]) -> Counter[tuple[str, str]]:
    return Counter((p.scope, p.code) for p in problems if p.resolved_at is None)


def print_report(console: Console, problems: list[Problem]) -> None:
    summary = Table(title="Open problems by CA and code")
    for column in ("CA", "code", "open"):
        summary.add_column(column)
    for (ca, code), n in sorted(_counts(problems).items()):
        summary.add_row(ca, code, str(n))
    console.print(summary)
    detail = Table(title="Problems")
    for column in ("severity", "code", "subject", "first seen", "last seen", "resolved", "message"):
        detail.add_column(column)
    for p in problems:
        detail.add_row(
            p.severity,
            p.code,
            p.subject,
            _when(p.first_seen),
            _when(p.last_seen),
            _when(p.resolved_at),
            p.message,
        )
    console.print(detail)
