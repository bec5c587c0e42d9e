"""Run the configured logs in one process: keys, stores, the ASGI app, uvicorn, the log list.

``ctstatus log serve`` lands here. The listening socket is bound before anything else so the
port (possibly chosen by the OS with ``port = 0``) is known for the log list, which is written
atomically once every log has started. SIGTERM and SIGINT stop uvicorn gracefully: no new
connections, in-flight requests finish (their batch commits), then each log commits whatever is
pooled and signs a last STH.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ctstatus.ct.loglist import Log, LogState, TemporalInterval, log_list_document
from ctstatus.ctlog.app import CtLogApp, refused_log
from ctstatus.ctlog.config import LoadedConfig, LogConfig
from ctstatus.ctlog.faults import FaultState
from ctstatus.ctlog.sequencer import MillisClock
from ctstatus.ctlog.service import CtLog, LogSettings
from ctstatus.ctlog.storage import LogStore, StorageError
from ctstatus.ctlog.validate import ChainValidator, RootStore
from ctstatus.errors import ConfigError, UserError
from ctstatus.keys.files import load_key_file
from ctstatus.keys.signer import KeyAlgorithm

logger = logging.getLogger(__name__)


def system_millis() -> int:
    """Wall-clock milliseconds since the epoch (CT timestamps)."""
    return time.time_ns() // 1_000_000


def load_roots(paths: list[Path], what: str) -> list[x509.Certificate]:
    """Every certificate in the given PEM (or DER) files."""
    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"{what}: cannot read root file {path}: {exc.strerror or exc}"
            ) from None
        try:
            if b"-----BEGIN CERTIFICATE-----" in data:
                roots.extend(x509.load_pem_x509_certificates(data))
            else:
                roots.append(x509.load_der_x509_certificate(data))
        except (ValueError, x509.InvalidVersion) as exc:
            raise ConfigError(f"{what}: {path} holds no readable certificate ({exc})") from None
    return roots


def base_url_for(host: str, port: int) -> str:
    address = ipaddress.ip_address(host)
    shown = f"[{host}]" if address.version == 6 else host
    return f"http://{shown}:{port}"


def build_log(loaded: LoadedConfig, log: LogConfig, *, base_url: str, clock: MillisClock) -> CtLog:
    """Open one configured log: decrypt its key, load its roots, open its database."""
    config = loaded.config
    what = f"log {log.name!r} in {loaded.source}"
    passphrase = config.passphrase_for(log).resolve(loaded.base_dir, f"passphrase of {what}")
    signer = load_key_file(loaded.path(log.key), passphrase)
    if signer.algorithm is not KeyAlgorithm.ECDSA_P256:
        raise ConfigError(f"{what}: the log key must be ECDSA P-256, not {signer.algorithm.value}")
    roots = RootStore(load_roots([loaded.path(p) for p in log.roots], what))
    interval = None
    if log.temporal_interval is not None:
        interval = (log.temporal_interval.start_inclusive, log.temporal_interval.end_exclusive)
    from ctstatus.ct.sct import log_id

    data_dir = loaded.path(config.server.data_dir)
    try:
        store = LogStore(data_dir / f"{log.name}.sqlite3", log_id(signer.public_key()))
    except StorageError as exc:
        raise UserError(str(exc), "each log needs its own database; check data_dir") from None
    parts = urlsplit(base_url)
    origin = log.origin or f"{parts.netloc}{parts.path.rstrip('/')}/{log.name}"
    settings = LogSettings(
        name=log.name,
        description=log.description,
        operator=log.operator,
        mmd=log.mmd,
        sth_interval_ms=log.sth_interval_ms,
        max_sth_age_ms=log.max_sth_age_ms,
        get_entries_cap=log.get_entries_cap,
        batch_max=log.batch_max,
        batch_linger_ms=log.batch_linger_ms,
        max_chain_length=config.server.max_chain_length,
        origin=origin,
    )
    return CtLog(
        settings, signer, store, ChainValidator(roots, interval), FaultState(log.faults), clock
    )


def log_list(
    loaded: LoadedConfig, logs: Mapping[str, CtLog], base_url: str, since: datetime
) -> dict[str, Any]:
    """The v3 log list describing the running logs (RFC 6962 ``url`` = the log's prefix)."""
    entries = []
    for config in loaded.config.log:
        log = logs[config.name]
        spki = log.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        interval = None
        if config.temporal_interval is not None:
            interval = TemporalInterval(
                config.temporal_interval.start_inclusive, config.temporal_interval.end_exclusive
            )
        entries.append(
            Log(
                description=config.description,
                log_id=log.log_id,
                key_der=spki,
                operator=config.operator,
                state=LogState.USABLE,
                state_since=since,
                mmd=config.mmd,
                url=f"{base_url}/{config.name}/",
                temporal_interval=interval,
            )
        )
    return log_list_document(entries, timestamp=since)


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "pick another port with --port (0 lets the system choose)",
        ) from None
    sock.listen(2048)
    return sock


def _protocol_class(logs: Mapping[str, CtLog]) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, closing connections at once for logs that are down (refuse)."""
    base: type[asyncio.Protocol]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    except ImportError:  # httptools is optional; h11 is uvicorn's own fallback
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol

    class RefusingProtocol(base):  # type: ignore[valid-type,misc]
        def data_received(self, data: bytes) -> None:
            if refused_log(data, logs):
                self.transport.abort()
                return
            super().data_received(data)

    return RefusingProtocol


def _graceful_server_class() -> type[Any]:
    """uvicorn's server, exiting with status 0 after a graceful SIGTERM/SIGINT shutdown.

    (uvicorn re-raises the signal after shutting down, so the process would die of it.)
    """
    import signal
    from types import FrameType

    import uvicorn

    class GracefulServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return GracefulServer


class PreparedServer:
    """Everything ``serve`` runs, bound and built but not yet serving (tests run it in a thread)."""

    def __init__(
        self, loaded: LoadedConfig, *, port: int | None = None, clock: MillisClock | None = None
    ) -> None:
        import uvicorn

        server_config = loaded.config.server
        self.log_list_path = loaded.path(server_config.log_list)
        self.log_list_path.unlink(missing_ok=True)
        self.sock = bind(server_config.listen, server_config.port if port is None else port)
        self.port: int = self.sock.getsockname()[1]
        public = server_config.public_url or base_url_for(server_config.listen, self.port)
        self.base_url = public.rstrip("/")
        self.logs: dict[str, CtLog] = {}
        try:
            for log in loaded.config.log:
                self.logs[log.name] = build_log(
                    loaded, log, base_url=self.base_url, clock=clock or system_millis
                )
        except BaseException:
            self.sock.close()
            for opened in self.logs.values():
                opened.store.close()
            raise
        self._loaded = loaded
        app = CtLogApp(
            self.logs,
            max_body_bytes=server_config.max_body_bytes,
            admin=server_config.admin,
            on_started=self._started,
        )
        self.server = _graceful_server_class()(
            uvicorn.Config(
                app,
                lifespan="on",
                http=_protocol_class(self.logs),
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=server_config.shutdown_timeout_s,
                backlog=2048,
                proxy_headers=False,
                server_header=False,
                date_header=False,
            )
        )

    def _started(self) -> None:
        first = min(
            (sths[0].timestamp for log in self.logs.values() if (sths := log.store.sths())),
            default=system_millis(),
        )
        since = datetime.fromtimestamp(first / 1000, UTC).replace(microsecond=0)
        document = log_list(self._loaded, self.logs, self.base_url, since)
        write_atomically(self.log_list_path, (json.dumps(document, indent=2) + "\n").encode())
        print(
            f"ctstatus log serve: {len(self.logs)} log(s) at {self.base_url}/<name>/ "
            f"({', '.join(self.logs)}); log list {self.log_list_path}",
            flush=True,
        )

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or ``server.should_exit``)."""
        self.server.run(sockets=[self.sock])
        if not self.server.started:
            raise UserError(
                "the log server failed to start (see the error above)",
                "check the data directory and the logs' databases",
            )


def serve(
    loaded: LoadedConfig, *, port: int | None = None, clock: MillisClock | None = None
) -> None:
    """Run every configured log until SIGTERM/SIGINT."""
    PreparedServer(loaded, port=port, clock=clock).run()
