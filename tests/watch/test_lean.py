"""The small HTTP client against a raw socket server that answers exactly the bytes we choose."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ctstatus.watch.http import fetch
from ctstatus.watch.lean import LeanHttp, LeanHttpError, TooLarge

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(answer: bytes, *, close: bool) -> tuple[asyncio.Server, int, list[int]]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, connections


async def _get(
    answer: bytes, *, close: bool = False, times: int = 1, max_bytes: int = 1000
) -> tuple[list[bytes], int]:
    server, port, connections = await _serve(answer, close=close)
    client = LeanHttp()
    try:
        bodies = [
            (await client.request("GET", f"http://127.0.0.1:{port}/x", max_bytes=max_bytes)).body
            for _ in range(times)
        ]
    finally:
        await client.aclose()
        server.close()
    return bodies, len(connections)


def test_content_length_and_keep_alive() -> None:
    bodies, connections = asyncio.run(
        _get(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", times=3)
    )
    assert (bodies, connections) == ([b"abc"] * 3, 1)


def test_chunked() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
    assert asyncio.run(_get(answer))[0] == [b"abc"]


def test_read_to_close_and_server_closing_keep_alive() -> None:
    bodies, connections = asyncio.run(_get(b"HTTP/1.0 200 OK\r\n\r\nabc", close=True, times=2))
    assert (bodies, connections) == ([b"abc", b"abc"], 2)


def test_truncated_and_too_large() -> None:
    with pytest.raises(LeanHttpError, match="truncated body"):
        asyncio.run(_get(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close=True))
    with pytest.raises(TooLarge):
        asyncio.run(_get(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", close=True))
    with pytest.raises(LeanHttpError, match="status line"):
        asyncio.run(_get(b"SSH-2.0-OpenSSH\r\n\r\n", close=True))


def test_fetch_turns_truncation_into_a_finding() -> None:
    async def run() -> str | None:
        server, port, _ = await _serve(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close=True
        )
        client = LeanHttp()
        try:
            fetched = await fetch(
                None,  # type: ignore[arg-type]  # never used for a plain-http URL with lean
                "GET",
                f"http://127.0.0.1:{port}/",
                timeout=2,
                max_bytes=100,
                lean=client,
            )
        finally:
            await client.aclose()
            server.close()
        return None if fetched.finding is None else fetched.finding.code.value

    assert asyncio.run(run()) == "transport.truncated"
