"""Group commit: submissions pool up and are sequenced, signed and committed a batch at a time.

Like Sunlight's pool: every request that passed validation waits in the pool; the sequencer
takes up to ``batch_max`` of them (after lingering ``batch_linger_ms`` for more), gives each its
index and timestamp, signs its SCT, and commits the whole batch in one SQLite transaction. Only
when that transaction is durable are the waiting requests resolved, so no SCT ever leaves for an
entry that a crash could lose, and one fsync serves a whole batch. While one batch commits the
next one fills, so the fsync latency does not cap throughput.

All database writes (batches and STHs) run on one writer thread, in order: the tree state they
read is never torn, and STHs always cover exactly what was committed before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ctstatus.ct.extensions import leaf_index_extensions
from ctstatus.ct.merkle import leaf_hash
from ctstatus.ct.sct import log_id, sign_tree_head
from ctstatus.ct.structures import (
    DigitallySigned,
    HashAlgorithm,
    MerkleTreeLeaf,
    SignatureAlgorithm,
    SignedCertificateTimestamp,
    SignedTreeHead,
    TimestampedEntry,
    Version,
    sct_signature_input,
)
from ctstatus.ctlog.storage import LogStore, NewEntry
from ctstatus.ctlog.tree import TreeEdge
from ctstatus.ctlog.validate import Candidate
from ctstatus.keys.signer import Signer

MillisClock = Callable[[], int]
logger = logging.getLogger(__name__)


class SequencerError(Exception):
    """The batch holding a submission could not be committed (the client may retry)."""


class Sequencer:
    """The pool, the writer thread and the committed tree of one log."""

    def __init__(
        self,
        store: LogStore,
        signer: Signer,
        clock: MillisClock,
        *,
        batch_max: int,
        linger_ms: float,
        name: str,
    ) -> None:
        self._store = store
        self._signer = signer
        # Computed once: ct.sct.sign_timestamped_entry would hash the key for every SCT.
        self._log_id = log_id(signer.public_key())
        self._sig_alg = (
            SignatureAlgorithm.ECDSA if signer.algorithm.is_ec else SignatureAlgorithm.RSA
        )
        self._clock = clock
        self._batch_max = batch_max
        self._linger = linger_ms / 1000
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"ctlog-{name}-writer")
        self._pool: dict[bytes, tuple[Candidate, asyncio.Future[bytes]]] = {}
        self._inflight: dict[bytes, asyncio.Future[bytes]] = {}
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Writer-thread state (published by plain attribute assignment after each commit).
        self._tree = TreeEdge()
        self._last_entry_ms = 0
        self._last_sth_ms = 0
        self._known_issuers: set[bytes] = set()  # fingerprints already stored
        self.committed_size = 0

    async def start(self) -> SignedTreeHead | None:
        """Load the committed tree; return the newest stored STH (``None`` for a new log)."""
        loop = asyncio.get_running_loop()
        latest = await loop.run_in_executor(self._executor, self._load)
        self._task = asyncio.create_task(self._run(), name="ctlog-sequencer")
        return latest

    def _load(self) -> SignedTreeHead | None:
        self._tree = self._store.load_tree()
        self.committed_size = self._tree.size
        self._last_entry_ms = self._store.last_entry_timestamp()
        latest = self._store.latest_sth_for_writer()
        if latest is not None:
            self._last_sth_ms = latest.timestamp
            if latest.tree_size > self._tree.size:
                raise RuntimeError(
                    f"stored STH covers {latest.tree_size} entries but only "
                    f"{self._tree.size} are committed"
                )
        return latest

    async def drain(self) -> None:
        """Refuse new submissions and commit everything already pooled (graceful shutdown)."""
        self._stopping = True
        self._wakeup.set()
        self._full.set()
        if self._task is not None:
            await self._task

    def close(self) -> None:
        """Stop the writer thread (after :meth:`drain`)."""
        self._executor.shutdown(wait=True)

    async def sequence(self, candidate: Candidate) -> bytes:
        """The encoded SCT for ``candidate``, once its entry is durably committed.

        A submission already logged gets its stored SCT; one already pooled or being
        committed waits for that same entry. No ``await`` separates the checks, so an entry
        is always found in exactly one of the database, the in-flight batch or the pool.
        """
        existing = self._store.sct_for_identity(candidate.identity)
        if existing is not None:
            return existing
        waiting = self._inflight.get(candidate.identity)
        if waiting is None and candidate.identity in self._pool:
            waiting = self._pool[candidate.identity][1]
        if waiting is None:
            if self._stopping:
                raise SequencerError("the log is shutting down")
            waiting = asyncio.get_running_loop().create_future()
            self._pool[candidate.identity] = (candidate, waiting)
            self._wakeup.set()
            if len(self._pool) >= self._batch_max:
                self._full.set()
        return await asyncio.shield(waiting)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            if not self._pool:
                self._wakeup.clear()
                if self._stopping:
                    return
                continue
            if self._linger and len(self._pool) < self._batch_max and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._linger)
            identities = list(self._pool)[: self._batch_max]
            batch = [self._pool.pop(identity) for identity in identities]
            self._inflight = {
                identity: entry[1] for identity, entry in zip(identities, batch, strict=True)
            }
            if len(self._pool) < self._batch_max and not self._stopping:
                self._full.clear()
            if not self._pool and not self._stopping:
                self._wakeup.clear()
            try:
                scts = await loop.run_in_executor(
                    self._executor, self._commit, [c for c, _ in batch]
                )
            except Exception as exc:
                logger.exception("could not commit a batch of %d entries", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(SequencerError(f"could not commit the entry: {exc}"))
            else:
                for (_, future), sct in zip(batch, scts, strict=True):
                    if not future.done():
                        future.set_result(sct)
            finally:
                self._inflight = {}

    def _commit(self, batch: list[Candidate]) -> list[bytes]:
        """Sequence, sign and durably commit one batch (writer thread). Returns the SCTs."""
        # 1. One timestamp for the batch, never earlier than the previous batch's.
        timestamp = max(self._clock(), self._last_entry_ms)
        tree = self._tree.copy()
        entries: list[NewEntry] = []
        node_rows: list[tuple[int, int, bytes]] = []
        issuers: list[tuple[bytes, bytes]] = []
        scts: list[bytes] = []
        for candidate in batch:
            # 2. The index is known at sequencing: it goes into the SCT (static-ct-api).
            index = tree.size
            entry = TimestampedEntry(
                timestamp,
                candidate.entry_type,
                candidate.signed_entry,
                candidate.issuer_key_hash,
                leaf_index_extensions(index),
            )
            leaf_input = MerkleTreeLeaf(entry).encode()
            hashed = leaf_hash(leaf_input)
            # 3. Sign the SCT; it leaves the process only after step 4 has committed.
            signature = self._signer.sign(sct_signature_input(entry))
            sct = SignedCertificateTimestamp(
                Version.V1,
                self._log_id,
                timestamp,
                entry.extensions,
                DigitallySigned(HashAlgorithm.SHA256, self._sig_alg, signature),
            ).encode()
            tree.append(hashed, node_rows)
            entries.append(
                NewEntry(
                    index,
                    candidate.identity,
                    hashed,
                    leaf_input,
                    candidate.extra_data,
                    candidate.chain_fps,
                    sct,
                )
            )
            issuers.extend(i for i in candidate.issuers if i[0] not in self._known_issuers)
            scts.append(sct)
        # 4. Entries, tree nodes, issuers and tree state: one durable transaction.
        self._store.append(entries, node_rows, issuers, tree)
        # 5. Only now is the batch part of the log.
        self._tree = tree
        self._known_issuers.update(fingerprint for fingerprint, _ in issuers)
        self._last_entry_ms = timestamp
        self.committed_size = tree.size
        return scts

    async def sign_tree_head(self, *, only_if_older_than_ms: int | None = None) -> SignedTreeHead:
        """Sign and durably store an STH over everything committed so far.

        With ``only_if_older_than_ms`` an unchanged tree is re-signed only when the newest STH
        is at least that old (RFC 6962 §3.5: a fresh STH within every MMD).
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._sign_sth, only_if_older_than_ms)

    def _sign_sth(self, only_if_older_than_ms: int | None) -> SignedTreeHead:
        latest = self._store.latest_sth_for_writer()
        now = self._clock()
        if (
            latest is not None
            and only_if_older_than_ms is not None
            and latest.tree_size == self._tree.size
            and now - latest.timestamp < only_if_older_than_ms
        ):
            return latest
        # Strictly increasing, and never before the newest entry it covers.
        timestamp = max(now, self._last_sth_ms + 1, self._last_entry_ms)
        sth = sign_tree_head(self._signer, self._tree.size, timestamp, self._tree.compact.root())
        self._store.add_sth(sth)
        self._last_sth_ms = timestamp
        return sth
