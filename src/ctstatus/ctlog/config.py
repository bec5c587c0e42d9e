"""The log server's TOML config: strict pydantic models, errors naming the file and the key.

One file describes the listener and any number of logs (``[[log]]``). Every key is documented in
``docs/ctlog.md``. Secrets never live here: the key passphrase is a :class:`SecretSource`
(``{ env = … }`` or ``{ file = … }``). Relative paths are relative to the config file.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ctstatus.config import describe_validation_error, read_toml
from ctstatus.ctlog.faults import Faults
from ctstatus.errors import ConfigError
from ctstatus.secrets import SecretSource

CONFIG_FILE = "ctlog.toml"

LogName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TemporalIntervalConfig(_Section):
    """Accept only certificates whose notAfter is in [start_inclusive, end_exclusive)."""

    start_inclusive: datetime
    end_exclusive: datetime

    @model_validator(mode="after")
    def _check(self) -> TemporalIntervalConfig:
        if self.start_inclusive.tzinfo is None or self.end_exclusive.tzinfo is None:
            raise ValueError("times need a zone (e.g. 2026-01-01T00:00:00Z)")
        if self.start_inclusive >= self.end_exclusive:
            raise ValueError("start_inclusive must be before end_exclusive")
        return self


class LogConfig(_Section):
    """One log: identity, what it accepts, how often it signs, and its injected faults."""

    name: LogName
    description: Annotated[str, Field(min_length=1, max_length=200)]
    operator: Annotated[str, Field(min_length=1, max_length=200)]
    key: Path
    key_passphrase: SecretSource | None = None
    roots: Annotated[list[Path], Field(min_length=1)]
    mmd: Annotated[int, Field(ge=1, le=86400)] = 60
    sth_interval_ms: Annotated[int, Field(ge=10, le=3_600_000)] = 1000
    sth_max_age_ms: Annotated[int, Field(ge=100, le=86_400_000)] | None = None
    get_entries_cap: Annotated[int, Field(ge=1, le=10_000)] = 1000
    batch_max: Annotated[int, Field(ge=1, le=65_536)] = 1024
    batch_linger_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0
    origin: str | None = None
    temporal_interval: TemporalIntervalConfig | None = None
    faults: Faults = Faults()

    @model_validator(mode="after")
    def _check(self) -> LogConfig:
        if self.sth_interval_ms >= self.mmd * 1000 // 2:
            raise ValueError("sth_interval_ms must be well within the MMD (below mmd/2)")
        if self.sth_max_age_ms is not None and self.sth_max_age_ms >= self.mmd * 1000:
            raise ValueError("sth_max_age_ms must be below the MMD")
        if self.origin is not None and (
            not self.origin or any(c.isspace() or c == "+" for c in self.origin)
        ):
            raise ValueError("origin must be non-empty without spaces or '+'")
        return self

    @property
    def max_sth_age_ms(self) -> int:
        """How old the newest STH may get before the same tree is re-signed (RFC 6962 §3.5)."""
        return self.sth_max_age_ms or self.mmd * 1000 // 2


class ServerConfig(_Section):
    """The listener and limits shared by all logs."""

    listen: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8960
    data_dir: Path = Path("data")
    log_list: Path = Path("loglist.json")
    public_url: str | None = None
    admin: bool = True
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 256 * 1024
    max_chain_length: Annotated[int, Field(ge=1, le=32)] = 8
    key_passphrase: SecretSource | None = None
    shutdown_timeout_s: Annotated[int, Field(ge=1, le=600)] = 10

    @model_validator(mode="after")
    def _check(self) -> ServerConfig:
        try:
            address = ipaddress.ip_address(self.listen)
        except ValueError:
            raise ValueError("listen must be an IP address (e.g. 127.0.0.1)") from None
        if self.admin and not address.is_loopback:
            raise ValueError(
                "the admin endpoints are served on loopback only: listen on 127.0.0.1 "
                "or set admin = false"
            )
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http:// or https:// URL")
        return self


class LogServerConfig(_Section):
    """The whole log server config: ``[server]`` and one ``[[log]]`` table per log."""

    server: ServerConfig = ServerConfig()
    log: Annotated[list[LogConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _check(self) -> LogServerConfig:
        names = [log.name for log in self.log]
        if len(set(names)) != len(names):
            raise ValueError("log names must be unique")
        if "admin" in names:
            raise ValueError("'admin' is reserved for the admin endpoints")
        for log in self.log:
            if log.key_passphrase is None and self.server.key_passphrase is None:
                raise ValueError(
                    f"log {log.name!r} has no key_passphrase and [server] key_passphrase is unset"
                )
        return self

    def passphrase_for(self, log: LogConfig) -> SecretSource:
        source = log.key_passphrase or self.server.key_passphrase
        assert source is not None  # checked by the validator
        return source


class LoadedConfig(BaseModel):
    """A validated config and the directory its relative paths are relative to."""

    model_config = ConfigDict(frozen=True)

    config: LogServerConfig
    base_dir: Path
    source: str

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else self.base_dir / value


def parse_log_server_config(data: dict[str, Any], *, source: str) -> LogServerConfig:
    try:
        return LogServerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source), "see docs/ctlog.md") from None


def load_log_server_config(path: Path) -> LoadedConfig:
    """Read and validate ``path``; every problem is a ConfigError naming the file and key."""
    data = read_toml(
        path,
        missing=(
            "no log server config",
            "create one with `ctstatus log init DIR --roots ROOT.pem`, or pass --config",
        ),
    )
    config = parse_log_server_config(data, source=str(path))
    return LoadedConfig(config=config, base_dir=path.parent.resolve(), source=str(path))
