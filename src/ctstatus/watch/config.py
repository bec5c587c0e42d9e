"""The watcher's own TOML file (``watch.toml``), separate from the CA's: the watcher is a
relying party and needs nothing of the CA but, for reconciliation, its ledger URL.

Every key is documented in docs/watch.md. Relative paths are relative to the file.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ctstatus.config import describe_validation_error, read_toml
from ctstatus.errors import ConfigError
from ctstatus.watch.start import parse_start


def _start(value: str | int | datetime) -> str | int | datetime:
    parse_start(value)  # ValueError: pydantic reports it against the key
    return value


Start = Annotated[str | int | datetime, AfterValidator(_start)]
"""``"end"``, ``"beginning"``, an entry index, or an RFC 3339 time (watch/start.py)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    sender: str
    to: Annotated[list[str], Field(min_length=1)]


class AlertsConfig(_Section):
    stdout: bool = True
    webhook: str | None = None
    smtp: SmtpConfig | None = None


class ReconcileConfig(_Section):
    """Scheduled reconciliation with the CA's ledger (the daemon; ``ctstatus reconcile`` is the
    one-off): the CA instance directory gives the ledger URL and the abandon policy."""

    instance: Path
    interval_seconds: Annotated[float, Field(ge=10, le=86_400)] = 300
    fix: bool = False
    mmd_seconds: Annotated[int, Field(ge=0, le=30 * 86_400)] = 86_400


class LogListSource(_Section):
    """One log list: where it is, and how it is proven (Chrome's list is signed)."""

    url: str  # https:// URL, or a file
    signature: str | None = None  # URL or file of the detached signature (log_list.sig)
    public_key: Path | None = None  # set: a list whose signature does not verify is refused
    ca_bundle: Path | None = None  # PEM roots for the https fetch (default: the system's)

    @model_validator(mode="after")
    def _check(self) -> LogListSource:
        if self.public_key is not None and self.signature is None:
            raise ValueError(f"log list {self.url}: public_key needs signature (its URL or file)")
        return self


class WatchConfig(_Section):
    """Which logs to follow, which issuers to check, how often, and where to keep state."""

    database: str = "sqlite:///watch.sqlite3"
    log_list: str | None = None  # one list, file or URL (the log_list_* keys describe it)
    log_list_signature: str | None = None
    log_list_public_key: Path | None = None
    log_list_ca_bundle: Path | None = None
    log_lists: list[LogListSource] = []  # more lists (Chrome's and Apple's): logs merged
    log_list_seconds: Annotated[float, Field(ge=60, le=7 * 86_400)] = 3600
    log_list_cache: Path = Path("log-lists")  # the last good copy of each list
    logs: list[str] = []
    issuers: list[Path] | Literal["all"] = "all"
    own_issuers: list[Path] = []
    grace_seconds: Annotated[float, Field(ge=0, le=86_400)] = 900
    poll_seconds: Annotated[float, Field(ge=1, le=86_400)] = 300
    recheck_seconds: Annotated[float, Field(ge=60, le=30 * 86_400)] = 21_600
    retry_seconds: Annotated[float, Field(ge=1, le=86_400)] = 60
    retry_max_seconds: Annotated[float, Field(ge=1, le=86_400)] = 300
    probe_seconds: Annotated[float, Field(ge=0, le=30 * 86_400)] = 3600
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 1000
    download_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    log_requests_per_second: Annotated[float, Field(gt=0, le=10_000)] = 20
    log_rate_limits: dict[str, Annotated[float, Field(gt=0, le=10_000)]] = {}
    check_concurrency: Annotated[int, Field(ge=1, le=1024)] = 16
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10
    resolve: dict[str, str] = {}
    start: Start = "end"
    log_start: dict[str, Start] = {}
    lease_seconds: Annotated[float, Field(ge=2, le=3600)] = 60  # PostgreSQL: several processes
    history_days: Annotated[float, Field(ge=0, le=36_500)] = 90
    alerts: AlertsConfig = AlertsConfig()
    reconcile: ReconcileConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> WatchConfig:
        if not self.log_list_sources():
            raise ValueError("log_list (or [[log_lists]]) is required: which logs to follow")
        return self

    def log_list_sources(self) -> list[LogListSource]:
        """``log_list`` and its ``log_list_*`` keys, then every ``[[log_lists]]`` entry."""
        first = []
        if self.log_list is not None:
            first.append(
                LogListSource(
                    url=self.log_list,
                    signature=self.log_list_signature,
                    public_key=self.log_list_public_key,
                    ca_bundle=self.log_list_ca_bundle,
                )
            )
        return first + list(self.log_lists)


def load_watch_config(path: Path) -> tuple[WatchConfig, Path]:
    """The validated config and the directory relative paths are resolved against."""
    data: dict[str, Any] = read_toml(path, missing=("watch config", "write one (docs/watch.md)"))
    try:
        config = WatchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from None
    return config, path.parent
