"""CT log lists in the v3 schema Google publishes (and Apple's list, which shares it).

A log list tells a CA which logs to submit to and a monitor which logs to follow, and gives the
key every SCT and STH is checked against. Parsing is strict where a mistake would make us trust
the wrong key (``log_id`` must be SHA-256 of ``key``; the key must load) and lenient where the
schema says clients must be (unknown fields are ignored).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ctstatus.errors import UserError
from ctstatus.keys.signer import PublicKey

MAX_LOG_LIST_BYTES = 16 * 1024 * 1024


class LogListError(UserError):
    """A log list that cannot be used: bad JSON, a missing field, a key that is not its id."""


class LogState(enum.StrEnum):
    PENDING = "pending"
    QUALIFIED = "qualified"
    USABLE = "usable"
    READONLY = "readonly"
    RETIRED = "retired"
    REJECTED = "rejected"


@dataclass(frozen=True)
class TemporalInterval:
    """The log only accepts certificates whose notAfter is in [start, end)."""

    start_inclusive: datetime
    end_exclusive: datetime

    def contains(self, not_after: datetime) -> bool:
        return self.start_inclusive <= not_after < self.end_exclusive


@dataclass(frozen=True)
class PreviousOperator:
    name: str
    end_time: datetime


@dataclass(frozen=True)
class Log:
    """One log of the list, RFC 6962 (``url``) or static-ct-api (``submission_url``)."""

    description: str
    log_id: bytes
    key_der: bytes
    operator: str
    state: LogState
    state_since: datetime
    mmd: int
    url: str | None = None
    submission_url: str | None = None
    monitoring_url: str | None = None
    temporal_interval: TemporalInterval | None = None
    previous_operators: tuple[PreviousOperator, ...] = ()
    log_type: str | None = None

    @property
    def tiled(self) -> bool:
        return self.submission_url is not None

    @property
    def log_id_b64(self) -> str:
        return base64.b64encode(self.log_id).decode()

    def public_key(self) -> PublicKey:
        key = load_der_public_key(self.key_der)
        assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)  # checked at parse
        return key

    def operator_at(self, when: datetime) -> str:
        """Who ran the log at ``when`` (Chrome counts operators as of the SCT's time)."""
        for previous in sorted(self.previous_operators, key=lambda p: p.end_time):
            if when < previous.end_time:
                return previous.name
        return self.operator

    def accepts(self, not_after: datetime) -> bool:
        """Whether the log's temporal interval (if any) covers a certificate's notAfter."""
        return self.temporal_interval is None or self.temporal_interval.contains(not_after)


@dataclass(frozen=True)
class LogList:
    logs: tuple[Log, ...]
    version: str | None = None
    timestamp: datetime | None = None
    _by_id: Mapping[bytes, Log] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {log.log_id: log for log in self.logs})

    def by_id(self, log_id: bytes) -> Log | None:
        return self._by_id.get(log_id)

    @property
    def operators(self) -> list[str]:
        return sorted({log.operator for log in self.logs})


def load_log_list(path: Path) -> LogList:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_LOG_LIST_BYTES + 1)
    except OSError as exc:
        raise LogListError(f"cannot read log list {path}: {exc.strerror or exc}") from None
    return parse_log_list(data, source=str(path))


def parse_log_list(data: bytes | str, *, source: str = "log list") -> LogList:
    """Parse a v3 log list; every problem is a LogListError naming the log and the field."""
    if len(data) > MAX_LOG_LIST_BYTES:
        raise LogListError(f"{source} is larger than {MAX_LOG_LIST_BYTES} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LogListError(f"{source} is not valid JSON: {exc}") from None
    where = _Where(source)
    root = where.mapping(document, "the document")
    logs: list[Log] = []
    for index, operator in enumerate(where.sequence(root.get("operators"), "operators")):
        operator_map = where.mapping(operator, f"operators[{index}]")
        name = where.string(operator_map.get("name"), f"operators[{index}].name")
        for kind in ("logs", "tiled_logs"):
            for log_index, raw in enumerate(where.sequence(operator_map.get(kind, []), kind)):
                context = f"{name} {kind}[{log_index}]"
                logs.append(_parse_log(where, where.mapping(raw, context), name, context))
    ids = [log.log_id for log in logs]
    if len(set(ids)) != len(ids):
        raise LogListError(f"{source} lists the same log id twice")
    timestamp = root.get("log_list_timestamp")
    return LogList(
        logs=tuple(logs),
        version=str(root["version"]) if "version" in root else None,
        timestamp=where.time(timestamp, "log_list_timestamp") if timestamp is not None else None,
    )


def _parse_log(where: _Where, raw: Mapping[str, Any], operator: str, context: str) -> Log:
    description = where.string(raw.get("description"), f"{context}.description")
    context = f"log {description!r}"
    key_der = where.base64(raw.get("key"), f"{context}.key")
    log_id = where.base64(raw.get("log_id"), f"{context}.log_id")
    if hashlib.sha256(key_der).digest() != log_id:
        raise LogListError(f"{where.source}: {context}: log_id is not SHA-256 of its key")
    try:
        key = load_der_public_key(key_der)
    except ValueError as exc:
        raise LogListError(f"{where.source}: {context}: the key does not load: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise LogListError(f"{where.source}: {context}: unsupported key type")
    state_map = where.mapping(raw.get("state"), f"{context}.state")
    if len(state_map) != 1:
        raise LogListError(f"{where.source}: {context}: state must have exactly one key")
    ((state_name, state_value),) = state_map.items()
    try:
        state = LogState(state_name)
    except ValueError:
        raise LogListError(f"{where.source}: {context}: unknown state {state_name!r}") from None
    since = where.time(
        where.mapping(state_value, f"{context}.state").get("timestamp"), f"{context}.state"
    )
    interval = None
    if "temporal_interval" in raw:
        span = where.mapping(raw["temporal_interval"], f"{context}.temporal_interval")
        interval = TemporalInterval(
            where.time(span.get("start_inclusive"), f"{context}.temporal_interval.start"),
            where.time(span.get("end_exclusive"), f"{context}.temporal_interval.end"),
        )
    previous = tuple(
        PreviousOperator(
            where.string(p.get("name"), f"{context}.previous_operators.name"),
            where.time(p.get("end_time"), f"{context}.previous_operators.end_time"),
        )
        for p in (
            where.mapping(item, f"{context}.previous_operators")
            for item in where.sequence(raw.get("previous_operators", []), "previous_operators")
        )
    )
    url = raw.get("url")
    submission_url = raw.get("submission_url")
    if (url is None) == (submission_url is None):
        raise LogListError(
            f"{where.source}: {context}: needs exactly one of url (RFC 6962) or submission_url"
        )
    mmd = raw.get("mmd", 86400)
    if not isinstance(mmd, int) or mmd < 0:
        raise LogListError(f"{where.source}: {context}: mmd must be a whole number of seconds")
    return Log(
        description=description,
        log_id=log_id,
        key_der=key_der,
        operator=operator,
        state=state,
        state_since=since,
        mmd=mmd,
        url=_optional_url(where, url, f"{context}.url"),
        submission_url=_optional_url(where, submission_url, f"{context}.submission_url"),
        monitoring_url=_optional_url(where, raw.get("monitoring_url"), f"{context}.monitoring_url"),
        temporal_interval=interval,
        previous_operators=previous,
        log_type=raw.get("log_type") if isinstance(raw.get("log_type"), str) else None,
    )


def _optional_url(where: _Where, value: object, context: str) -> str | None:
    if value is None:
        return None
    url = where.string(value, context)
    if not url.startswith(("http://", "https://")):
        raise LogListError(f"{where.source}: {context} must be an http(s) URL")
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class _Where:
    """Typed access to JSON values, with errors that say where in which file."""

    source: str

    def _fail(self, context: str, what: str) -> LogListError:
        return LogListError(f"{self.source}: {context} must be {what}")

    def mapping(self, value: object, context: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self._fail(context, "an object")
        return value

    def sequence(self, value: object, context: str) -> Sequence[Any]:
        if not isinstance(value, list):
            raise self._fail(context, "a list")
        return value

    def string(self, value: object, context: str) -> str:
        if not isinstance(value, str) or not value:
            raise self._fail(context, "a non-empty string")
        return value

    def base64(self, value: object, context: str) -> bytes:
        try:
            return base64.b64decode(self.string(value, context), validate=True)
        except binascii.Error:
            raise self._fail(context, "base64") from None

    def time(self, value: object, context: str) -> datetime:
        text = self.string(value, context)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise self._fail(context, "an RFC 3339 time") from None
        if parsed.tzinfo is None:
            raise self._fail(context, "an RFC 3339 time with a zone")
        return parsed


def log_list_document(
    logs: Sequence[Log], *, version: str = "1", timestamp: datetime | None = None
) -> dict[str, Any]:
    """A v3 log list describing ``logs`` (what `ctstatus log serve` writes for clients)."""

    def iso(when: datetime) -> str:
        return when.isoformat().replace("+00:00", "Z")

    operators: dict[str, dict[str, Any]] = {}
    for log in logs:
        entry: dict[str, Any] = {
            "description": log.description,
            "log_id": log.log_id_b64,
            "key": base64.b64encode(log.key_der).decode(),
            "mmd": log.mmd,
            "state": {log.state.value: {"timestamp": iso(log.state_since)}},
        }
        if log.url is not None:
            entry["url"] = log.url
        if log.submission_url is not None:
            entry["submission_url"] = log.submission_url
            entry["monitoring_url"] = log.monitoring_url
        if log.temporal_interval is not None:
            entry["temporal_interval"] = {
                "start_inclusive": iso(log.temporal_interval.start_inclusive),
                "end_exclusive": iso(log.temporal_interval.end_exclusive),
            }
        if log.log_type is not None:
            entry["log_type"] = log.log_type
        operator = operators.setdefault(
            log.operator, {"name": log.operator, "email": [], "logs": [], "tiled_logs": []}
        )
        operator["tiled_logs" if log.tiled else "logs"].append(entry)
    document: dict[str, Any] = {"version": version, "operators": list(operators.values())}
    if timestamp is not None:
        document["log_list_timestamp"] = iso(timestamp)
    return document


# -- signed lists (Chrome's log_list.json + log_list.sig) ------------------------------------

#: States whose logs a monitor stops following: the list says they are gone.
DROPPED_STATES = frozenset({LogState.REJECTED, LogState.RETIRED})


def load_list_public_key(path: Path) -> PublicKey:
    """The key a log list is signed with (PEM or DER SubjectPublicKeyInfo)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LogListError(f"cannot read log list key {path}: {exc.strerror or exc}") from None
    try:
        key = load_pem_public_key(data) if b"-----BEGIN" in data else load_der_public_key(data)
    except ValueError as exc:
        raise LogListError(f"log list key {path} does not load: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise LogListError(f"log list key {path}: only RSA and ECDSA keys sign log lists")
    return key


def verify_log_list(data: bytes, signature: bytes, key: PublicKey, *, source: str) -> None:
    """The signature over the exact bytes of the list: RSA PKCS#1 v1.5 with SHA-256 (Chrome's
    ``log_list.sig``) or ECDSA with SHA-256 (DER signature). A LogListError if it fails."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise LogListError(f"{source}: the signature does not verify with the list's key") from None


def merge_log_lists(lists: Sequence[LogList]) -> LogList:
    """Several lists (Chrome's and Apple's) as one: every log once, by log ID; a log dropped
    (rejected, retired) by one list but followed by another stays, in the state of the first
    list that still follows it."""
    chosen: dict[bytes, Log] = {}
    for log_list in lists:
        for log in log_list.logs:
            current = chosen.get(log.log_id)
            if current is None or (
                current.state in DROPPED_STATES and log.state not in DROPPED_STATES
            ):
                chosen[log.log_id] = log
    timestamps = [t for t in (x.timestamp for x in lists) if t is not None]
    return LogList(
        logs=tuple(chosen.values()),
        version=lists[0].version if len(lists) == 1 else None,
        timestamp=max(timestamps) if timestamps else None,
    )
