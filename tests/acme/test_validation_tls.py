"""tls-alpn-01 (RFC 8737) against real TLS servers on loopback presenting certificates built
with cryptography."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.acme.conftest import acme_tls_certificate, server_tls_context

from ctstatus.acme.validation import (
    ValidationError,
    ValidationRecord,
    ValidationSettings,
    Validator,
)
from ctstatus.clock import FrozenClock

KEY_AUTH = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


@contextlib.asynccontextmanager
async def tls_server(
    context: ssl.SSLContext | None, sni: list[str | None] | None = None, silent: bool = False
) -> AsyncIterator[int]:
    """A TLS server (or, with ``context`` None, a plain TCP one that writes junk, or with
    ``silent`` says nothing) on loopback; ``sni`` collects the names clients sent."""
    if context is not None and sni is not None:

        def remember(obj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            sni.append(name)

        context.sni_callback = remember  # type: ignore[assignment]
    quiet = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if silent:
                await quiet.wait()
            elif context is None:
                writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                await writer.drain()
            else:
                await reader.read(1)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        quiet.set()
        server.close()
        await server.wait_closed()


def context_for(
    tmp_path: Path, names: list[str], alpn: list[str] | None = None, **kwargs: Any
) -> ssl.SSLContext:
    cert, key = acme_tls_certificate(names, kwargs.pop("key_authorization", KEY_AUTH), **kwargs)
    context = server_tls_context(cert, key, str(tmp_path), ["acme-tls/1"] if alpn is None else alpn)
    assert isinstance(context, ssl.SSLContext)
    return context


def run(
    settings: ValidationSettings,
    context: ssl.SSLContext | None,
    domain: str = "example.com",
    *,
    sni: list[str | None] | None = None,
    silent: bool = False,
    clock: FrozenClock | None = None,
) -> ValidationRecord:
    async def scenario() -> ValidationRecord:
        async with tls_server(context, sni, silent) as port:
            changed = dataclasses.replace(
                settings,
                tls_alpn_port=port,
                resolve={"example.com": "127.0.0.1", "xn--bcher-kva.de": "127.0.0.1"},
            )
            validator = Validator(changed, **({"clock": clock} if clock else {}))
            return await validator.tls_alpn_01(domain, KEY_AUTH)

    return asyncio.run(scenario())


def failure(
    settings: ValidationSettings, context: ssl.SSLContext | None, **kwargs: Any
) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        run(settings, context, **kwargs)
    return caught.value


def test_tls_alpn_01_accepts_an_rfc8737_certificate(
    validation_settings: ValidationSettings, tmp_path: Path, clock: FrozenClock
) -> None:
    sni: list[str | None] = []
    record = run(
        validation_settings,
        context_for(tmp_path, ["example.com"]),
        "Example.COM",
        sni=sni,
        clock=clock,
    )
    assert record.method == "tls-alpn-01"
    assert record.domain == "example.com"
    assert record.address_used == "127.0.0.1"
    assert record.validated_at == clock()
    assert sni == ["example.com"]


def test_tls_alpn_01_idn_sends_the_a_label(
    validation_settings: ValidationSettings, tmp_path: Path
) -> None:
    sni: list[str | None] = []
    run(validation_settings, context_for(tmp_path, ["xn--bcher-kva.de"]), "bücher.de", sni=sni)
    assert sni == ["xn--bcher-kva.de"]


def test_tls_alpn_01_wrong_digest(validation_settings: ValidationSettings, tmp_path: Path) -> None:
    context = context_for(tmp_path, ["example.com"], digest=hashlib.sha256(b"other").digest())
    error = failure(validation_settings, context)
    assert error.problem == "incorrectResponse"
    assert "acmeIdentifier" in error.detail


def test_tls_alpn_01_extension_must_be_critical(
    validation_settings: ValidationSettings, tmp_path: Path
) -> None:
    error = failure(validation_settings, context_for(tmp_path, ["example.com"], critical=False))
    assert error.problem == "incorrectResponse"
    assert "not critical" in error.detail


def test_tls_alpn_01_extension_must_be_present(
    validation_settings: ValidationSettings, tmp_path: Path
) -> None:
    context = context_for(tmp_path, ["example.com"], key_authorization=None)
    error = failure(validation_settings, context)
    assert error.problem == "incorrectResponse"
    assert "no acmeIdentifier" in error.detail


@pytest.mark.parametrize(
    ("names", "why"),
    [
        (["example.com", "www.example.com"], "exactly 'example.com'"),
        (["other.example.com"], "exactly 'example.com'"),
        ([], "has no SAN"),
    ],
)
def test_tls_alpn_01_single_matching_san(
    validation_settings: ValidationSettings, tmp_path: Path, names: list[str], why: str
) -> None:
    error = failure(validation_settings, context_for(tmp_path, names))
    assert error.problem == "incorrectResponse"
    assert why in error.detail


def test_tls_alpn_01_needs_the_alpn_protocol(
    validation_settings: ValidationSettings, tmp_path: Path
) -> None:
    error = failure(validation_settings, context_for(tmp_path, ["example.com"], ["http/1.1"]))
    assert error.problem == "tls"
    assert "acme-tls/1" in error.detail


def test_tls_alpn_01_not_tls(validation_settings: ValidationSettings) -> None:
    error = failure(validation_settings, None)
    assert error.problem == "tls"
    assert "handshake" in error.detail


def test_tls_alpn_01_timeout(validation_settings: ValidationSettings) -> None:
    """A server that accepts and never answers the ClientHello."""
    settings = dataclasses.replace(validation_settings, timeout_seconds=0.3)
    error = failure(settings, None, silent=True)
    assert error.problem == "connection"
    assert "timed out" in error.detail


def test_tls_alpn_01_connection_refused(validation_settings: ValidationSettings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = dataclasses.replace(
        validation_settings, tls_alpn_port=port, resolve={"example.com": "127.0.0.1"}
    )
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(settings).tls_alpn_01("example.com", KEY_AUTH))
    assert caught.value.problem == "connection"
    assert f"127.0.0.1:{port}" in caught.value.detail


def test_tls_alpn_01_refuses_non_loopback_and_wildcards(
    validation_settings: ValidationSettings,
) -> None:
    settings = dataclasses.replace(validation_settings, resolve={"example.com": "203.0.113.9"})
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(settings).tls_alpn_01("example.com", KEY_AUTH))
    assert caught.value.problem == "connection"
    assert "203.0.113.9" in caught.value.detail
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(settings).tls_alpn_01("*.example.com", KEY_AUTH))
    assert caught.value.problem == "malformed"
