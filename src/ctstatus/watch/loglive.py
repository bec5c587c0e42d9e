"""The log list as a live input: fetched on a schedule, proven, kept, and compared.

Each source (``log_list`` and ``[[log_lists]]``: Chrome's v3 list, Apple's, a file) is read over
https (a CA bundle may be configured) or from disk; with a ``public_key`` its detached signature
must verify over the exact bytes (Chrome's ``log_list.sig``). A list that verifies and parses is
saved under ``log_list_cache`` and used; a fetch that fails, a bad signature or a malformed list
is a problem on ``loglist:<url>`` (alerted like any other) and the last good list stays in force
-- from memory, or from the cache after a restart. Changes between two good lists (a log added,
removed, or changed state) are problems on ``loglist-log:<log id>`` that stay open until the
next refresh: each is alerted when it opens and when it closes.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ctstatus.ct.loglist import (
    MAX_LOG_LIST_BYTES,
    LogList,
    LogListError,
    load_list_public_key,
    merge_log_lists,
    parse_log_list,
    verify_log_list,
)
from ctstatus.watch.config import LogListSource
from ctstatus.watch.problems import Code, Finding

SOURCE_FAMILY = "loglist.unreachable,loglist.bad_signature,loglist.malformed"
CHANGE_FAMILY = "loglist.log_added,loglist.log_removed,loglist.state_changed"


class LogListFetchError(LogListError):
    """The list could not be fetched (network, TLS, HTTP status): not the list's fault."""


class LogListSignatureError(LogListError):
    """The list's signature is missing or does not verify."""


@dataclass
class ReadResult:
    """The merged list (None: no source gave one, now or from its cache) and, per source
    subject, its findings (empty: it is fine)."""

    log_list: LogList | None
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    from_cache: list[str] = field(default_factory=list)
    errors: list[LogListError] = field(default_factory=list)


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else base / path


def _is_url(location: str) -> bool:
    return location.startswith(("https://", "http://"))


class LiveLogList:
    """Every configured list: :meth:`read` fetches them all now."""

    def __init__(
        self, sources: list[LogListSource], base: Path, cache: Path, *, timeout: float = 30.0
    ) -> None:
        self.sources = sources
        self.base = base
        self.cache = _resolve(base, cache)
        self.timeout = timeout

    def read(self) -> ReadResult:
        result = ReadResult(None)
        lists: list[LogList] = []
        for source in self.sources:
            subject = f"loglist:{source.url}"
            try:
                lists.append(self._fetch(source))
                result.findings[subject] = []
                continue
            except LogListError as exc:
                result.errors.append(exc)
                result.findings[subject] = [_finding(exc, source)]
            cached = self._cached(source)
            if cached is not None:
                lists.append(cached)
                result.from_cache.append(source.url)
        if lists:
            result.log_list = merge_log_lists(lists)
        return result

    # -- one source ------------------------------------------------------------------------

    def _fetch(self, source: LogListSource) -> LogList:
        """1. fetch the bytes (and signature); 2. verify; 3. parse; 4. keep as the good copy."""
        data = self._get(source.url, source)
        signature = None if source.signature is None else self._get(source.signature, source)
        log_list = self._prove(source, data, signature)
        self._save(source, data, signature)
        return log_list

    def _prove(self, source: LogListSource, data: bytes, signature: bytes | None) -> LogList:
        if source.public_key is not None:
            key = load_list_public_key(_resolve(self.base, source.public_key))
            if not signature:
                raise LogListSignatureError(f"{source.url}: no signature to verify")
            try:
                verify_log_list(data, signature, key, source=source.url)
            except LogListError as exc:
                raise LogListSignatureError(str(exc)) from None
        return parse_log_list(data, source=source.url)

    def _get(self, location: str, source: LogListSource) -> bytes:
        if not _is_url(location):
            path = _resolve(self.base, Path(location))
            try:
                with path.open("rb") as file:
                    return file.read(MAX_LOG_LIST_BYTES + 1)
            except OSError as exc:
                raise LogListFetchError(f"cannot read {path}: {exc.strerror or exc}") from None
        verify: ssl.SSLContext | bool = True
        if source.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(_resolve(self.base, source.ca_bundle)))
        try:
            with httpx.stream(
                "GET", location, timeout=self.timeout, verify=verify, follow_redirects=True
            ) as response:
                if response.status_code != 200:
                    raise LogListFetchError(f"{location}: HTTP {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_LOG_LIST_BYTES:
                        raise LogListError(f"{location} is larger than {MAX_LOG_LIST_BYTES} bytes")
                return body
        except httpx.HTTPError as exc:
            raise LogListFetchError(f"{location}: {type(exc).__name__}: {exc}") from None

    # -- the last good copy ----------------------------------------------------------------

    def _paths(self, source: LogListSource) -> tuple[Path, Path]:
        name = hashlib.sha256(source.url.encode()).hexdigest()[:16]
        return self.cache / f"{name}.json", self.cache / f"{name}.sig"

    def _save(self, source: LogListSource, data: bytes, signature: bytes | None) -> None:
        list_path, sig_path = self._paths(source)
        self.cache.mkdir(parents=True, exist_ok=True)
        if signature is not None:
            _write_atomically(sig_path, signature)
        _write_atomically(list_path, data)

    def _cached(self, source: LogListSource) -> LogList | None:
        """The last good copy, proven again (a cache file is no more trusted than the net)."""
        list_path, sig_path = self._paths(source)
        try:
            data = list_path.read_bytes()
            signature = sig_path.read_bytes() if source.signature is not None else None
        except OSError:
            return None
        try:
            return self._prove(source, data, signature)
        except LogListError:
            return None


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _finding(exc: LogListError, source: LogListSource) -> Finding:
    evidence = {"url": source.url, "error": str(exc)}
    if isinstance(exc, LogListFetchError):
        return Finding(Code.LOGLIST_UNREACHABLE, str(exc), evidence)
    if isinstance(exc, LogListSignatureError):
        return Finding(Code.LOGLIST_BAD_SIGNATURE, str(exc), evidence)
    return Finding(Code.LOGLIST_MALFORMED, str(exc), evidence)


def changes(old: LogList, new: LogList) -> dict[str, Finding]:
    """What changed between two good lists, by subject ``loglist-log:<log id>``."""
    found: dict[str, Finding] = {}
    before = {log.log_id: log for log in old.logs}
    after = {log.log_id: log for log in new.logs}
    for log_id, log in after.items():
        subject = f"loglist-log:{log.log_id_b64}"
        evidence = {"log": log.description, "log_id": log.log_id_b64, "state": log.state.value}
        previous = before.get(log_id)
        if previous is None:
            found[subject] = Finding(
                Code.LOGLIST_LOG_ADDED, f"new log in the list: {log.description}", evidence
            )
        elif previous.state is not log.state:
            found[subject] = Finding(
                Code.LOGLIST_STATE_CHANGED,
                f"{log.description}: {previous.state.value} -> {log.state.value}",
                evidence | {"previous_state": previous.state.value},
            )
    for log_id, log in before.items():
        if log_id not in after:
            found[f"loglist-log:{log.log_id_b64}"] = Finding(
                Code.LOGLIST_LOG_REMOVED,
                f"log removed from the list: {log.description}",
                {"log": log.description, "log_id": log.log_id_b64},
            )
    return found
