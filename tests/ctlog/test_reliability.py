"""kill -9 at random moments: no acknowledged entry is lost, nothing is duplicated, no fork.

``ctstatus log serve`` runs in a subprocess; concurrent clients submit precertificates; the
process is killed (SIGKILL) after a seeded random number of acknowledgements, with more requests
in flight, and restarted, several times; the last round ends with SIGTERM (graceful). Then every
entry for which an SCT was returned must be in the log at its SCT's ``leaf_index``, no entry may
appear twice, and every STH observed across all restarts must be consistent with every other.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ctstatus.ct.extensions import leaf_index_from_extensions
from ctstatus.ct.merkle import leaf_hash, root, verify_consistency, verify_inclusion
from ctstatus.ct.sct import verify_sct, verify_tree_head
from ctstatus.ct.structures import MerkleTreeLeaf, SignedCertificateTimestamp, SignedTreeHead

from .conftest import CtCa, b64, make_log_dir

SEED = 20261127
ROUNDS = 4
WORKERS = 12
LOG = "alpha"


@dataclass
class Observed:
    acked: dict[bytes, SignedCertificateTimestamp] = field(default_factory=dict)
    cut_off: int = 0  # requests in flight when the server died
    sths: list[SignedTreeHead] = field(default_factory=list)


class Server:
    def __init__(self, config: Path, output: Path) -> None:
        self.config = config
        self.log_list = config.parent / "loglist.json"
        self.output = output.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ctstatus", "log", "serve", "--config", str(config)],
            stdout=self.output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.url = self._wait_ready()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "ctstatus log serve exited"
            if self.log_list.exists():
                document = json.loads(self.log_list.read_text())
                url: str = document["operators"][0]["logs"][0]["url"]
                try:
                    if httpx.get(url + "ct/v1/get-sth", timeout=2).status_code == 200:
                        return url
                except httpx.TransportError:
                    pass
            time.sleep(0.02)  # polls the start-up of the server process
        raise AssertionError("ctstatus log serve did not become ready")

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.output.close()
        return code


async def submit_until_stopped(
    url: str,
    precerts: list[bytes],
    issuing: bytes,
    observed: Observed,
    kill_after: int,
    stop: Any,
) -> None:
    """Workers submit (and sometimes read the STH); ``stop`` fires after ``kill_after`` acks."""
    queue = list(precerts)
    acked_this_round = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal acked_this_round
        while queue:
            precert = queue.pop()
            try:
                response = await client.post(
                    url + "ct/v1/add-pre-chain", json={"chain": [b64(precert), b64(issuing)]}
                )
            except httpx.TransportError:
                observed.cut_off += 1  # the server died under us: never acknowledged
                return
            assert response.status_code == 200, response.text
            observed.acked[precert] = SignedCertificateTimestamp.from_json(response.json())
            acked_this_round += 1
            if acked_this_round % 10 == 0:
                try:
                    sth = await client.get(url + "ct/v1/get-sth")
                    observed.sths.append(SignedTreeHead.from_json(sth.json()))
                except httpx.TransportError:
                    return
            if acked_this_round == kill_after:
                stop()

    async with httpx.AsyncClient(timeout=20) as client:
        await asyncio.gather(*(worker(client) for _ in range(WORKERS)))


def test_kill_9_loses_nothing_acknowledged_and_never_forks(tmp_path: Path, test_ca: CtCa) -> None:
    config = make_log_dir(tmp_path / "logs", test_ca, logs=1)
    config.write_text(config.read_text().replace("sth_interval_ms = 1000", "sth_interval_ms = 50"))
    rng = random.Random(SEED)
    observed = Observed()
    precerts = [test_ca.precert().precert for _ in range(ROUNDS * 160)]
    issuing = test_ca.issuing_der
    output = tmp_path / "server.log"

    for round_number in range(ROUNDS):
        server = Server(config, output)
        batch = precerts[round_number * 160 : (round_number + 1) * 160]
        # Resubmit a few already acknowledged ones: they must come back with the same SCT.
        batch += rng.sample(sorted(observed.acked), min(5, len(observed.acked)))
        kill_after = rng.randint(20, 120)
        last = round_number == ROUNDS - 1
        sig = signal.SIGTERM if last else signal.SIGKILL
        before = dict(observed.acked)
        asyncio.run(
            submit_until_stopped(
                server.url,
                batch,
                issuing,
                observed,
                kill_after,
                functools.partial(server.process.send_signal, sig),
            )
        )
        code = server.stop(sig)
        if last:
            assert code == 0, output.read_text()[-2000:]
        for precert, sct in before.items():
            assert observed.acked[precert] == sct  # resubmissions got the very same SCT

    assert observed.cut_off >= ROUNDS, "the kills should hit requests in flight"
    server = Server(config, output)
    try:
        check_log(server.url, server.log_list, observed, test_ca)
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert "Traceback" not in output.read_text(), output.read_text()[-3000:]


def check_log(url: str, log_list: Path, observed: Observed, ca: CtCa) -> None:
    (entry,) = json.loads(log_list.read_text())["operators"][0]["logs"]
    key = load_der_public_key(base64.b64decode(entry["key"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    client = httpx.Client(timeout=20)
    sth = SignedTreeHead.from_json(client.get(url + "ct/v1/get-sth").json())
    verify_tree_head(sth, key)
    entries: list[dict[str, str]] = []
    while len(entries) < sth.tree_size:
        response = client.get(
            url + "ct/v1/get-entries", params={"start": len(entries), "end": sth.tree_size - 1}
        )
        entries.extend(response.json()["entries"])
    leaves = [MerkleTreeLeaf.decode(base64.b64decode(e["leaf_input"])) for e in entries]
    hashes = [leaf_hash(base64.b64decode(e["leaf_input"])) for e in entries]
    assert root(hashes) == sth.root_hash

    # Nothing duplicated: each precertificate's TBS appears once; each leaf_index is its place.
    signed = [leaf.timestamped_entry.certificate for leaf in leaves]
    assert len(set(signed)) == len(signed)
    for index, leaf in enumerate(leaves):
        assert leaf_index_from_extensions(leaf.timestamped_entry.extensions) == index

    # Every acknowledged entry is there, at the index its SCT names, and its SCT verifies.
    now = time.time_ns() // 1_000_000
    for precert, sct in observed.acked.items():
        index = leaf_index_from_extensions(sct.extensions)
        assert index is not None
        assert index < sth.tree_size, f"acknowledged entry {index} lost"
        assert leaves[index].timestamped_entry.timestamp == sct.timestamp_ms
        extra = base64.b64decode(entries[index]["extra_data"])
        assert extra[3 : 3 + len(precert)] == precert
        verify_sct(sct, key, certificate=precert, issuer=ca.issuing, now_ms=now)

    # Every STH observed across all restarts, and every STH the log ever signed, is consistent
    # with every other: the tree never forked.
    signed_heads = [SignedTreeHead.from_json(b) for b in client.get(admin_url(url)).json()]
    heads = {(h.tree_size, h.root_hash) for h in [*observed.sths, *signed_heads, sth]}
    assert len({size for size, _ in heads}) == len(heads), "two roots for one tree size"
    for (first, first_root), (second, second_root) in itertools.combinations(sorted(heads), 2):
        response = client.get(
            url + "ct/v1/get-sth-consistency", params={"first": first, "second": second}
        )
        proof = [base64.b64decode(p) for p in response.json()["consistency"]]
        verify_consistency(first, second, first_root, second_root, proof)
    assert len(observed.sths) >= ROUNDS
    # Spot-check inclusion of acknowledged entries against the final STH.
    for sct in list(observed.acked.values())[:20]:
        index = leaf_index_from_extensions(sct.extensions)
        assert index is not None
        response = client.get(
            url + "ct/v1/get-proof-by-hash",
            params={"hash": base64.b64encode(hashes[index]).decode(), "tree_size": sth.tree_size},
        )
        path = [base64.b64decode(p) for p in response.json()["audit_path"]]
        verify_inclusion(index, sth.tree_size, hashes[index], path, sth.root_hash)
    client.close()


def admin_url(url: str) -> str:
    base, log = url.rstrip("/").rsplit("/", 1)
    return f"{base}/admin/{log}/sths"
