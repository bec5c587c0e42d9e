"""The `ctstatus` command as a user runs it: a real process, its output and exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CTSTATUS = Path(sys.executable).parent / "ctstatus"


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTSTATUS, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """One clear line (plus an optional hint), a non-zero exit, never a traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: "), result.stderr
    assert len(lines) <= 2, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "ca"
    result = run("init", directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "created" in result.stdout
    return directory


def test_help_teaches_the_system() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "precertificate" in result.stdout
    assert "ctstatus init DIR" in result.stdout
    for command in ("init", "check", "ca", "ledger"):
        assert command in result.stdout
    assert run("init", "--help").returncode == 0
    assert run("--version").stdout.startswith("ctstatus ")


def test_show_and_check(instance: Path) -> None:
    shown = run("-i", instance, "ca", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    payload = json.loads(shown.stdout)
    assert [ca["role"] for ca in payload["cas"]] == ["root", "issuing"]
    assert all(ca["signature_ok"] for ca in payload["cas"])
    assert payload["cas"][1]["key_algorithm"] == "ecdsa-p256"
    table = run("-i", instance, "ca", "show")
    assert table.returncode == 0
    assert "issuing-ca" in table.stdout
    checked = run("check", env={"CTSTATUS_INSTANCE": str(instance)})
    assert checked.returncode == 0, checked.stdout
    assert "FAILED" not in checked.stdout
    status = run("-i", instance, "ledger", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["revision"] == json.loads(status.stdout)["head"]
    migrated = run("-i", instance, "ledger", "migrate")
    assert "already at revision" in migrated.stdout


def test_no_instance(tmp_path: Path) -> None:
    assert_user_error(run("-i", tmp_path / "absent", "ca", "show"), "no ctstatus instance")


def test_init_refuses_an_existing_instance(instance: Path) -> None:
    assert_user_error(run("init", instance), "not empty")


def _copy(instance: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(instance, target)
    return target


def test_corrupt_config(instance: Path, tmp_path: Path) -> None:
    copy = _copy(instance, tmp_path)
    (copy / "ctstatus.toml").write_text("[ca\n")
    assert_user_error(run("-i", copy, "ca", "show"), "not valid TOML", "ctstatus.toml")
    (copy / "ctstatus.toml").write_text((instance / "ctstatus.toml").read_text() + "\nfoo = 1\n")
    assert_user_error(run("-i", copy, "ca", "show"), "unknown key", "foo")


def test_wrong_passphrase(instance: Path, tmp_path: Path) -> None:
    copy = _copy(instance, tmp_path)
    (copy / "secrets" / "key-passphrase").write_text("not the passphrase\n")
    result = run("-i", copy, "check")
    assert result.returncode == 1
    assert "wrong passphrase" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_corrupt_key_file(instance: Path, tmp_path: Path) -> None:
    copy = _copy(instance, tmp_path)
    key = copy / "keys" / "issuing-ca.key.pem"
    key.write_bytes(key.read_bytes()[:100])
    result = run("-i", copy, "check")
    assert result.returncode == 1
    assert "corrupt" in result.stdout
    assert "root-ca key" in result.stdout  # the other checks still ran


def test_check_fails_once_the_root_revoked_the_issuing_ca(instance: Path, tmp_path: Path) -> None:
    copy = _copy(instance, tmp_path)
    from cryptography import x509

    serial = x509.load_pem_x509_certificate(
        (copy / "certs" / "issuing-ca.pem").read_bytes()
    ).serial_number
    revoked = run(
        "-i", copy, "revoke", "--issuer", "root-ca", f"{serial:x}", "--reason", "keyCompromise"
    )
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    result = run("-i", copy, "check")
    assert result.returncode == 1
    assert f"the issuing-ca certificate (serial {serial:x}) is revoked by root-ca" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_unreachable_database(instance: Path, tmp_path: Path) -> None:
    copy = _copy(instance, tmp_path)
    config = copy / "ctstatus.toml"
    config.write_text(
        config.read_text().replace(
            'url = "sqlite:///ledger.sqlite3"',
            'url = "postgresql+psycopg://postgres@127.0.0.1:1/ctstatus"',
        )
    )
    assert_user_error(run("-i", copy, "ca", "show"), "cannot connect", "127.0.0.1:1")


def test_absent_pkcs11_module(tmp_path: Path) -> None:
    result = run(
        "init",
        tmp_path / "hsm",
        "--pkcs11-token",
        "ctstatus",
        "--pkcs11-module",
        tmp_path / "no-such-module.so",
        env={"CTSTATUS_PKCS11_PIN": "1234"},
    )
    assert_user_error(result, "no-such-module.so")
    assert not (tmp_path / "hsm").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "-i", tmp_path / "absent", "ca", "show")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def _serve(instance: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``ocsp serve``; return it once it printed its URL (or ended), with that output."""
    import time

    process = subprocess.Popen(
        [CTSTATUS, "-i", str(instance), "ocsp", "serve", "--no-publish-crls", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        if "serving OCSP and CRLs on http://" in line:
            return process, seen
    return process, seen


@pytest.mark.parametrize("server", [[], ["--uvicorn"]], ids=["own-server", "uvicorn"])
def test_ocsp_serve_port_0_binds_a_free_port_and_says_which(
    instance: Path, server: list[str]
) -> None:
    """``--port 0`` is a free port, logged as the real URL; Ctrl-C ends it without a trace."""
    import re
    import signal
    import socket

    import httpx

    process, seen = _serve(instance, "--port", "0", *server)
    try:
        found = re.search(r"serving OCSP and CRLs on (http://127\.0\.0\.1:(\d+))", seen)
        assert found, seen
        assert int(found[2]) not in (0, 8080)
        assert httpx.get(found[1] + "/healthz", timeout=10).text == "ok\n"
        assert httpx.get(found[1] + "/favicon.ico", timeout=10).status_code == 404
        with socket.socket() as taken, pytest.raises(OSError, match="in use"):
            taken.bind(("127.0.0.1", int(found[2])))  # the port really is this server's
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, seen + rest
    assert "Traceback" not in seen + rest


def test_ocsp_serve_on_a_taken_port_is_one_line(instance: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("-i", instance, "ocsp", "serve", "--no-publish-crls", "--port", str(port))
    assert_user_error(result, f"127.0.0.1:{port}", "--port")
