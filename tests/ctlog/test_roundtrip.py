"""Round trips through a real log server: SCTs, entries, proofs, STHs, checkpoints, tiles."""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
from typing import Any

import pytest

from ctstatus.ct.checkpoint import verify_checkpoint
from ctstatus.ct.extensions import leaf_index_from_extensions
from ctstatus.ct.merkle import leaf_hash, node_root, verify_consistency, verify_inclusion
from ctstatus.ct.sct import issuer_key_hash, tbs_for_ct, verify_sct, verify_tree_head
from ctstatus.ct.structures import (
    CertificateChain,
    LogEntryType,
    MerkleTreeLeaf,
    PrecertChainEntry,
    SignedCertificateTimestamp,
    SignedTreeHead,
)
from ctstatus.ct.tiles import data_tile_path, decode_data_tile, decode_hash_tile, tile_path

from .conftest import CtCa, RunningServer

LOG = "alpha"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sct_of(response: Any) -> SignedCertificateTimestamp:
    assert response.status_code == 200, response.text
    return SignedCertificateTimestamp.from_json(response.json())


def sth_of(body: dict[str, Any]) -> SignedTreeHead:
    return SignedTreeHead.from_json(body)


@pytest.fixture(scope="module")
def logged(server: RunningServer, test_ca: CtCa) -> dict[str, Any]:
    """Precerts, their final certificates and plain certificates logged to ``alpha``.

    An STH is published after each step, so there are STHs of many sizes to prove between.
    """
    log = server.prepared.logs[LOG]
    items: list[dict[str, Any]] = []
    sths = [server.publish(LOG)]
    for n in range(6):
        issued = test_ca.precert()
        chain = [issued.precert, test_ca.issuing_der]
        sct = sct_of(server.submit(LOG, chain, precert=True))
        verify_sct(
            sct, log.public_key, certificate=issued.precert, issuer=test_ca.issuing, now_ms=now_ms()
        )
        items.append({"kind": "precert", "der": issued.precert, "sct": sct, "chain": chain})
        final = test_ca.final(issued, [sct])
        # The embedded SCT verifies for the final certificate too (same TBS minus poison).
        verify_sct(sct, log.public_key, certificate=final, issuer=test_ca.issuing, now_ms=now_ms())
        # Half with the root included, half without: the log adds it.
        final_chain = [final, test_ca.issuing_der] + ([test_ca.root_der] if n % 2 else [])
        final_sct = sct_of(server.submit(LOG, final_chain, precert=False))
        verify_sct(final_sct, log.public_key, certificate=final, now_ms=now_ms())
        items.append({"kind": "final", "der": final, "sct": final_sct, "chain": final_chain})
        sths.append(server.publish(LOG))
    for _ in range(300):  # more than one 256-entry tile
        plain = test_ca.plain()
        sct = sct_of(server.submit(LOG, [plain, test_ca.issuing_der], precert=False))
        items.append({"kind": "plain", "der": plain, "sct": sct, "chain": [plain]})
    sths.append(server.publish(LOG))
    return {"items": items, "sths": sths}


def entries(server: RunningServer, start: int, end: int) -> list[dict[str, str]]:
    response = server.client.get(server.url(LOG, f"ct/v1/get-entries?start={start}&end={end}"))
    assert response.status_code == 200, response.text
    result: list[dict[str, str]] = response.json()["entries"]
    return result


def all_entries(server: RunningServer, size: int) -> list[dict[str, str]]:
    collected: list[dict[str, str]] = []
    while len(collected) < size:
        batch = entries(server, len(collected), size - 1)
        assert batch
        collected.extend(batch)
    return collected


def test_duplicate_submission_returns_the_same_sct(
    server: RunningServer, test_ca: CtCa, logged: dict[str, Any]
) -> None:
    size_before = server.publish(LOG)["tree_size"]
    for item in logged["items"][:4]:
        chain = [item["der"], test_ca.issuing_der, test_ca.root_der]
        again = sct_of(server.submit(LOG, chain, precert=item["kind"] == "precert"))
        assert again == item["sct"]
    assert server.publish(LOG)["tree_size"] == size_before


def test_entries_hold_what_was_submitted_at_the_sct_index(
    server: RunningServer, test_ca: CtCa, logged: dict[str, Any]
) -> None:
    log = server.prepared.logs[LOG]
    sth = sth_of(logged["sths"][-1])
    verify_tree_head(sth, log.public_key, now_ms=now_ms())
    got = all_entries(server, sth.tree_size)
    assert len(got) == sth.tree_size
    indexes = set()
    for item in logged["items"]:
        index = leaf_index_from_extensions(item["sct"].extensions)
        assert index is not None
        indexes.add(index)
        leaf = MerkleTreeLeaf.decode(base64.b64decode(got[index]["leaf_input"]))
        entry = leaf.timestamped_entry
        assert entry.timestamp == item["sct"].timestamp_ms
        assert entry.extensions == item["sct"].extensions
        extra = base64.b64decode(got[index]["extra_data"])
        if item["kind"] == "precert":
            assert entry.entry_type is LogEntryType.PRECERT_ENTRY
            assert entry.certificate == tbs_for_ct(item["der"])
            assert entry.issuer_key_hash == issuer_key_hash(test_ca.issuing)
            decoded = PrecertChainEntry.decode(extra)
            assert decoded.pre_certificate == item["der"]
            assert decoded.precertificate_chain == (test_ca.issuing_der, test_ca.root_der)
        else:
            assert entry.entry_type is LogEntryType.X509_ENTRY
            assert entry.certificate == item["der"]
            chain = CertificateChain.decode(extra).certificates
            assert chain == (test_ca.issuing_der, test_ca.root_der)
    assert len(indexes) == len(logged["items"])  # nothing logged twice


def test_get_entries_is_capped_and_clipped(server: RunningServer, logged: dict[str, Any]) -> None:
    size = logged["sths"][-1]["tree_size"]
    cap = server.prepared.logs[LOG].settings.get_entries_cap
    assert len(entries(server, 0, 10**9)) == min(cap, size)
    assert len(entries(server, size - 3, size + 50)) == 3
    assert len(entries(server, 5, 5)) == 1


def test_inclusion_proofs_verify_against_the_sth(
    server: RunningServer, logged: dict[str, Any]
) -> None:
    sth = sth_of(logged["sths"][-1])
    got = all_entries(server, sth.tree_size)
    for index in [0, 1, 2, 7, 100, 255, 256, sth.tree_size - 1]:
        hashed = leaf_hash(base64.b64decode(got[index]["leaf_input"]))
        response = server.client.get(
            server.url(LOG, "ct/v1/get-proof-by-hash"),
            params={"hash": base64.b64encode(hashed).decode(), "tree_size": sth.tree_size},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["leaf_index"] == index
        path = [base64.b64decode(p) for p in body["audit_path"]]
        verify_inclusion(index, sth.tree_size, hashed, path, sth.root_hash)
        # get-entry-and-proof gives the same entry and path.
        response = server.client.get(
            server.url(LOG, "ct/v1/get-entry-and-proof"),
            params={"leaf_index": index, "tree_size": sth.tree_size},
        )
        assert response.status_code == 200, response.text
        assert response.json()["leaf_input"] == got[index]["leaf_input"]
        assert response.json()["audit_path"] == body["audit_path"]


def test_consistency_between_every_pair_of_sths_ever_signed(
    server: RunningServer, logged: dict[str, Any]
) -> None:
    response = server.client.get(f"{server.base_url}/admin/{LOG}/sths")
    heads = [sth_of(body) for body in response.json()]
    log = server.prepared.logs[LOG]
    for head in heads:
        verify_tree_head(head, log.public_key)
    assert [h.timestamp for h in heads] == sorted({h.timestamp for h in heads})  # increasing
    distinct = {(h.tree_size, h.root_hash) for h in heads}
    assert len({size for size, _ in distinct}) == len(distinct)  # one root per size
    for first, second in itertools.combinations(sorted(distinct), 2):
        response = server.client.get(
            server.url(LOG, "ct/v1/get-sth-consistency"),
            params={"first": first[0], "second": second[0]},
        )
        assert response.status_code == 200, response.text
        proof = [base64.b64decode(p) for p in response.json()["consistency"]]
        verify_consistency(first[0], second[0], first[1], second[1], proof)


def test_checkpoint_tiles_and_data_tiles_rebuild_the_tree(
    server: RunningServer, test_ca: CtCa, logged: dict[str, Any]
) -> None:
    log = server.prepared.logs[LOG]
    sth = sth_of(server.client.get(server.url(LOG, "ct/v1/get-sth")).json())
    response = server.client.get(server.url(LOG, "checkpoint"))
    assert response.headers["content-type"].startswith("text/plain")
    checkpoint, as_sth = verify_checkpoint(response.content, log.settings.origin, log.public_key)
    assert (checkpoint.tree_size, checkpoint.root_hash) == (sth.tree_size, sth.root_hash)
    assert as_sth == sth

    size = sth.tree_size
    assert size > 256
    level0: list[bytes] = []
    leaves: list[Any] = []
    for index in range((size + 255) // 256):
        width = min(256, size - index * 256)
        tile = server.client.get(server.url(LOG, tile_path(0, index, width)))
        assert tile.status_code == 200, tile.text
        level0.extend(decode_hash_tile(tile.content, width))
        data = server.client.get(server.url(LOG, data_tile_path(index, width)))
        assert data.status_code == 200, data.text
        leaves.extend(decode_data_tile(data.content, width, first_index=index * 256))
    assert node_root(level0) == sth.root_hash
    assert [leaf.leaf_hash() for leaf in leaves] == level0
    # Level 1: the root of the first full level-0 tile; partial width for this size.
    tile = server.client.get(server.url(LOG, tile_path(1, 0, size // 256)))
    assert decode_hash_tile(tile.content, size // 256)[0] == node_root(level0[:256])
    # Data tiles: precert entries carry the submitted precertificate; fingerprints resolve.
    precerts = {item["der"] for item in logged["items"] if item["kind"] == "precert"}
    seen = {leaf.pre_certificate for leaf in leaves if leaf.pre_certificate is not None}
    assert precerts <= seen
    for fingerprint in {f for leaf in leaves for f in leaf.chain_fingerprints}:
        issuer = server.client.get(server.url(LOG, f"issuer/{fingerprint.hex()}"))
        assert issuer.status_code == 200
        assert issuer.headers["content-type"] == "application/pkix-cert"
        assert hashlib.sha256(issuer.content).digest() == fingerprint
    # Tiles beyond the published tree do not exist.
    beyond = server.client.get(server.url(LOG, tile_path(0, (size + 255) // 256)))
    assert beyond.status_code == 404
    assert beyond.json()["error"]


def test_get_roots_lists_the_accepted_root(server: RunningServer, test_ca: CtCa) -> None:
    response = server.client.get(server.url(LOG, "ct/v1/get-roots"))
    roots = [base64.b64decode(c) for c in response.json()["certificates"]]
    assert roots == [test_ca.root_der]


def test_every_log_has_its_own_key_operator_and_entries(server: RunningServer) -> None:
    import json

    document = json.loads(server.prepared.log_list_path.read_text())
    operators = document["operators"]
    assert len(operators) == 3
    for operator in operators:
        (entry,) = operator["logs"]
        key = base64.b64decode(entry["key"])
        assert base64.b64decode(entry["log_id"]) == hashlib.sha256(key).digest()
        assert entry["url"].startswith(server.base_url)
        assert entry["state"].keys() == {"usable"}
    ids = {op["logs"][0]["log_id"] for op in operators}
    assert len(ids) == 3
