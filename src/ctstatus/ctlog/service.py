"""One running log: its key, store, sequencer, tree heads and the answers to every endpoint.

The HTTP layer (:mod:`ctstatus.ctlog.app`) only parses requests and renders answers; what a log
answers lives here, including the one write path, :meth:`CtLog.add`. Reads are bounded by the
newest *published* STH: a client never sees a tree size no STH has vouched for.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from dataclasses import dataclass

from ctstatus.ct.checkpoint import checkpoint_from_sth
from ctstatus.ct.sct import log_id, sign_tree_head
from ctstatus.ct.structures import DigitallySigned, SignedCertificateTimestamp, SignedTreeHead
from ctstatus.ctlog import static
from ctstatus.ctlog.errors import ReadError
from ctstatus.ctlog.faults import FaultState, SthFault, corrupt_signature
from ctstatus.ctlog.sequencer import MillisClock, Sequencer
from ctstatus.ctlog.storage import LogStore
from ctstatus.ctlog.tree import (
    consistency_proof,
    inclusion_proof,
    subtree_from_rows,
)
from ctstatus.ctlog.validate import ChainValidator, parse_chain_body
from ctstatus.keys.signer import PublicKey, Signer

logger = logging.getLogger(__name__)

_SUBTREE_CACHE_SIZE = 200_000


@dataclass(frozen=True)
class LogSettings:
    """What a running log needs from its config (so tests can build one without files)."""

    name: str
    description: str
    operator: str
    mmd: int
    sth_interval_ms: int
    max_sth_age_ms: int
    get_entries_cap: int
    batch_max: int
    batch_linger_ms: float
    max_chain_length: int
    origin: str


class CtLog:
    """A log of the server, under ``/<name>/``."""

    def __init__(
        self,
        settings: LogSettings,
        signer: Signer,
        store: LogStore,
        validator: ChainValidator,
        faults: FaultState,
        clock: MillisClock,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.signer = signer
        self.public_key: PublicKey = signer.public_key()
        self.log_id = log_id(self.public_key)
        self.store = store
        self.validator = validator
        self.faults = faults
        self.clock = clock
        self.sequencer = Sequencer(
            store,
            signer,
            clock,
            batch_max=settings.batch_max,
            linger_ms=settings.batch_linger_ms,
            name=settings.name,
        )
        self.latest_sth: SignedTreeHead | None = None
        self._sth_task: asyncio.Task[None] | None = None
        self._subtrees: dict[tuple[int, int], bytes] = {}
        self._rows_subtree = subtree_from_rows(store.node_rows)

    # --- life cycle ---

    async def start(self) -> None:
        latest = await self.sequencer.start()
        if latest is None or latest.tree_size != self.sequencer.committed_size:
            latest = await self.sequencer.sign_tree_head()
        self.latest_sth = latest
        self._sth_task = asyncio.create_task(self._sth_loop(), name=f"ctlog-{self.name}-sth")

    async def stop(self) -> None:
        """Stop signing, commit the pooled batch, sign a last STH over it, close the store."""
        if self._sth_task is not None:
            self._sth_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sth_task
        await self.sequencer.drain()
        try:
            self.latest_sth = await self.sequencer.sign_tree_head(only_if_older_than_ms=1 << 62)
        finally:
            self.sequencer.close()
            self.store.close()

    async def _sth_loop(self) -> None:
        interval = self.settings.sth_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.publish_sth(max_age_ms=self.settings.max_sth_age_ms)
            except Exception:
                logger.exception("log %s: could not sign a tree head", self.name)

    async def publish_sth(self, *, max_age_ms: int | None = None) -> SignedTreeHead:
        """Sign (if the tree grew, or the newest STH is ``max_age_ms`` old) and publish an STH."""
        sth = await self.sequencer.sign_tree_head(only_if_older_than_ms=max_age_ms)
        self.latest_sth = sth
        return sth

    @property
    def published(self) -> SignedTreeHead:
        assert self.latest_sth is not None, "the log has not started"
        return self.latest_sth

    # --- the write path ---

    async def add(self, body: bytes, *, precert: bool) -> SignedCertificateTimestamp:
        """add-chain / add-pre-chain: the SCT, only once the entry is durably committed."""
        # 1. Decode the body: JSON, base64 certificates, chain length bound (400 if malformed).
        ders = parse_chain_body(body, self.settings.max_chain_length)
        # 2. Validate the chain to an accepted root and the (pre)certificate rules (400 if not).
        candidate = self.validator.validate(ders, precert=precert)
        # 3. Sequence it: a known entry returns its stored SCT; a new one joins the pool and is
        #    given its index, timestamp and signed SCT in the next batch, which is committed
        #    durably before this returns (SequencerError if that commit fails: 503).
        sct = await self.sequencer.sequence(candidate)
        # 4. Respond with the SCT exactly as stored (faults may corrupt the copy sent out).
        return SignedCertificateTimestamp.decode(sct)

    def outgoing_sct(self, sct: SignedCertificateTimestamp) -> SignedCertificateTimestamp:
        """The SCT as sent, after the ``corrupt_sct_signature`` fault if set."""
        if not self.faults.faults.corrupt_sct_signature:
            return sct
        signature = sct.signature
        bad = DigitallySigned(
            signature.hash_alg, signature.sig_alg, corrupt_signature(signature.signature)
        )
        return SignedCertificateTimestamp(
            sct.version, sct.log_id, sct.timestamp_ms, sct.extensions, bad
        )

    # --- reads ---

    def outgoing_sth(self) -> SignedTreeHead:
        """The newest STH as served (after an STH fault, if one is set)."""
        sth = self.published
        fault = self.faults.faults.sth
        if fault is SthFault.BAD_SIGNATURE:
            signature = sth.signature
            bad = DigitallySigned(
                signature.hash_alg, signature.sig_alg, corrupt_signature(signature.signature)
            )
            return SignedTreeHead(sth.tree_size, sth.timestamp, sth.root_hash, bad)
        if fault is SthFault.WRONG_ROOT:
            fake_root = hashlib.sha256(b"ctstatus wrong_root fault" + sth.root_hash).digest()
            return sign_tree_head(self.signer, sth.tree_size, sth.timestamp, fake_root)
        return sth

    def checkpoint(self) -> bytes:
        return checkpoint_from_sth(self.outgoing_sth(), self.settings.origin, self.log_id)

    def _subtree(self, height: int, index: int) -> bytes:
        key = (height, index)
        cached = self._subtrees.get(key)
        if cached is not None:
            return cached
        value = self._rows_subtree(height, index)
        if height >= 2:
            if len(self._subtrees) >= _SUBTREE_CACHE_SIZE:
                self._subtrees.clear()
            self._subtrees[key] = value
        return value

    def _check_size(self, tree_size: int, what: str) -> None:
        published = self.published.tree_size
        if tree_size > published:
            raise ReadError(f"{what} {tree_size} is beyond the current tree size {published}")

    def consistency(self, first: int, second: int) -> list[bytes]:
        if first > second:
            raise ReadError(f"first ({first}) is greater than second ({second})")
        self._check_size(second, "second")
        return consistency_proof(self._subtree, first, second)

    def proof_by_hash(self, leaf_hash: bytes, tree_size: int) -> tuple[int, list[bytes]]:
        self._check_size(tree_size, "tree_size")
        index = self.store.index_of_leaf_hash(leaf_hash)
        if index is None or index >= tree_size:
            raise ReadError(f"no entry with that leaf hash in the tree of size {tree_size}", 404)
        return index, inclusion_proof(self._subtree, index, tree_size)

    def entry_and_proof(self, index: int, tree_size: int) -> tuple[bytes, bytes, list[bytes]]:
        self._check_size(tree_size, "tree_size")
        if index >= tree_size:
            raise ReadError(f"leaf_index {index} is not below tree_size {tree_size}")
        ((leaf_input, extra_data),) = self.store.entries(index, index + 1)
        return leaf_input, extra_data, inclusion_proof(self._subtree, index, tree_size)

    def entries_json(self, start: int, end: int) -> bytes:
        """The get-entries body for [start, end] (inclusive), capped and clipped to the tree."""
        if start > end:
            raise ReadError(f"start ({start}) is greater than end ({end})")
        size = self.published.tree_size
        if start >= size:
            raise ReadError(f"start {start} is beyond the current tree size {size}")
        stop = min(end + 1, size, start + self.settings.get_entries_cap)
        rows = self.store.entries(start, stop)
        b64 = base64.b64encode
        items = b",".join(
            b'{"leaf_input":"' + b64(leaf_input) + b'","extra_data":"' + b64(extra_data) + b'"}'
            for leaf_input, extra_data in rows
        )
        return b'{"entries":[' + items + b"]}"

    def hash_tile(self, level: int, index: int, width: int) -> bytes:
        return static.hash_tile(self.store, self.published.tree_size, level, index, width)

    def data_tile(self, index: int, width: int) -> bytes:
        return static.data_tile(self.store, self.published.tree_size, index, width)

    def issuer(self, fingerprint: bytes) -> bytes | None:
        return self.store.issuer(fingerprint)
