"""The log list as a live input, over real HTTPS on loopback (a test CA), signed with test
keys: new logs are followed, retired ones dropped, every change alerted; a tampered or malformed
list is an alert and the last good list stays in force, across a restart too."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from ctstatus.clock import FrozenClock
from ctstatus.ct.loglist import (
    LogListError,
    LogState,
    load_log_list,
    log_list_document,
    verify_log_list,
)
from ctstatus.watch.config import WatchConfig
from ctstatus.watch.runner import Watcher

from .conftest import Logs, WatchCa, free_port, start_logs, stop_logs

PEM = serialization.Encoding.PEM


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "log list test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(PEM))
    paths[1].write_bytes(cert.public_bytes(PEM))
    paths[2].write_bytes(
        key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Files:
    """A bare ASGI app serving whatever bytes the test put under a path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = self.files.get(scope["path"])
        status = 200 if body is not None else 404
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        await send({"type": "http.response.body", "body": body or b""})


@dataclasses.dataclass
class ListServer:
    files: Files
    base: str
    ca: Path
    key: rsa.RSAPrivateKey
    key_file: Path
    logs: Logs

    def publish(self, document: bytes, *, signature_of: bytes | None = None) -> None:
        signed = document if signature_of is None else signature_of
        self.files.files["/log_list.json"] = document
        self.files.files["/log_list.sig"] = self.key.sign(
            signed, padding.PKCS1v15(), hashes.SHA256()
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ListServer]:
    import uvicorn

    ca_file, cert, key = _tls_files(tmp_path)
    files = Files()
    port = free_port()
    config = uvicorn.Config(
        files,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        access_log=False,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    uv = uvicorn.Server(config)
    uv.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive(), "HTTPS server died"
        assert time.monotonic() < deadline, "HTTPS server did not start"
        time.sleep(0.02)  # waits on the server's start-up
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "log_list_pubkey.pem"
    key_file.write_bytes(
        signing.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    logs = start_logs(tmp_path / "logs", [WatchCa.create("list").root], count=2)
    yield ListServer(files, f"https://127.0.0.1:{port}", ca_file, signing, key_file, logs)
    stop_logs(logs)
    uv.should_exit = True
    thread.join(timeout=10)


def _document(logs: list[Any]) -> bytes:
    return json.dumps(log_list_document(logs, timestamp=datetime.now(UTC))).encode()


def _config(server: ListServer, work: Path, **extra: Any) -> WatchConfig:
    values = {
        "database": f"sqlite:///{work / 'watch.db'}",
        "log_list": server.base + "/log_list.json",
        "log_list_signature": server.base + "/log_list.sig",
        "log_list_public_key": str(server.key_file),
        "log_list_ca_bundle": str(server.ca),
        "log_list_seconds": 3600,
        "alerts": {"stdout": False},
    }
    return WatchConfig.model_validate(values | extra)


def _open(watcher: Watcher, prefix: str) -> set[tuple[str, str]]:
    return {
        (p.subject, p.code)
        for p in watcher.store.problems(open_only=True)
        if p.subject.startswith(prefix)
    }


def test_the_list_is_followed_live_and_a_bad_one_changes_nothing(
    server: ListServer, tmp_path: Path
) -> None:
    alpha, bravo = load_log_list(server.logs.log_list).logs
    server.publish(_document([alpha]))
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    sent: list[tuple[str, str, str]] = []

    def sender(kind: str, problem: Any) -> bool:
        sent.append((kind, problem.code, problem.subject))
        return True

    watcher = Watcher(_config(server, tmp_path), tmp_path, clock=clock, senders=[sender])
    try:
        assert [e.url for e in watcher.logs] == [alpha.url]
        assert _open(watcher, "loglist") == set()

        # A new log (a new temporal shard looks the same): followed at the next refresh.
        server.publish(_document([alpha, bravo]))
        clock.advance(seconds=3599)
        assert asyncio.run(watcher.run_once()).log_list_changes == {}  # not due yet
        clock.advance(seconds=1)
        result = asyncio.run(watcher.run_once())
        added = f"loglist-log:{bravo.log_id_b64}"
        assert {s: f.code.value for s, f in result.log_list_changes.items()} == {
            added: "loglist.log_added"
        }
        assert sorted(e.url for e in watcher.logs) == sorted([alpha.url, bravo.url])
        assert len(result.follow) == 2
        assert ("open", "loglist.log_added", added) in sent

        # Retired: dropped; the change is alerted, the previous one closes.
        retired = dataclasses.replace(alpha, state=LogState.RETIRED)
        good = _document([retired, bravo])
        server.publish(good)
        changes = asyncio.run(watcher.refresh_log_list())
        assert {f.code.value for f in changes.values()} == {"loglist.state_changed"}
        assert [e.url for e in watcher.logs] == [bravo.url]
        assert _open(watcher, "loglist-log:") == {
            (f"loglist-log:{alpha.log_id_b64}", "loglist.state_changed")
        }

        # Tampered (a log removed, the old signature): alert; the old list stays in force.
        source = f"loglist:{server.base}/log_list.json"
        server.publish(_document([bravo]), signature_of=good)
        assert asyncio.run(watcher.refresh_log_list()) == {}
        assert [e.url for e in watcher.logs] == [bravo.url]
        assert _open(watcher, "loglist:") == {(source, "loglist.bad_signature")}
        assert watcher.log_list.by_id(alpha.log_id) is not None
        asyncio.run(watcher.run_once())  # the pass delivers the alerts

        # Signed but malformed: alert too.
        server.publish(b'{"operators": [{"name": "x", "logs": [{}]}]}')
        assert asyncio.run(watcher.refresh_log_list()) == {}
        assert _open(watcher, "loglist:") == {(source, "loglist.malformed")}
        asyncio.run(watcher.run_once())
    finally:
        watcher.close()

    # A restart while the list is bad: the last good copy on disk is in force.
    restarted = Watcher(_config(server, tmp_path), tmp_path, clock=clock)
    try:
        assert [e.url for e in restarted.logs] == [bravo.url]
        assert _open(restarted, "loglist:") == {(source, "loglist.malformed")}
        server.publish(good)  # fixed: the problem resolves
        asyncio.run(restarted.refresh_log_list())
        assert _open(restarted, "loglist:") == set()
    finally:
        restarted.close()
    delivered = {(kind, code) for kind, code, _ in sent}
    assert {("open", "loglist.bad_signature"), ("resolved", "loglist.bad_signature")} <= delivered
    assert ("open", "loglist.malformed") in delivered


def test_an_untrusted_server_or_key_is_refused(server: ListServer, tmp_path: Path) -> None:
    alpha, _ = load_log_list(server.logs.log_list).logs
    server.publish(_document([alpha]))
    # No CA bundle: the test CA is not trusted, and there is no good copy to fall back on.
    with pytest.raises(LogListError, match=r"ConnectError|SSL|certificate"):
        Watcher(_config(server, tmp_path, log_list_ca_bundle=None), tmp_path)
    # Another key: the signature does not verify.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(
        other.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(LogListError, match="signature does not verify"):
        Watcher(_config(server, tmp_path, log_list_public_key=str(wrong)), tmp_path)


def test_ecdsa_signatures_verify_over_the_exact_bytes() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = b'{"operators": []}'
    signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    verify_log_list(data, signature, key.public_key(), source="list")
    with pytest.raises(LogListError):
        verify_log_list(data + b" ", signature, key.public_key(), source="list")
    with pytest.raises(LogListError):
        verify_log_list(data, b"\x30\x00", key.public_key(), source="list")
