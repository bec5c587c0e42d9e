"""Alerts: each problem once when it opens and once when it resolves (stdout, webhook JSON).

The "alerted" flags live in the watcher's database and are set only after delivery, so a crash
between sending and marking repeats an alert rather than losing it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TextIO

import httpx

from ctstatus.watch.store import Problem, WatchStore

Sender = Callable[[str, Problem], bool]


def stdout_sender(stream: TextIO | None = None) -> Sender:
    def send(kind: str, problem: Problem) -> bool:
        out = stream or sys.stdout
        verb = "OPEN" if kind == "open" else "RESOLVED"
        out.write(
            f"[{verb}] {problem.severity} {problem.code} {problem.scope} "
            f"{problem.subject}: {problem.message}\n"
        )
        out.flush()
        return True

    return send


def webhook_sender(url: str, timeout: float = 10.0) -> Sender:
    def send(kind: str, problem: Problem) -> bool:
        body = {"event": kind, "problem": problem.to_json()}
        try:
            response = httpx.post(
                url,
                content=json.dumps(body, default=str),
                timeout=timeout,
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError:
            return False
        return response.is_success

    return send


def smtp_sender(host: str, port: int, sender: str, to: list[str], timeout: float = 10.0) -> Sender:
    """One plain-text e-mail per alert (no TLS or login: a local relay is assumed)."""
    import smtplib
    from email.message import EmailMessage

    def send(kind: str, problem: Problem) -> bool:
        message = EmailMessage()
        verb = "OPEN" if kind == "open" else "RESOLVED"
        message["Subject"] = (
            f"[ctstatus watch] {verb} {problem.severity} {problem.code} {problem.scope}"
        )
        message["From"] = sender
        message["To"] = ", ".join(to)
        message.set_content(
            f"{problem.message}\n\nsubject: {problem.subject}\n\n"
            + json.dumps(problem.to_json(), indent=2, default=str)
        )
        try:
            with smtplib.SMTP(host, port, timeout=timeout) as smtp:
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException):
            return False
        return True

    return send


def deliver(store: WatchStore, senders: list[Sender]) -> int:
    """Send every pending alert through every sender; mark it once all succeeded."""
    sent = 0
    for kind, problem in store.pending_alerts():
        if all(send(kind, problem) for send in senders):
            store.mark_alerted(kind, problem.id)
            sent += 1
    return sent
