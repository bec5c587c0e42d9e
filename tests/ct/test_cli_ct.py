"""`ctstatus ct …` as a user runs it: a real process against real vectors and a real-HTTP log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cryptography_vectors
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ctstatus.ct import scts_from_certificate
from ctstatus.ct.loglist import log_list_document

CTSTATUS = Path(sys.executable).parent / "ctstatus"
DATA = Path(__file__).parent / "data"
VECTORS = Path(cryptography_vectors.__file__).parent / "x509"
REAL_CERT = VECTORS / "cryptography-scts.pem"
REAL_ISSUER = VECTORS / "letsencryptx3.pem"
REAL_LIST = DATA / "real_log_list.json"


from tests.ct.data import fakelog  # noqa: E402


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTSTATUS, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """One clear line (plus an optional hint), exit status 1, never a traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: "), result.stderr
    assert len(lines) <= 2, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with fakelog.serve() as running:
        yield running


def write_list(path: Path, logs: list[Any]) -> Path:
    path.write_text(json.dumps(log_list_document(logs)))
    return path


def test_help_lists_the_ct_commands() -> None:
    result = run("--help")
    assert "ctstatus ct" in result.stdout
    result = run("ct", "--help")
    assert result.returncode == 0
    for command in ("verify-scts", "get-sth", "entries", "checkpoint"):
        assert command in result.stdout


def test_verify_scts_on_a_real_certificate() -> None:
    """Real SCTs from two real (now rejected) logs: the signatures verify, the policy fails."""
    result = run("ct", "verify-scts", REAL_CERT, "--issuer", REAL_ISSUER, "--log-list", REAL_LIST)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "Google 'Icarus' log" in out
    assert "Sectigo 'Mammoth' CT log" in out
    assert "2018-09-26T20:56:33.769Z" in out
    assert "2018-09-26T20:56:33.904Z" in out
    assert out.count("│ valid") == 2
    assert "rejected since 2023-06-02" in out
    assert "signatures: all valid" in out
    assert "policy chrome: NOT met (0 of 2 SCTs count: none)" in out
    assert "no SCT from a log that is Qualified, Usable or ReadOnly now" in out
    result = run(
        "ct", "verify-scts", REAL_CERT, "--issuer", REAL_ISSUER, "--log-list", REAL_LIST,
        "--policy", "apple", "--json",
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["signatures_ok"] is True
    assert [s["signature"] for s in report["scts"]] == ["valid", "valid"]
    assert [s["log_state"] for s in report["scts"]] == ["rejected", "rejected"]
    assert report["policy"]["name"] == "apple"
    assert report["policy"]["compliant"] is False
    assert report["ok"] is False


def test_verify_scts_catches_a_tampered_sct(tmp_path: Path) -> None:
    der = fakelog.vector("x509/cryptography-scts.pem")
    sct_list = scts_from_certificate(der)
    assert sct_list is not None
    signature = sct_list.scts[1].signature.signature
    assert der.count(signature) == 1
    tampered = der.replace(signature, signature[:-1] + bytes([signature[-1] ^ 1]))
    cert = tmp_path / "tampered.der"
    cert.write_bytes(tampered)
    result = run("ct", "verify-scts", cert, "--issuer", REAL_ISSUER, "--log-list", REAL_LIST)
    assert result.returncode == 1
    assert "INVALID: bad_signature" in result.stdout
    assert result.stdout.count("│ valid") == 1
    assert "signatures: NOT all valid" in result.stdout


def test_verify_scts_with_an_unknown_log_and_the_wrong_issuer(tmp_path: Path) -> None:
    listed = json.loads(REAL_LIST.read_text())
    listed["operators"] = listed["operators"][:1]
    only_google = tmp_path / "list.json"
    only_google.write_text(json.dumps(listed))
    result = run("ct", "verify-scts", REAL_CERT, "--issuer", REAL_ISSUER, "--log-list", only_google)
    assert "unknown log b1N2rDHwMRnYmQCkURX/dxUcEdkCwQApBo2yCJo32RM=" in result.stdout
    assert "unverified (log not in the list)" in result.stdout
    result = run("ct", "verify-scts", REAL_CERT, "--issuer", REAL_CERT, "--log-list", REAL_LIST)
    assert "warning: --issuer is not the certificate's issuer" in result.stdout
    assert result.stdout.count("INVALID: bad_signature") == 2


def test_verify_scts_passes_a_compliant_certificate(server: Any, tmp_path: Path) -> None:
    ca = fakelog.TestCa.create()
    logs = [server.new_log("Alpha"), server.new_log("Beta")]
    cert = tmp_path / "final.der"
    cert.write_bytes(fakelog.issue_final(ca, logs))
    issuer = tmp_path / "ca.der"
    issuer.write_bytes(ca.der)
    log_list = write_list(tmp_path / "list.json", [logs[0].as_log("One"), logs[1].as_log("Two")])
    result = run("ct", "verify-scts", cert, "--issuer", issuer, "--log-list", log_list)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "policy chrome: met (2 of 2 SCTs count: Alpha, Beta)" in result.stdout


def test_verify_scts_input_errors(tmp_path: Path) -> None:
    assert_user_error(
        run(
            "ct",
            "verify-scts",
            tmp_path / "nope.pem",
            "--issuer",
            REAL_ISSUER,
            "--log-list",
            REAL_LIST,
        ),
        "cannot read certificate",
    )
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    assert_user_error(
        run("ct", "verify-scts", junk, "--issuer", REAL_ISSUER, "--log-list", REAL_LIST),
        "is not a PEM or DER certificate",
    )
    assert_user_error(
        run("ct", "verify-scts", REAL_CERT, "--issuer", REAL_ISSUER, "--log-list", junk),
        "is not valid JSON",
    )


def test_get_sth_verified_and_not(server: Any, tmp_path: Path) -> None:
    log = server.new_log("Sth")
    log.add_synthetic(3)
    key = tmp_path / "key.pem"
    key.write_bytes(
        log.signer.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    result = run("ct", "get-sth", log.url, "--key", key)
    assert result.returncode == 0, result.stderr
    assert "tree size:  3" in result.stdout
    assert "signature:  verified with the key of log" in result.stdout
    log_list = write_list(tmp_path / "list.json", [log.as_log("Op")])
    result = run("ct", "get-sth", log.url.rstrip("/"), "--log-list", log_list, "--json")
    document = json.loads(result.stdout)
    assert document["tree_size"] == 3
    assert document["verified"] is True
    assert document["log"] == "Sth"
    result = run("ct", "get-sth", log.url)
    assert "UNVERIFIED (no key: pass --log-list or --key)" in result.stdout
    log.fail("get-sth", fakelog.Fault("bad_sth"))
    assert_user_error(run("ct", "get-sth", log.url, "--key", key), "log", "STH does not verify")
    log.fail("get-sth", fakelog.Fault("garbage"))
    assert_user_error(run("ct", "get-sth", log.url), "malformed get-sth response: not JSON")
    log.fail("get-sth", fakelog.status(403, "go away"))
    assert_user_error(run("ct", "get-sth", log.url), "rejected, HTTP 403: go away")
    assert_user_error(
        run("ct", "get-sth", f"{server.base_url}/other/", "--log-list", log_list),
        "no log with URL",
    )


def test_unreachable_log_is_one_line() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    assert_user_error(run("ct", "get-sth", f"http://127.0.0.1:{port}/"), "connection failed")
    assert_user_error(run("ct", "get-sth", "ftp://example.test/"), "not an http(s) URL")


def test_entries(server: Any, tmp_path: Path) -> None:
    log = server.new_log("Entries")
    log.entries_cap = 2
    ca = fakelog.TestCa.create("Entries CA")
    log.submit(ca.chain(serial=0xABC, names=("a.example", "b.example")), precert=True)
    log.submit([fakelog.vector("x509/cryptography-scts.pem"), ca.der], precert=False)
    log.add_synthetic(2)
    result = run("ct", "entries", log.url, "0", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "4 entries (not verified against an STH)" in out
    assert "precert" in out
    assert "abc" in out
    assert "a.example, b.example" in out
    assert "cryptography.io" in out
    assert "unparseable certificate" in out  # the synthetic entries are not certificates
    key = tmp_path / "key.der"
    key.write_bytes(log.key_der)
    result = run("ct", "entries", log.url, "0", "1", "--key", key, "--verify", "--json")
    document = json.loads(result.stdout)
    assert document["verified"] is True
    assert [e["type"] for e in document["entries"]] == ["precert", "x509"]
    assert document["entries"][1]["not_after"] == "2018-12-25T19:56:33Z"
    log.fail("get-entries", fakelog.Fault("bad_entries"))
    assert_user_error(
        run("ct", "entries", log.url, "0", "1", "--key", key, "--verify"),
        "entry 0 is at index 1 in the tree",
    )
    assert_user_error(run("ct", "entries", log.url, "0", "5000"), "at most 1000 entries")
    assert_user_error(run("ct", "entries", log.url, "0", "1", "--verify"), "--verify needs")
    assert_user_error(run("ct", "entries", log.url, "9", "10"), "rejected, HTTP 400: bad range")


def test_checkpoint(server: Any, tmp_path: Path) -> None:
    log = server.new_log("Static", tiled=True)
    log.add_synthetic(5)
    log_list = write_list(tmp_path / "list.json", [log.as_log("Op")])
    result = run("ct", "checkpoint", log.url, "--log-list", log_list)
    assert result.returncode == 0, result.stderr
    assert f"origin:     {log.origin}" in result.stdout
    assert "tree size:  5" in result.stdout
    key = tmp_path / "key.der"
    key.write_bytes(log.key_der)
    document = json.loads(run("ct", "checkpoint", log.url, "--key", key, "--json").stdout)
    assert document["tree_size"] == 5
    assert_user_error(
        run("ct", "checkpoint", log.url, "--key", key, "--origin", "elsewhere.example/log"),
        "checkpoint does not verify",
    )
    assert_user_error(run("ct", "checkpoint", log.url), "only be checked with the log's key")
