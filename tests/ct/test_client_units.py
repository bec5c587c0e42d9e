"""Pure unit tests of the client's parts: tile-tree verification, hostile bodies, helpers.

Only here is ``httpx.MockTransport`` used: to hand the parsers arbitrary bodies quickly. Every
behaviour that involves the network is tested against the real fake log in test_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import cryptography_vectors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ctstatus.ct import ProofError, node_root, root
from ctstatus.ct.client import LogClient, LogEndpoint, RetryPolicy
from ctstatus.ct.reader import TileTree, decode_entry, describe_certificate
from ctstatus.ct.transport import (
    LogError,
    LogMalformedResponse,
    error_excerpt,
    format_seconds,
    new_http_session,
    parse_retry_after,
)


def _levels(leaf_hashes: list[bytes]) -> list[list[bytes]]:
    levels = [leaf_hashes]
    while len(levels[-1]) >= 256:
        below = levels[-1]
        levels.append([node_root(below[i : i + 256]) for i in range(0, len(below) - 255, 256)])
    return levels


def _tree(size: int, seed: int = 0) -> tuple[list[list[bytes]], bytes]:
    rng = random.Random(seed)
    hashes = [rng.randbytes(32) for _ in range(size)]
    return _levels(hashes), root(hashes)


def _fetcher(levels: list[list[bytes]], log: list[tuple[int, int, int]] | None = None) -> Any:
    async def fetch(level: int, index: int, width: int) -> tuple[bytes, ...]:
        if log is not None:
            log.append((level, index, width))
        return tuple(levels[level][index * 256 : index * 256 + width])

    return fetch


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(min_value=1, max_value=3000), data=st.data())
@example(size=256, data=None)
@example(size=257, data=None)
@example(size=512, data=None)
def test_tile_tree_verifies_every_level_zero_tile(size: int, data: Any) -> None:
    levels, top = _tree(size)
    tree = TileTree(size, top, _fetcher(levels))
    last = (size - 1) // 256
    index = data.draw(st.integers(0, last)) if data is not None else last
    hashes = asyncio.run(tree.leaf_hashes(index))
    assert list(hashes) == levels[0][index * 256 : index * 256 + tree.width(0, index)]


@pytest.mark.parametrize("size", [65536, 65536 + 256 * 3 + 7, 256 * 256 * 2 + 1])
def test_tile_tree_three_levels(size: int) -> None:
    rng = random.Random(size)
    leaf_hashes = [rng.randbytes(32) for _ in range(size)]
    levels = _levels(leaf_hashes)
    fetched: list[tuple[int, int, int]] = []
    tree = TileTree(size, root(leaf_hashes), _fetcher(levels, fetched))
    for index in (0, 255, (size - 1) // 256):
        assert (
            list(asyncio.run(tree.leaf_hashes(index)))
            == leaf_hashes[index * 256 :][: tree.width(0, index)]
        )
    assert len(fetched) == len(set(fetched))  # each tile once


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=1500),
    level=st.integers(0, 1),
    position=st.integers(0, 255),
)
def test_tile_tree_catches_any_changed_hash(size: int, level: int, position: int) -> None:
    levels, top = _tree(size, seed=1)
    if level >= len(levels) or position >= len(levels[level]):
        return
    forged = [list(hashes) for hashes in levels]
    forged[level][position] = bytes(32)
    tree = TileTree(size, top, _fetcher(forged))
    tile = position // 256 if level == 0 else position
    with pytest.raises(ProofError):
        asyncio.run(tree.leaf_hashes(min(tile, (size - 1) // 256)))


def test_tile_tree_edges() -> None:
    empty = TileTree(0, hashlib.sha256(b"").digest(), _fetcher([[]]))
    asyncio.run(empty.verify_root())
    with pytest.raises(ProofError):
        asyncio.run(TileTree(0, bytes(32), _fetcher([[]])).verify_root())
    levels, top = _tree(300)
    tree = TileTree(300, top, _fetcher(levels))
    assert (tree.width(0, 0), tree.width(0, 1), tree.width(1, 0)) == (256, 44, 1)
    with pytest.raises(ValueError, match="beyond"):
        tree.width(0, 2)


def _key() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )


KEY = _key()
with cryptography_vectors.open_vector_file("x509/letsencryptx3.pem", "rb") as _pem:
    CERT = x509.load_pem_x509_certificate(_pem.read()).public_bytes(Encoding.DER)


@contextlib.asynccontextmanager
async def _mock_client(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> AsyncIterator[LogClient]:
    """A client whose log is a loopback server answering every request with ``body``."""
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in (headers or {}).items()
    )
    answer = head.encode() + b"\r\n" + body

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                for line in request.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                writer.write(answer)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    retry = RetryPolicy(attempt_timeout=1, deadline=1, max_attempts=1)
    endpoint = LogEndpoint.from_url(f"http://127.0.0.1:{port}/log", KEY, name="X")
    try:
        async with new_http_session() as http:
            yield LogClient(endpoint, http, retry=retry)
    finally:
        server.close()


def _run_readers(body: bytes) -> None:
    async def main() -> None:
        async with _mock_client(body) as client:
            for call in (
                lambda: client.add_chain([CERT]),
                client.get_sth_unverified,
                lambda: client.get_entries(0, 5),
                lambda: client.get_tile(0, 0, 2),
                lambda: client.get_data_tile(0, 1),
                client.get_checkpoint,
            ):
                with contextlib.suppress(LogError):
                    await call()

    asyncio.run(main())


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        ["entries", "leaf_input", "extra_data", "tree_size", "timestamp", "id"]
                    ),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_hostile_bodies_only_ever_raise_log_errors(body: bytes) -> None:
    _run_readers(body)


def test_deep_json_and_bad_gzip_are_malformed() -> None:
    async def main() -> None:
        for body, headers in (
            (b"[" * 100000, {}),
            (b"not gzip", {"content-encoding": "gzip"}),
            (gzip.compress(b"{}")[:-3], {"content-encoding": "gzip"}),
            (b"{}", {"content-encoding": "br"}),
        ):
            async with _mock_client(body, headers=headers) as client:
                with pytest.raises(LogMalformedResponse):
                    await client.get_sth_unverified()

    asyncio.run(main())


def test_gzip_bomb_is_cut_off() -> None:
    bomb = gzip.compress(b" " * (8 * 1024 * 1024))

    async def main() -> None:
        async with _mock_client(bomb, headers={"content-encoding": "gzip"}) as client:
            with pytest.raises(LogMalformedResponse, match="exceeds"):
                await client.get_sth_unverified()

    asyncio.run(main())


def test_helpers() -> None:
    assert [format_seconds(s) for s in (10, 12.4, 2.5, 0.3, 0.04, 0)] == [
        "10",
        "12",
        "2.5",
        "0.3",
        "0.04",
        "0",
    ]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("99999999", now) == 3600.0
    assert error_excerpt(b'{"error_message": "no\\nroot"}') == "no root"
    assert error_excerpt(b"\x00\x01 plain text  error") == "plain text error"
    assert len(error_excerpt(b"x" * 10000)) == 160


def test_entries_of_unknown_type_are_opaque_and_bad_ones_fail() -> None:
    leaf = bytes([0, 0]) + (1234).to_bytes(8, "big") + (7).to_bytes(2, "big") + b"whatever"
    entry = decode_entry(3, leaf, b"extra")
    assert entry.entry_type is None
    assert entry.certificate_der is None
    assert describe_certificate(entry.certificate_der).error
    with pytest.raises(ValueError, match=r"MerkleTreeLeaf|TimestampedEntry|trailing|truncated"):
        decode_entry(0, bytes([0, 0]) + bytes(8) + bytes(2) + b"\x00", b"")
    assert describe_certificate(b"garbage").error.startswith("unparseable certificate")


# -- the right edge and consistency from tiles ------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(min_value=1, max_value=1500), data=st.data())
@example(size=512, data=None)
@example(size=513, data=None)
def test_tile_tree_right_edge_and_consistency(size: int, data: Any) -> None:
    from ctstatus.ct.merkle import CompactTree

    rng = random.Random(size)
    hashes = [rng.randbytes(32) for _ in range(size)]
    levels, top = _levels(hashes), root(hashes)
    first = size if data is None else data.draw(st.integers(min_value=0, max_value=size))
    tree = TileTree(size, top, _fetcher(levels))
    edge = asyncio.run(tree.compact_tree(first))
    expected = CompactTree()
    expected.extend(hashes[:first])
    assert edge.state() == expected.state()
    asyncio.run(tree.prove_prefix(first, edge.root()))  # the honest prefix is proven
    if first:
        with pytest.raises(ProofError):
            asyncio.run(tree.prove_prefix(first, bytes(32)))  # another root for it is not
    if 0 < first < size:  # a forged hash anywhere the proof uses is caught
        forged = [list(level) for level in levels]
        for level, hashes_at in enumerate(forged):  # the stored hash over the last leaf
            if (size - 1) >> (8 * level) < len(hashes_at):
                hashes_at[(size - 1) >> (8 * level)] = bytes(32)
        liar = TileTree(size, top, _fetcher(forged))
        with pytest.raises(ProofError):
            asyncio.run(liar.prove_prefix(first, edge.root()))
