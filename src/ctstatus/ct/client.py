"""An async client for one CT log: submission (add-chain, add-pre-chain) and verified reading.

Two rules shape it. A submission is built once and retried byte for byte (invariant 4): the
chain is encoded to JSON before the first attempt and every retry sends those bytes. And nothing
the log returns is believed before it is checked (invariant 5): every SCT is verified against
the log's key for exactly the entry submitted, STHs and checkpoints by their signature, proofs
against the tree heads given, tiles against a checkpoint's root, and every body is bounded.
All failures are :class:`~ctstatus.ct.transport.LogError` subclasses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.serialization import load_der_public_key

from ctstatus.clock import Clock, system_clock
from ctstatus.ct.b64 import b64decode, b64encode
from ctstatus.ct.checkpoint import MAX_NOTE_SIZE, Checkpoint, verify_checkpoint
from ctstatus.ct.errors import (
    CheckpointVerificationError,
    DecodeError,
    EncodeError,
    ProofError,
    SctVerificationError,
    SthVerificationError,
)
from ctstatus.ct.getentries import b64decode_lean, decode_entry_lean
from ctstatus.ct.loglist import Log
from ctstatus.ct.merkle import (
    HASH_SIZE,
    CompactTree,
    compact_tree_from_last_leaf,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from ctstatus.ct.reader import LogEntry, TileTree, entry_from_tile_leaf
from ctstatus.ct.sct import (
    is_precertificate,
    issuer_key_hash,
    log_id,
    tbs_for_ct,
    verify_sct_for_entry,
    verify_tree_head,
)
from ctstatus.ct.structures import (
    MAX_CERT_LENGTH,
    LogEntryType,
    SignedCertificateTimestamp,
    SignedTreeHead,
)
from ctstatus.ct.tiles import (
    TILE_WIDTH,
    TileLeaf,
    data_tile_path,
    decode_data_tile,
    decode_hash_tile,
    tile_path,
)
from ctstatus.ct.transport import (
    KIB,
    MIB,
    HttpSession,
    InvalidEntries,
    InvalidProof,
    InvalidSct,
    InvalidSth,
    LogError,
    LogHttpError,
    LogMalformedResponse,
    LogTimeout,
    LoopTimer,
    NoLogKey,
    Response,
    RetryPolicy,
    Timer,
    fetch_once,
    parse_json_object,
    status_error,
)
from ctstatus.keys.signer import PublicKey

MAX_PROOF_NODES = 64


@dataclass(frozen=True)
class Limits:
    """Byte caps per endpoint (a log cannot make us read more) and the get-entries batch size."""

    sct: int = 64 * KIB
    sth: int = 64 * KIB
    proof: int = 64 * KIB
    entries: int = 32 * MIB
    checkpoint: int = MAX_NOTE_SIZE
    data_tile: int = 64 * MIB
    issuer: int = 256 * KIB
    entries_per_request: int = 256


@dataclass(frozen=True)
class LogEndpoint:
    """Where a log is and, if known, its key: from a log list entry or from a URL and key.

    ``url`` is the RFC 6962 prefix (``…/ct/v1/`` is appended), for a static-ct-api log its
    submission prefix; ``monitoring_url`` is where checkpoints and tiles are served.
    """

    name: str
    url: str
    key_der: bytes | None = None
    monitoring_url: str | None = None
    log: Log | None = None
    checkpoint_origin: str | None = None

    def __post_init__(self) -> None:
        for value in (self.url, self.monitoring_url):
            if value is not None and not value.startswith(("http://", "https://")):
                raise ValueError(f"log URL must be http(s): {value!r}")

    @classmethod
    def from_log(cls, log: Log) -> LogEndpoint:
        url = log.url or log.submission_url
        if url is None:
            raise ValueError(f"log {log.description!r} has no URL")
        return cls(log.description, url, log.key_der, log.monitoring_url, log)

    @classmethod
    def from_url(
        cls,
        url: str,
        key: PublicKey | bytes | None = None,
        *,
        name: str | None = None,
        monitoring_url: str | None = None,
    ) -> LogEndpoint:
        """A log known only by URL (and perhaps its key as an object or SPKI DER)."""
        if key is not None and not isinstance(key, bytes):
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

            key = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return cls(
            name or url,
            _slash(url),
            key,
            _slash(monitoring_url) if monitoring_url else None,
        )

    @property
    def log_id(self) -> bytes | None:
        return None if self.key_der is None else log_id(self.key_der)

    @property
    def origin(self) -> str:
        """The checkpoint origin: the submission prefix without scheme or trailing slash."""
        if self.checkpoint_origin is not None:
            return self.checkpoint_origin
        return self.url.split("://", 1)[1].rstrip("/")


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class ReceivedSct:
    """A verified SCT, the log that issued it, and what it took to get it."""

    sct: SignedCertificateTimestamp
    log: LogEndpoint
    attempts: int
    elapsed: float

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.sct.timestamp_ms / 1000, UTC)


@dataclass(frozen=True)
class InclusionProof:
    """A verified inclusion proof: where the leaf is, and the path that proves it."""

    leaf_index: int
    tree_size: int
    audit_path: tuple[bytes, ...]


@dataclass
class CallStats:
    """Progress of one call, readable while it runs (a cancelled call still has attempts)."""

    attempts: int = 0
    elapsed: float = 0.0
    last_error: LogError | None = field(default=None)


class LogClient:
    """One log over a shared HTTP session (``new_http_session``); see the module docstring."""

    def __init__(
        self,
        log: Log | LogEndpoint,
        http: HttpSession,
        *,
        clock: Clock = system_clock,
        timer: Timer | None = None,
        rng: random.Random | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        clock_skew: float = 10.0,
        throttle: Callable[[], Awaitable[None]] | None = None,
        on_retry_after: Callable[[float], None] | None = None,
    ) -> None:
        self.endpoint = log if isinstance(log, LogEndpoint) else LogEndpoint.from_log(log)
        self.http = http
        self.clock = clock
        self.timer = timer or LoopTimer()
        self.rng = rng or random.Random()  # noqa: S311 -- jitter, not secrets
        self.retry = retry or RetryPolicy()
        self.limits = limits or Limits()
        self.clock_skew = clock_skew
        self.throttle = throttle  # awaited before every attempt (a monitor's per-log rate limit)
        # Told of every Retry-After the log sends, so a pause can hold all its requests, not
        # only the one that was answered 429 (the throttle then waits it out).
        self.on_retry_after = on_retry_after
        self._key: PublicKey | None = None

    @property
    def name(self) -> str:
        return self.endpoint.name

    # -- plumbing --------------------------------------------------------------------------

    def _public_key(self, what: str) -> PublicKey:
        if self._key is None:
            if self.endpoint.key_der is None:
                raise NoLogKey(f"no key known, cannot verify the {what}", log=self.name)
            try:
                key = _load_key(self.endpoint.key_der)
            except ValueError:
                raise NoLogKey("the log key does not load", log=self.name) from None
            if not isinstance(key, PublicKey):
                raise NoLogKey("the log key is neither ECDSA nor RSA", log=self.name)
            self._key = key
        return self._key

    def _now_ms(self) -> int:
        """Now by the injected clock plus the allowed skew (the system clock keeps seconds)."""
        return int((self.clock().timestamp() + self.clock_skew) * 1000)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        max_bytes: int,
        content: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        deadline: float | None = None,
        stats: CallStats | None = None,
    ) -> Response:
        """Send until a 200, a final error, ``max_attempts`` or the deadline; same bytes each time.

        Backoff is jittered exponential, at least what a 429/503 ``Retry-After`` asks; a wait
        that would end past the deadline is not started, the last error is raised instead.
        """
        stats = stats if stats is not None else CallStats()
        policy = self.retry
        budget = policy.deadline if deadline is None else min(deadline, policy.deadline)
        start = self.timer.now()
        end = start + budget
        error: LogError = LogTimeout(0.0)
        timed_out_at = start
        while True:
            if self.throttle is not None:  # outside the attempt's timeout, inside the deadline
                await self.throttle()
            attempt_start = self.timer.now()
            remaining = end - attempt_start
            if remaining <= 0:
                break
            stats.attempts += 1
            attempt_timeout = min(policy.attempt_timeout, remaining)
            timed_out_at = attempt_start + attempt_timeout
            try:
                response = await fetch_once(
                    self.http,
                    method,
                    url,
                    endpoint=endpoint,
                    max_bytes=max_bytes,
                    timeout=attempt_timeout,
                    content=content,
                    params=params,
                )
            except LogError as exc:
                error = exc
            else:
                if response.status == 200:
                    stats.elapsed = self.timer.now() - start
                    return response
                error = status_error(response, self.clock())
            stats.last_error = error
            if not error.retryable or stats.attempts >= policy.max_attempts:
                break
            delay = policy.backoff(stats.attempts, self.rng)
            retry_after = getattr(error, "retry_after", None)
            if isinstance(retry_after, float):
                delay = max(delay, retry_after)
                if self.on_retry_after is not None:
                    self.on_retry_after(retry_after)
            if self.timer.now() + delay >= end:
                break
            await self.timer.sleep(delay)
        stats.elapsed = self.timer.now() - start
        if isinstance(error, LogTimeout):
            # Reported as the budget that ran out (start to the end of the last attempt's
            # timeout), not as measured: the same run always says the same thing.
            error = LogTimeout(timed_out_at - start)
        raise error.in_context(log=self.name, attempts=stats.attempts, elapsed=stats.elapsed)

    def _malformed(self, endpoint: str, why: object, stats: CallStats | None = None) -> LogError:
        error = LogMalformedResponse(endpoint, str(why), log=self.name)
        if stats is not None:
            error.in_context(attempts=stats.attempts, elapsed=stats.elapsed)
        return error

    async def _get_json(
        self,
        path: str,
        endpoint: str,
        max_bytes: int,
        params: Mapping[str, str | int] | None = None,
    ) -> dict[str, object]:
        url = f"{self.endpoint.url}ct/v1/{path}"
        response = await self._request(
            "GET", url, endpoint=endpoint, max_bytes=max_bytes, params=params
        )
        try:
            return parse_json_object(response.body, endpoint)
        except LogError as exc:
            raise exc.in_context(log=self.name) from None

    # -- submission ------------------------------------------------------------------------

    async def add_chain(
        self,
        chain: Sequence[bytes],
        *,
        deadline: float | None = None,
        stats: CallStats | None = None,
        prepared: PreparedSubmission | None = None,
    ) -> ReceivedSct:
        """Log a certificate (chain[0]) and return its verified SCT (x509_entry)."""
        return await self._submit(chain, False, deadline, stats, prepared)

    async def add_pre_chain(
        self,
        chain: Sequence[bytes],
        *,
        deadline: float | None = None,
        stats: CallStats | None = None,
        prepared: PreparedSubmission | None = None,
    ) -> ReceivedSct:
        """Log a precertificate (chain[0], issued by chain[1]) and return its verified SCT.

        ``prepared`` (from :func:`prepare_submission` of this same chain) saves re-deriving
        the signed entry and body when the chain goes to several logs.
        """
        return await self._submit(chain, True, deadline, stats, prepared)

    async def _submit(
        self,
        chain: Sequence[bytes],
        precert: bool,
        deadline: float | None,
        stats: CallStats | None,
        prepared: PreparedSubmission | None,
    ) -> ReceivedSct:
        endpoint = "add-pre-chain" if precert else "add-chain"
        kind = LogEntryType.PRECERT_ENTRY if precert else LogEntryType.X509_ENTRY
        if (
            prepared is None
            or prepared.entry.entry_type is not kind
            or prepared.chain != tuple(chain)
        ):
            prepared = prepare_submission(chain, precert=precert)
        entry = prepared.entry
        key = self._public_key(f"{endpoint} SCT")
        body = prepared.body
        stats = stats if stats is not None else CallStats()
        response = await self._request(
            "POST",
            f"{self.endpoint.url}ct/v1/{endpoint}",
            endpoint=endpoint,
            max_bytes=self.limits.sct,
            content=body,
            deadline=deadline,
            stats=stats,
        )
        try:
            sct = SignedCertificateTimestamp.from_json(parse_json_object(response.body, endpoint))
        except LogError as exc:
            raise exc.in_context(
                log=self.name, attempts=stats.attempts, elapsed=stats.elapsed
            ) from None
        except (DecodeError, EncodeError) as exc:
            raise self._malformed(endpoint, exc, stats) from None
        try:
            verify_sct_for_entry(
                sct,
                key,
                entry_type=entry.entry_type,
                signed_entry=entry.signed_entry,
                issuer_key_hash=entry.issuer_key_hash,
                now_ms=self._now_ms(),
            )
        except SctVerificationError as exc:
            raise InvalidSct(
                exc.reason,
                exc.message,
                log=self.name,
                attempts=stats.attempts,
                elapsed=stats.elapsed,
            ) from None
        return ReceivedSct(sct, self.endpoint, stats.attempts, stats.elapsed)

    # -- RFC 6962 readers ------------------------------------------------------------------

    async def get_sth_unverified(self) -> SignedTreeHead:
        """The log's current STH, parsed but NOT verified: only for showing it to a person."""
        document = await self._get_json("get-sth", "get-sth", self.limits.sth)
        try:
            return SignedTreeHead.from_json(document)
        except (DecodeError, EncodeError) as exc:
            raise self._malformed("get-sth", exc) from None

    async def get_sth(self) -> SignedTreeHead:
        """The log's current STH, its signature verified with the log's key."""
        key = self._public_key("STH")
        sth = await self.get_sth_unverified()
        try:
            verify_tree_head(sth, key, now_ms=self._now_ms())
        except SthVerificationError as exc:
            raise InvalidSth("STH does not verify", extra=str(exc), log=self.name) from None
        return sth

    async def get_sth_consistency(
        self, first: SignedTreeHead, second: SignedTreeHead
    ) -> tuple[bytes, ...]:
        """The consistency proof between two STHs you have verified, checked against both."""
        return await self.prove_consistent(first.tree_size, first.root_hash, second)

    async def prove_consistent(
        self, first_size: int, first_root: bytes, second: SignedTreeHead
    ) -> tuple[bytes, ...]:
        """get-sth-consistency from a verified (size, root) to ``second``, checked against both
        (:class:`InvalidProof` if the log cannot show the older tree is a prefix)."""
        if first_size > second.tree_size:
            raise ValueError("the first tree must not be larger than the second")
        proof: tuple[bytes, ...] = ()
        if 0 < first_size < second.tree_size:
            document = await self._get_json(
                "get-sth-consistency",
                "get-sth-consistency",
                self.limits.proof,
                {"first": first_size, "second": second.tree_size},
            )
            proof = self._hash_list(document, "consistency", "get-sth-consistency")
        try:
            verify_consistency(first_size, second.tree_size, first_root, second.root_hash, proof)
        except ProofError as exc:
            raise InvalidProof(
                f"tree {first_size} is not consistent with tree {second.tree_size}",
                extra=str(exc),
                log=self.name,
            ) from None
        return proof

    async def get_entry_and_proof(
        self, index: int, tree_size: int
    ) -> tuple[bytes, bytes, tuple[bytes, ...]]:
        """(leaf_input, extra_data, audit path) of leaf ``index`` in tree ``tree_size``; NOT
        verified (the caller knows the root it must reproduce)."""
        if not 0 <= index < tree_size:
            raise ValueError(f"leaf {index} outside a tree of size {tree_size}")
        endpoint = "get-entry-and-proof"
        document = await self._get_json(
            endpoint,
            endpoint,
            self.limits.entries,
            {"leaf_index": index, "tree_size": tree_size},
        )
        max_b64 = MAX_CERT_LENGTH + 1024
        try:
            leaf_input = b64decode_lean(document.get("leaf_input"), "leaf_input", max_b64)
            extra = b64decode_lean(document.get("extra_data"), "extra_data", 4 * max_b64)
        except DecodeError as exc:
            raise self._malformed(endpoint, exc) from None
        return leaf_input, extra, self._hash_list(document, "audit_path", endpoint)

    async def _last_leaf_and_path(self, size: int) -> tuple[bytes, tuple[bytes, ...]]:
        """Leaf hash of entry ``size - 1`` and its path in tree ``size``: get-entry-and-proof,
        or where a log refuses it (many do), get-entries and get-proof-by-hash."""
        try:
            leaf_input, _, path = await self.get_entry_and_proof(size - 1, size)
            return leaf_hash(leaf_input), path
        except LogHttpError as exc:
            if exc.retryable:
                raise
        entry = (await self.get_entries(size - 1, size - 1))[0]
        endpoint = "get-proof-by-hash"
        document = await self._get_json(
            endpoint,
            endpoint,
            self.limits.proof,
            {"hash": b64encode(entry.leaf_hash), "tree_size": size},
        )
        index = document.get("leaf_index")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise self._malformed(endpoint, "leaf_index is not a non-negative integer")
        if index != size - 1:  # the same leaf earlier in the log: its path is not the edge's
            raise self._malformed(endpoint, f"leaf {size - 1} answered as leaf {index}")
        return entry.leaf_hash, self._hash_list(document, "audit_path", endpoint)

    async def compact_tree_at(self, size: int, sth: SignedTreeHead) -> CompactTree:
        """The verified compact tree (right edge) of the first ``size`` entries of the tree of
        ``sth``, without downloading them: the path of leaf ``size - 1`` in tree ``size`` gives
        the edge, whose root must be ``sth``'s (same size) or proven a prefix of it."""
        if not 0 <= size <= sth.tree_size:
            raise ValueError(f"size {size} outside 0..{sth.tree_size}")
        if size == 0:
            return CompactTree()
        leaf, path = await self._last_leaf_and_path(size)
        try:
            tree = compact_tree_from_last_leaf(size, leaf, path)
        except ProofError as exc:
            raise InvalidProof(
                f"no right edge of tree {size} from the path of its last leaf",
                extra=str(exc),
                log=self.name,
            ) from None
        if size < sth.tree_size:
            await self.prove_consistent(size, tree.root(), sth)
        elif tree.root() != sth.root_hash:
            raise InvalidProof(
                f"the path of leaf {size - 1} does not give the signed root of tree {size}",
                log=self.name,
            )
        return tree

    async def get_proof_by_hash(self, leaf_hash: bytes, sth: SignedTreeHead) -> InclusionProof:
        """Where ``leaf_hash`` is in the tree of ``sth`` (verified), with the proof."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError("leaf hash must be 32 bytes")
        endpoint = "get-proof-by-hash"
        document = await self._get_json(
            endpoint,
            endpoint,
            self.limits.proof,
            {"hash": b64encode(leaf_hash), "tree_size": sth.tree_size},
        )
        index = document.get("leaf_index")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise self._malformed(endpoint, "leaf_index is not a non-negative integer")
        path = self._hash_list(document, "audit_path", endpoint)
        try:
            verify_inclusion(index, sth.tree_size, leaf_hash, path, sth.root_hash)
        except ProofError as exc:
            raise InvalidProof(
                f"leaf is not proven in tree {sth.tree_size}", extra=str(exc), log=self.name
            ) from None
        return InclusionProof(index, sth.tree_size, path)

    def _hash_list(
        self, document: Mapping[str, object], key: str, endpoint: str
    ) -> tuple[bytes, ...]:
        value = document.get(key)
        if not isinstance(value, list) or len(value) > MAX_PROOF_NODES:
            raise self._malformed(endpoint, f"{key} is not a list of at most {MAX_PROOF_NODES}")
        try:
            return tuple(b64decode(v, f"{key}[{i}]", length=HASH_SIZE) for i, v in enumerate(value))
        except DecodeError as exc:
            raise self._malformed(endpoint, exc) from None

    async def get_entries(self, start: int, end: int) -> list[LogEntry]:
        """One get-entries request for [start, end]; the log may return fewer (never more).

        The entries are decoded strictly but not proven: use :meth:`verify_entry` (or read a
        static log through :meth:`iter_tiled_entries`) before believing them.
        """
        if not 0 <= start <= end:
            raise ValueError(f"bad entry range {start}..{end}")
        end = min(end, start + self.limits.entries_per_request - 1)
        endpoint = "get-entries"
        document = await self._get_json(
            endpoint, endpoint, self.limits.entries, {"start": start, "end": end}
        )
        items = document.get("entries")
        if not isinstance(items, list):
            raise self._malformed(endpoint, "entries is not a list")
        if not items:
            raise self._malformed(endpoint, f"no entries for {start}..{end}")
        if len(items) > end - start + 1:
            raise self._malformed(endpoint, f"{len(items)} entries for {end - start + 1} asked")
        entries: list[LogEntry] = []
        max_b64 = MAX_CERT_LENGTH + 1024
        for index, item in enumerate(items, start):
            if not isinstance(item, dict):
                raise self._malformed(endpoint, f"entry {index} is not an object")
            try:  # the lean decoders: same result or error as b64decode and decode_entry
                leaf_input = b64decode_lean(item.get("leaf_input"), "leaf_input", max_b64)
                extra = b64decode_lean(item.get("extra_data"), "extra_data", 4 * max_b64)
                entries.append(decode_entry_lean(index, leaf_input, extra))
            except (DecodeError, EncodeError) as exc:
                raise self._malformed(endpoint, f"entry {index}: {exc}") from None
        return entries

    async def iter_entries(self, start: int, end: int) -> AsyncIterator[LogEntry]:
        """Entries start..end inclusive, looping as the log caps each batch."""
        position = start
        while position <= end:
            batch = await self.get_entries(position, end)
            for entry in batch:
                yield entry
            position += len(batch)

    async def verify_entry(self, entry: LogEntry, sth: SignedTreeHead) -> None:
        """Prove ``entry`` is at its index in the tree of ``sth`` (:class:`InvalidEntries`)."""
        try:
            proof = await self.get_proof_by_hash(entry.leaf_hash, sth)
        except (InvalidProof, LogMalformedResponse) as exc:
            raise InvalidEntries(
                f"entry {entry.index} is not in tree {sth.tree_size}",
                extra=exc.extra,
                log=self.name,
            ) from None
        except LogError as exc:
            if getattr(exc, "status", None) in (400, 404):
                raise InvalidEntries(
                    f"entry {entry.index} is not in tree {sth.tree_size}",
                    extra=exc.extra,
                    log=self.name,
                ) from None
            raise
        if proof.leaf_index != entry.index:
            raise InvalidEntries(
                f"entry {entry.index} is at index {proof.leaf_index} in the tree", log=self.name
            )

    # -- static-ct-api readers -------------------------------------------------------------

    @property
    def _monitoring(self) -> str:
        return self.endpoint.monitoring_url or self.endpoint.url

    async def get_checkpoint(self) -> tuple[Checkpoint, SignedTreeHead]:
        """The checkpoint (static-ct-api), verified as an RFC 6962-signed note of this log."""
        key = self._public_key("checkpoint")
        response = await self._request(
            "GET",
            f"{self._monitoring}checkpoint",
            endpoint="checkpoint",
            max_bytes=self.limits.checkpoint,
        )
        try:
            return verify_checkpoint(
                response.body, self.endpoint.origin, key, now_ms=self._now_ms()
            )
        except CheckpointVerificationError as exc:
            raise InvalidSth("checkpoint does not verify", extra=str(exc), log=self.name) from None
        except (DecodeError, EncodeError) as exc:
            raise self._malformed("checkpoint", exc) from None

    async def get_tile(self, level: int, index: int, width: int = TILE_WIDTH) -> tuple[bytes, ...]:
        """Hash tile (``level``, ``index``) of ``width`` hashes; NOT verified on its own."""
        path = tile_path(level, index, width)
        response = await self._request(
            "GET", f"{self._monitoring}{path}", endpoint="tile", max_bytes=32 * width
        )
        try:
            return decode_hash_tile(response.body, width)
        except DecodeError as exc:
            raise self._malformed("tile", exc) from None

    async def get_data_tile(
        self, index: int, width: int = TILE_WIDTH, *, check_index: bool = True
    ) -> tuple[TileLeaf, ...]:
        """Data tile ``index`` (entries index*256…); each entry's leaf_index must match unless
        ``check_index`` is false (a look at timestamps, never believed as entries)."""
        path = data_tile_path(index, width)
        response = await self._request(
            "GET",
            f"{self._monitoring}{path}",
            endpoint="data tile",
            max_bytes=self.limits.data_tile,
        )
        try:
            first = index * TILE_WIDTH if check_index else None
            return decode_data_tile(response.body, width, first_index=first)
        except (DecodeError, EncodeError) as exc:
            raise self._malformed("data tile", exc) from None

    async def get_issuer(self, fingerprint: bytes) -> bytes:
        """The chain certificate with this SHA-256 fingerprint (checked)."""
        response = await self._request(
            "GET",
            f"{self._monitoring}issuer/{fingerprint.hex()}",
            endpoint="issuer",
            max_bytes=self.limits.issuer,
        )
        if hashlib.sha256(response.body).digest() != fingerprint:
            raise InvalidEntries(
                f"issuer {fingerprint.hex()[:16]}… has another hash", log=self.name
            )
        return response.body

    def tile_tree(self, sth: SignedTreeHead) -> TileTree:
        """The log's hash tiles for a verified checkpoint's tree, checked as they are read."""

        async def fetch(level: int, index: int, width: int) -> tuple[bytes, ...]:
            return await self.get_tile(level, index, width)

        return TileTree(sth.tree_size, sth.root_hash, fetch)

    async def iter_tiled_entries(
        self, sth: SignedTreeHead, start: int, end: int, tree: TileTree | None = None
    ) -> AsyncIterator[LogEntry]:
        """Entries start..end of a static log, each data tile proven against ``sth``'s root."""
        if not 0 <= start <= end < sth.tree_size:
            raise ValueError(f"bad entry range {start}..{end} for tree size {sth.tree_size}")
        tree = tree or self.tile_tree(sth)
        for tile_index in range(start // TILE_WIDTH, end // TILE_WIDTH + 1):
            width = tree.width(0, tile_index)
            leaves = await self.get_data_tile(tile_index, width)
            try:
                await tree.check_data_tile(tile_index, leaves)
            except ProofError as exc:
                raise InvalidEntries(
                    f"tiles do not match tree {sth.tree_size}", extra=str(exc), log=self.name
                ) from None
            except DecodeError as exc:
                raise self._malformed("tile", exc) from None
            first = tile_index * TILE_WIDTH
            for position, leaf in enumerate(leaves):
                index = first + position
                if start <= index <= end:
                    yield entry_from_tile_leaf(index, leaf)


@dataclass(frozen=True)
class SignedEntry:
    """What a log's SCT signs for a chain: the entry type and bytes, computed before sending."""

    entry_type: LogEntryType
    signed_entry: bytes
    issuer_key_hash: bytes | None


def signed_entry_for(chain: Sequence[bytes], *, precert: bool) -> SignedEntry:
    """Check the chain a caller wants to submit, and what its SCT must sign (ValueError if bad).

    add-chain: leaf = chain[0], signed whole. add-pre-chain: chain[0] must be a precertificate
    and chain[1] its issuer; the SCT signs the TBS without poison and the issuer's key hash.
    """
    if isinstance(chain, bytes | str) or not chain:
        raise ValueError("a chain is a non-empty sequence of DER certificates")
    for position, certificate in enumerate(chain):
        if not isinstance(certificate, bytes) or not 0 < len(certificate) <= MAX_CERT_LENGTH:
            raise ValueError(f"chain[{position}] is not a DER certificate of 1..2^24-1 bytes")
    try:
        if not precert:
            if is_precertificate(chain[0]):
                raise ValueError("chain[0] is a precertificate: use add_pre_chain")
            return SignedEntry(LogEntryType.X509_ENTRY, chain[0], None)
        if len(chain) < 2:
            raise ValueError("add-pre-chain needs the precertificate and its issuer")
        if not is_precertificate(chain[0]):
            raise ValueError("chain[0] has no CT poison extension: not a precertificate")
        return SignedEntry(
            LogEntryType.PRECERT_ENTRY, tbs_for_ct(chain[0]), issuer_key_hash(chain[1])
        )
    except DecodeError as exc:
        raise ValueError(f"chain does not parse: {exc}") from None


@dataclass(frozen=True)
class PreparedSubmission:
    """A chain checked once, with what its SCT must sign and the exact bytes to send."""

    chain: tuple[bytes, ...]
    entry: SignedEntry
    body: bytes


def prepare_submission(chain: Sequence[bytes], *, precert: bool) -> PreparedSubmission:
    """:func:`signed_entry_for` and :func:`submission_body` once, for every log (ValueError)."""
    entry = signed_entry_for(chain, precert=precert)
    return PreparedSubmission(tuple(chain), entry, submission_body(chain))


@functools.lru_cache(maxsize=256)
def _load_key(der: bytes) -> object:
    """Log keys are few and fixed: parse each once per process, not once per submission."""
    return load_der_public_key(der)


def submission_body(chain: Sequence[bytes]) -> bytes:
    """The add-chain / add-pre-chain request body, built once and resent as is."""
    return json.dumps({"chain": [b64encode(c) for c in chain]}, separators=(",", ":")).encode()
