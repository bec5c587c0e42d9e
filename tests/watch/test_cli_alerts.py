"""The commands as a cron job runs them, alerts sent once per open and once per resolve, and the
store on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ctstatus.ct.client import LogClient, LogEndpoint
from ctstatus.ct.loglist import load_log_list
from ctstatus.ct.transport import new_http_session
from ctstatus.watch.alerts import deliver, webhook_sender
from ctstatus.watch.follower import LogFollower
from ctstatus.watch.problems import Code, Finding
from ctstatus.watch.store import Problem, WatchStore

from .conftest import Logs, MisbehavingApp, Served, WatchCa, serve_app, start_logs, stop_logs

CTSTATUS = Path(sys.executable).parent / "ctstatus"


@pytest.fixture(scope="module")
def logs(
    tmp_path_factory: pytest.TempPathFactory, bad_ca: tuple[WatchCa, Served, MisbehavingApp]
) -> Iterator[Logs]:
    ca = bad_ca[0]
    running = start_logs(tmp_path_factory.mktemp("cli") / "logs", [ca.root])
    for mode in ("good", "unknown"):
        running.submit("alpha", [ca.precert(mode).precert, ca.issuing_der])
    running.publish("alpha")
    yield running
    stop_logs(running)


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CTSTATUS), *map(str, args)], capture_output=True, text=True, check=False, timeout=120
    )


def test_once_exits_1_on_new_problems_then_0(tmp_path: Path, logs: Logs) -> None:
    config = tmp_path / "watch.toml"
    config.write_text(
        f'database = "sqlite:///watch.db"\nlog_list = "{logs.log_list}"\n'
        'grace_seconds = 0\ntimeout_seconds = 2\nstart = "beginning"\n'
    )
    first = run("watch", "--once", "-c", config)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "[OPEN] critical ocsp.unknown" in first.stdout
    assert "1 new problem(s)" in first.stdout
    second = run("watch", "--once", "-c", config)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "[OPEN]" not in second.stdout  # alerted once
    report = run("watch", "report", "--json", "-c", config)
    document = json.loads(report.stdout)
    assert [s["code"] for s in document["summary"]] == ["ocsp.unknown"]
    assert (tmp_path / "watch.db").exists()  # relative to the config file
    table = run("watch", "report", "-c", config)
    assert "ocsp.unknown" in table.stdout


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "watch.toml"
    config.write_text('log_list = "x.json"\ngrace = 3\n')
    result = run("watch", "--once", "-c", config)
    assert result.returncode == 1
    assert "grace" in result.stderr
    assert "Traceback" not in result.stderr


class Hook:
    """A webhook receiver on loopback."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.append(json.loads(body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_webhook_alerts_once_on_open_and_once_on_resolve(tmp_path: Path) -> None:
    hook = Hook()
    served = serve_app(hook)
    store = WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        senders = [webhook_sender(served.url + "/hook")]
        finding = Finding(Code.OCSP_UNKNOWN, "unknown", {"serial": "ab"})
        store.record("cert:x:ab", "Test CA", [finding], 1.0, family="ocsp.")
        assert deliver(store, senders) == 1
        store.record("cert:x:ab", "Test CA", [finding], 2.0, family="ocsp.")
        assert deliver(store, senders) == 0
        store.record("cert:x:ab", "Test CA", [], 3.0, family="ocsp.")
        assert deliver(store, senders) == 1
        assert deliver(store, senders) == 0
        assert [(m["event"], m["problem"]["code"]) for m in hook.received] == [
            ("open", "ocsp.unknown"),
            ("resolved", "ocsp.unknown"),
        ]
        problem = hook.received[1]["problem"]
        assert (problem["first_seen"], problem["last_seen"], problem["resolved_at"]) == (1, 2, 3)
    finally:
        store.close()
        served.stop()


def test_failed_delivery_is_retried(tmp_path: Path) -> None:
    store = WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    calls: list[str] = []

    def flaky(kind: str, problem: Problem) -> bool:
        calls.append(kind)
        return len(calls) > 1

    store.record("s", "CA", [Finding(Code.CRL_STALE, "stale")], 1.0, family="crl.")
    assert deliver(store, [flaky]) == 0
    assert deliver(store, [flaky]) == 1
    assert calls == ["open", "open"]
    store.close()


@pytest.mark.postgres
def test_store_on_postgresql(database_factory: Any, logs: Logs) -> None:
    endpoint = LogEndpoint.from_log(load_log_list(logs.log_list).logs[0])
    with database_factory("postgresql") as url:
        store = WatchStore.open(url)

        async def poll() -> int:
            async with new_http_session() as http:
                follower = LogFollower(LogClient(endpoint, http), store, "all")
                return (await follower.poll()).verified_size

        try:
            assert asyncio.run(poll()) == 2
            assert asyncio.run(poll()) == 2
            assert store.entry_count() == 2
            assert store.cert_count() == 2
        finally:
            store.close()


def test_smtp_alert_reaches_a_relay(tmp_path: Path) -> None:
    """A minimal SMTP relay on loopback receives the alert as an e-mail."""
    import socket
    import threading

    from ctstatus.watch.alerts import smtp_sender

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    received: list[str] = []

    def relay() -> None:
        connection, _ = listener.accept()
        with connection, connection.makefile("rwb") as stream:

            def reply(line: str) -> None:
                stream.write(line.encode() + b"\r\n")
                stream.flush()

            reply("220 relay")
            data = False
            while line := stream.readline():
                text = line.decode().rstrip("\r\n")
                if data:
                    if text == ".":
                        data = False
                        reply("250 queued")
                    else:
                        received.append(text)
                elif text.upper().startswith(("EHLO", "HELO")):
                    reply("250 relay")
                elif text.upper() == "DATA":
                    data = True
                    reply("354 go ahead")
                elif text.upper() == "QUIT":
                    reply("221 bye")
                    break
                else:
                    reply("250 ok")

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    store = WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        store.record(
            "cert:x:ab", "Test CA", [Finding(Code.OCSP_UNKNOWN, "unknown")], 1.0, family="ocsp."
        )
        send = smtp_sender("127.0.0.1", port, "watch@example.com", ["ops@example.com"], timeout=5)
        assert deliver(store, [send]) == 1
    finally:
        store.close()
        thread.join(timeout=10)
        listener.close()
    assert any("OPEN critical ocsp.unknown Test CA" in line for line in received), received
