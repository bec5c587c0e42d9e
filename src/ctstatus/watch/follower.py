"""Follow one CT log durably, believing nothing the signed head does not prove.

Like certspotter: fetch the STH (signature verified by :class:`LogClient`); a log seen for
the first time starts where ``start`` says (:mod:`ctstatus.watch.start`) from a compact tree
proven against the head, without reading the prefix; every later head must be proven
consistent with the last verified one (``log.inconsistent``). Then download entries
from the cursor in ordered batches (a few in flight, retries with backoff on 429/5xx are the
client's), fold every leaf hash into the persisted compact tree and, when the download reaches
the STH's size, require the recomputed root to equal the signed root. A mismatch rewinds to the
last verified position and opens ``log.root_mismatch``; a head smaller than, or different at
the size of, a verified one is ``log.tree_shrunk`` / ``log.fork``. Entries and the cursor that
covers them are one transaction (batches grouped while the log keeps up, see
:class:`FollowSettings`), so a kill -9 anywhere costs at most the uncommitted group, downloaded
again on restart. Only watched entries are stored; the rest only move the cursor.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ctstatus.clock import Clock, system_clock
from ctstatus.ct.client import LogClient
from ctstatus.ct.errors import DecodeError, EncodeError, ProofError
from ctstatus.ct.merkle import CompactTree
from ctstatus.ct.reader import LogEntry, TileTree
from ctstatus.ct.structures import SignedTreeHead
from ctstatus.ct.tiles import TILE_WIDTH
from ctstatus.ct.transport import (
    InvalidLogData,
    InvalidProof,
    InvalidSth,
    LogError,
    LogMalformedResponse,
)
from ctstatus.watch.entries import parse_entry
from ctstatus.watch.problems import Code, Finding
from ctstatus.watch.start import BEGINNING, StartAt, start_index
from ctstatus.watch.store import EntryRow, LogCursor, WatchStore


class _Inconsistent(Exception):
    """A new head not proven to extend the verified one."""


@dataclass
class FollowResult:
    """What one pass over a log did."""

    log: str
    tree_size: int = 0
    downloaded: int = 0
    verified_size: int = 0
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class FollowSettings:
    batch_size: int = 1000
    concurrency: int = 4
    grace_seconds: float = 900.0
    own_issuers: frozenset[str] = frozenset()  # issuer keys checked with no grace delay
    # Batches are committed together, up to this many entries or this long after the last
    # commit: each commit rewrites the index pages it touched, spread all over the serial
    # index, so per-batch commits cost several times the rest of the work. When the log kept
    # us idle (``idle_seconds`` of a wait not spent reading), a commit costs nothing: made then.
    commit_entries: int = 100_000
    commit_seconds: float = 5.0
    idle_seconds: float = 0.005
    # Where a log seen for the first time is followed from (watch.toml's ``start``, whose
    # default is "end"; a follower built directly reads from the beginning).
    start: StartAt = BEGINNING


_GC_GEN0 = 50_000
_relaxed = 0  # downloads in progress (the followers of all logs share one process)
_saved = gc.get_threshold()


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the cyclic GC's first threshold while entries are downloaded (any follower).

    A download allocates millions of short-lived, acyclic objects and holds many of them until
    a commit: at the default threshold (700) the collector ran every few entries and walked
    them, about a seventh of the CPU per entry. Reference counting still frees everything.
    """
    global _relaxed, _saved
    if not _relaxed:
        _saved = gc.get_threshold()
        gc.set_threshold(max(_GC_GEN0, _saved[0]), *_saved[1:])
    _relaxed += 1
    try:
        yield
    finally:
        _relaxed -= 1
        if not _relaxed:
            gc.set_threshold(*_saved)


class LogFollower:
    """One log, one store; :meth:`poll` brings the index up to the log's current head."""

    def __init__(
        self,
        client: LogClient,
        store: WatchStore,
        watched: Collection[str] | str,
        settings: FollowSettings | None = None,
        *,
        clock: Clock = system_clock,
    ) -> None:
        if client.endpoint.log_id is None:
            raise ValueError(f"log {client.name!r} has no key: its heads cannot be verified")
        self.client = client
        self.store = store
        self.watched = watched
        self.settings = settings or FollowSettings()
        self.clock = clock
        self.log_id = client.endpoint.log_id.hex()
        self.subject = f"log:{client.name}"
        endpoint = client.endpoint
        self.tiled = endpoint.monitoring_url is not None or (
            endpoint.log is not None and endpoint.log.tiled
        )
        self._tiles: tuple[SignedTreeHead, TileTree] | None = None
        self._issuers_seen: set[str] = set()

    def _now(self) -> float:
        return self.clock().timestamp()

    async def poll(self) -> FollowResult:
        """One pass; log problems are recorded (and returned), never raised."""
        result = FollowResult(self.client.name)
        try:
            await self._poll(result)
        except InvalidSth as exc:
            result.findings.append(Finding(Code.LOG_BAD_STH, str(exc), {"error": str(exc)}))
        except _Inconsistent as exc:
            message, evidence = exc.args
            result.findings.append(Finding(Code.LOG_INCONSISTENT, message, evidence))
        except InvalidLogData as exc:  # tiles or proofs that do not match the signed root
            result.findings.append(Finding(Code.LOG_ROOT_MISMATCH, str(exc), {"error": str(exc)}))
        except LogMalformedResponse as exc:
            result.findings.append(Finding(Code.LOG_MALFORMED, str(exc), {"error": str(exc)}))
        except LogError as exc:
            result.findings.append(Finding(Code.LOG_UNREACHABLE, str(exc), {"error": str(exc)}))
        except ProofError as exc:  # the ct layer's own checks of what the log served
            result.findings.append(Finding(Code.LOG_ROOT_MISMATCH, str(exc), {"error": str(exc)}))
        except (DecodeError, EncodeError) as exc:  # e.g. a tiled tree past the tile levels
            message = f"unusable data from the log: {exc}"
            result.findings.append(Finding(Code.LOG_MALFORMED, message, {"error": str(exc)}))
        self.store.record(self.subject, self.subject, result.findings, self._now(), family="log.")
        return result

    async def _poll(self, result: FollowResult) -> None:
        tiles: TileTree | None = None
        if self.tiled:  # static-ct-api: the checkpoint, its tiles proven against its root
            sth = (await self.client.get_checkpoint())[1]
            tiles = self.client.tile_tree(sth)
            self._tiles = (sth, tiles)
        else:
            sth = await self.client.get_sth()
        result.tree_size = sth.tree_size
        cursor = self.store.find_cursor(self.log_id)
        if cursor is None:
            cursor = await self._start(sth, tiles)
            if cursor is None:
                return  # the log has not reached the configured start index yet
        verified = cursor.verified
        result.verified_size = verified.size
        evidence = {
            "sth_size": sth.tree_size,
            "sth_root": sth.root_hash.hex(),
            "sth_timestamp": sth.timestamp,
            "verified_size": verified.size,
            "verified_root": None if cursor.verified_root is None else cursor.verified_root.hex(),
        }
        if sth.tree_size < verified.size:
            message = f"signed head of size {sth.tree_size} after one of size {verified.size}"
            result.findings.append(Finding(Code.LOG_SHRUNK, message, evidence))
            return
        if (
            sth.tree_size == verified.size
            and cursor.verified_root is not None
            and sth.root_hash != cursor.verified_root
        ):
            message = f"two signed heads of size {sth.tree_size} with different roots"
            result.findings.append(Finding(Code.LOG_FORK, message, evidence))
            return
        if sth.tree_size > verified.size > 0 and cursor.verified_root is not None:
            await self._prove_consistent(verified.size, cursor.verified_root, sth, tiles, evidence)
        if sth.tree_size <= cursor.download.size:
            return  # nothing new (or an older head than one we already downloaded to)
        with _fewer_collections():
            await self._download(cursor.download.copy(), verified.size, sth, result, evidence)

    async def _start(self, sth: SignedTreeHead, tiles: TileTree | None) -> LogCursor | None:
        """A log seen for the first time: its cursor at the configured start, from a compact
        tree proven against ``sth`` (the path of the start's last leaf and a consistency proof,
        or the hash tiles), without reading the entries before it."""
        index = await start_index(self.client, sth, self.settings.start, tiles)
        if index is None:
            return None
        endpoint = self.client.endpoint
        if index == 0:  # from the beginning: nothing to prove yet
            return self.store.start_cursor(
                self.log_id, endpoint.name, endpoint.url, CompactTree(), None, None
            )
        if tiles is None:
            tree = await self.client.compact_tree_at(index, sth)
        else:
            try:
                tree = await tiles.compact_tree(index)
                await tiles.prove_prefix(index, tree.root())
            except ProofError as exc:
                raise InvalidProof(
                    f"the tiles' right edge at {index} is not proven by the checkpoint",
                    extra=str(exc),
                    log=self.client.name,
                ) from None
            except DecodeError as exc:
                raise LogMalformedResponse("tile", str(exc), log=self.client.name) from None
        at_head = index == sth.tree_size
        return self.store.start_cursor(
            self.log_id,
            endpoint.name,
            endpoint.url,
            tree,
            tree.root(),
            sth.timestamp if at_head else None,
            start_sth_ms=sth.timestamp,
        )

    async def _prove_consistent(
        self,
        size: int,
        root: bytes,
        sth: SignedTreeHead,
        tiles: TileTree | None,
        evidence: dict[str, object],
    ) -> None:
        """The new head extends the verified tree: get-sth-consistency, or for a tiled log the
        same proof computed from its tiles; ``log.inconsistent`` otherwise."""
        try:
            if tiles is None:
                await self.client.prove_consistent(size, root, sth)
            else:
                await tiles.prove_prefix(size, root)
        except InvalidProof as exc:
            why = exc.extra or str(exc)
        except ProofError as exc:
            why = str(exc)
        except DecodeError as exc:
            raise LogMalformedResponse("tile", str(exc), log=self.client.name) from None
        else:
            return
        message = f"head of size {sth.tree_size} is not proven to extend the verified {size}"
        raise _Inconsistent(message, evidence | {"error": why})

    async def _fetch(self, start: int, end: int) -> list[LogEntry]:
        if self._tiles is not None:
            sth, tree = self._tiles
            return [e async for e in self.client.iter_tiled_entries(sth, start, end, tree)]
        return [e async for e in self.client.iter_entries(start, end)]

    async def _download(
        self,
        tree: CompactTree,
        verified_size: int,
        sth: SignedTreeHead,
        result: FollowResult,
        evidence: dict[str, object],
    ) -> None:
        size, batch = sth.tree_size, self.settings.batch_size
        if self.tiled:  # whole data tiles per request
            batch = TILE_WIDTH * max(1, batch // TILE_WIDTH)
        starts = list(range(tree.size, size, batch))
        pending: dict[int, asyncio.Task[list[LogEntry]]] = {}
        rows: list[EntryRow] = []  # watched, not yet committed: they end at tree.size
        committed = tree.size  # the download size in the database
        timer = self.client.timer  # durations (the clock keeps whole seconds)
        committed_at = timer.now()
        try:
            for position, start in enumerate(starts):
                for ahead in starts[position : position + self.settings.concurrency]:
                    if ahead not in pending:
                        end = min(ahead + batch, size) - 1
                        pending[ahead] = asyncio.create_task(self._fetch(ahead, end))
                asked, cpu = timer.now(), time.process_time()
                batch_entries = await pending.pop(start)
                # idle: the wait less our own work in it (reading responses is work)
                idle = timer.now() - asked - (time.process_time() - cpu)
                rows += [r for r in self._index(batch_entries, result) if r.watched]
                tree.extend(e.leaf_hash for e in batch_entries)
                result.downloaded += len(batch_entries)
                if tree.size < size:
                    if (
                        tree.size - committed >= self.settings.commit_entries
                        or timer.now() - committed_at >= self.settings.commit_seconds
                        or idle >= self.settings.idle_seconds
                    ):
                        self.store.commit_batch(
                            self.log_id, rows, tree, now=self._now(), since=committed
                        )
                        rows, committed, committed_at = [], tree.size, timer.now()
                    continue
                root = tree.root()
                if root != sth.root_hash:
                    self.store.rewind(self.log_id)
                    dropped = size - verified_size
                    message = (
                        f"the {size} entries served do not hash to the signed root "
                        f"(recomputed {root.hex()[:16]}…, signed {sth.root_hash.hex()[:16]}…)"
                    )
                    evidence = evidence | {"recomputed_root": root.hex(), "dropped": dropped}
                    result.findings.append(Finding(Code.LOG_ROOT_MISMATCH, message, evidence))
                    return
                earlier = self.store.unverified_watched(self.log_id, verified_size, committed)
                newly = earlier + rows
                self.store.commit_batch(
                    self.log_id,
                    rows,
                    tree,
                    now=self._now(),
                    verified=(tree, root, sth.timestamp),
                    queue=[(r, self._due(r)) for r in newly],
                    since=committed,
                )
                result.verified_size = size
        finally:
            for task in pending.values():
                task.cancel()

    def _due(self, row: EntryRow) -> float:
        grace = 0.0 if row.issuer_key in self.settings.own_issuers else self.settings.grace_seconds
        return row.timestamp_ms // 1000 + grace

    def _index(self, batch: list[LogEntry], result: FollowResult) -> list[EntryRow]:
        rows: list[EntryRow] = []
        for entry in batch:
            parsed = parse_entry(entry, self.watched)
            rows.append(parsed.row)
            if parsed.error is not None:
                result.findings.append(
                    Finding(
                        Code.ENTRY_UNPARSEABLE,
                        f"entry {entry.index}: {parsed.error}",
                        {"index": entry.index, "leaf_input": entry.leaf_input.hex()[:4096]},
                    )
                )
            key = parsed.row.issuer_key
            if parsed.issuer_der is not None and key is not None and key not in self._issuers_seen:
                self._issuers_seen.add(key)
                self.store.add_issuer(key, parsed.issuer_der, _issuer_name(parsed.issuer_der))
        return rows


def _issuer_name(der: bytes) -> str:
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return "<unparseable issuer>"
