"""The log server config (strict, errors naming file and key) and ``ctstatus log init``."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctstatus.cli import app
from ctstatus.ctlog.app import CtLogApp
from ctstatus.ctlog.config import load_log_server_config
from ctstatus.ctlog.faults import Down, Scope
from ctstatus.errors import ConfigError

from .conftest import CtCa, write_pem

MINIMAL = """
[server]
key_passphrase = { env = "X" }

[[log]]
name = "alpha"
description = "d"
operator = "o"
key = "k.pem"
roots = ["r.pem"]
"""


def load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ctlog.toml"
    path.write_text(text)
    load_log_server_config(path)


def test_minimal_config_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ctlog.toml"
    path.write_text(MINIMAL + "[log.faults]\nscope = 'all'\ndown = 'refuse'\n")
    loaded = load_log_server_config(path)
    (log,) = loaded.config.log
    assert loaded.config.server.listen == "127.0.0.1"
    assert log.mmd == 60
    assert log.max_sth_age_ms == 30_000
    assert log.faults.scope is Scope.ALL
    assert log.faults.down is Down.REFUSE
    assert loaded.path(log.key) == tmp_path / "k.pem"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("[server]", "[server]\nbogus = 1"), "unknown key 'server.bogus'"),
        (('name = "alpha"', 'name = "Alpha!"'), "log.0.name"),
        (('roots = ["r.pem"]', "roots = []"), "log.0.roots"),
        (('key = "k.pem"', 'key = "k.pem"\nmmd = 100000'), "log.0.mmd"),
        (('key = "k.pem"', 'key = "k.pem"\nsth_interval_ms = 40000'), "well within the MMD"),
        (('key = "k.pem"', 'key = "k.pem"\nkey_passphrase = "hunter2"'), "never written"),
        (("[server]", '[server]\nlisten = "0.0.0.0"'), "loopback"),
        (('key = "k.pem"', 'key = "k.pem"\n[log.faults]\nreject_status = 200'), "reject_status"),
        (('name = "alpha"', 'name = "admin"'), "reserved"),
        (('key_passphrase = { env = "X" }', ""), "key_passphrase"),
    ],
)
def test_config_errors_name_the_file_and_the_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, MINIMAL.replace(*change))
    message = str(caught.value)
    assert str(tmp_path / "ctlog.toml") in message
    assert expected in message
    assert "hunter2" not in message


def test_duplicate_log_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unique"):
        load(tmp_path, MINIMAL + MINIMAL.split("[server]")[1].split("\n", 2)[2])


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no log server config"):
        load_log_server_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path, "[server")


def test_log_init_writes_keys_config_and_a_servable_directory(
    tmp_path: Path, test_ca: CtCa
) -> None:
    root = write_pem(tmp_path / "root.pem", test_ca.root)
    target = tmp_path / "logs"
    result = CliRunner().invoke(
        app, ["log", "init", str(target), "--logs", "4", "--roots", str(root), "--port", "0"]
    )
    assert result.exit_code == 0, result.output
    loaded = load_log_server_config(target / "ctlog.toml")
    assert [log.name for log in loaded.config.log] == ["alpha", "bravo", "charlie", "delta"]
    assert len({log.operator for log in loaded.config.log}) == 4
    for log in loaded.config.log:
        key = loaded.path(log.key)
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    secret = target / "secrets" / "log-key-passphrase"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text().strip() not in (target / "ctlog.toml").read_text()
    # A second init into the same directory is refused with one clear line.
    again = CliRunner().invoke(app, ["log", "init", str(target), "--roots", str(root)])
    assert again.exit_code != 0
    assert "not empty" in str(again.exception)


def test_serve_with_a_wrong_passphrase_is_one_clear_error(tmp_path: Path, test_ca: CtCa) -> None:
    from ctstatus.ctlog.server import PreparedServer
    from ctstatus.errors import UserError

    root = write_pem(tmp_path / "root.pem", test_ca.root)
    result = CliRunner().invoke(app, ["log", "init", str(tmp_path / "l"), "--roots", str(root)])
    assert result.exit_code == 0
    (tmp_path / "l" / "secrets" / "log-key-passphrase").write_text("wrong\n")
    with pytest.raises(UserError, match="passphrase"):
        PreparedServer(load_log_server_config(tmp_path / "l" / "ctlog.toml"), port=0)


def test_admin_endpoints_answer_loopback_clients_only() -> None:
    app_ = CtLogApp({}, max_body_bytes=1024, admin=True)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/admin/alpha/faults",
        "query_string": b"",
        "headers": [],
        "client": ("192.0.2.1", 5000),
    }
    asyncio.run(app_(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 404
    body = sent[1]["body"]
    assert isinstance(body, bytes)
    assert json.loads(body)["error"] == "not found"


def test_help_stays_fast_without_heavy_imports() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from ctstatus.cli import app; "
        "heavy = [m for m in ('uvicorn', 'ctstatus.ctlog.server', 'sqlite3') if m in sys.modules]; "
        "print(heavy)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    assert output.strip() == "[]"
