"""http-01 (RFC 8555 §8.3) against real aiohttp servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from tests.acme.conftest import acme_tls_certificate, server_tls_context
from tests.acme.dnsserver import TestDNSServer

from ctstatus.acme.validation import (
    ValidationError,
    ValidationRecord,
    ValidationSettings,
    Validator,
)
from ctstatus.clock import FrozenClock

TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
KEY_AUTH = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
PATH = f"/.well-known/acme-challenge/{TOKEN}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serve(handler: Handler, ssl_context: Any = None) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port
    finally:
        await runner.cleanup()


def settings_for(base: ValidationSettings, port: int, **changes: Any) -> ValidationSettings:
    resolve = {"example.com": "127.0.0.1", "*.example.com": "127.0.0.1"}
    return dataclasses.replace(base, http_port=port, resolve=resolve, **changes)


def key_auth_handler(body: str = KEY_AUTH, seen: list[web.Request] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if seen is not None:
            seen.append(request)
        if request.path != PATH:
            return web.Response(status=404, text="not found")
        return web.Response(text=body)

    return handler


def validate(
    settings: ValidationSettings,
    handler: Handler,
    domain: str = "example.com",
    clock: FrozenClock | None = None,
) -> ValidationRecord:
    async def scenario() -> ValidationRecord:
        async with serve(handler) as port:
            validator = Validator(
                settings_for(settings, port), **({"clock": clock} if clock else {})
            )
            return await validator.http_01(domain, TOKEN, KEY_AUTH)

    return asyncio.run(scenario())


def failure(
    settings: ValidationSettings, handler: Handler, domain: str = "example.com"
) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        validate(settings, handler, domain)
    return caught.value


def test_http01_fetches_the_key_authorization(
    validation_settings: ValidationSettings, clock: FrozenClock
) -> None:
    seen: list[web.Request] = []
    record = validate(
        validation_settings,
        key_auth_handler(KEY_AUTH + " \r\n\t\n", seen),
        "www.Example.com",
        clock,
    )
    assert record.method == "http-01"
    assert record.domain == "www.example.com"
    assert len(record.urls) == 1
    assert record.urls[0].startswith("http://www.example.com:")
    assert record.urls[0].endswith(PATH)
    assert record.address_used == "127.0.0.1"
    assert record.addresses_resolved == ("127.0.0.1",)
    assert record.validated_at == clock()
    assert seen[0].method == "GET"
    assert seen[0].host == f"www.example.com:{record.port}"


def test_http01_resolves_through_dns(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.net", "A", "127.0.0.1")
    record = validate(validation_settings, key_auth_handler(), "example.net")
    assert record.addresses_resolved == ("127.0.0.1",)
    assert record.resolver == dns_server.address


def test_http01_idn_host_is_sent_as_a_label(validation_settings: ValidationSettings) -> None:
    seen: list[web.Request] = []

    async def scenario() -> ValidationRecord:
        async with serve(key_auth_handler(seen=seen)) as port:
            settings = dataclasses.replace(
                validation_settings, http_port=port, resolve={"xn--bcher-kva.de": "127.0.0.1"}
            )
            return await Validator(settings).http_01("bücher.de", TOKEN, KEY_AUTH)

    assert asyncio.run(scenario()).domain == "xn--bcher-kva.de"
    assert seen[0].host.startswith("xn--bcher-kva.de:")


def test_http01_wrong_token_is_unauthorized(validation_settings: ValidationSettings) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="no such token")

    error = failure(validation_settings, handler)
    assert error.problem == "unauthorized"
    assert "HTTP 404" in error.detail
    assert PATH in error.detail


def test_http01_wrong_body_is_incorrect_response(validation_settings: ValidationSettings) -> None:
    error = failure(validation_settings, key_auth_handler(TOKEN + ".wrongthumbprint"))
    assert error.problem == "incorrectResponse"
    assert "wrongthumbprint" in error.detail


def test_http01_leading_whitespace_is_not_stripped(validation_settings: ValidationSettings) -> None:
    assert failure(validation_settings, key_auth_handler(" " + KEY_AUTH)).problem == (
        "incorrectResponse"
    )


def test_http01_body_is_bounded(validation_settings: ValidationSettings) -> None:
    error = failure(validation_settings, key_auth_handler(KEY_AUTH + "x" * 100_000))
    assert error.problem == "incorrectResponse"
    assert "more than 8192 bytes" in error.detail


def redirecting(location_for: Callable[[int], str], final: Handler | None = None) -> Handler:
    """Redirect the challenge path to location_for(port); serve the key authorization at /ok."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == PATH:
            port = request.url.port or 80
            raise web.HTTPFound(location_for(port))
        if request.path == "/ok":
            return web.Response(text=KEY_AUTH)
        if final is not None:
            return await final(request)
        return web.Response(status=404)

    return handler


def test_http01_follows_relative_and_absolute_redirects(
    validation_settings: ValidationSettings,
) -> None:
    record = validate(validation_settings, redirecting(lambda port: "/ok"))
    assert len(record.urls) == 2
    assert record.urls[1].endswith("/ok")
    record = validate(
        validation_settings, redirecting(lambda port: f"http://other.example.com:{port}/ok")
    )
    assert record.urls[1] == f"http://other.example.com:{record.port}/ok"


def test_http01_redirect_to_a_forbidden_port(validation_settings: ValidationSettings) -> None:
    error = failure(validation_settings, redirecting(lambda port: "http://example.com:9999/ok"))
    assert error.problem == "connection"
    assert "port 9999 is not allowed" in error.detail


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("ftp://example.com/ok", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://127.0.0.1/ok", "bad host"),
        ("http://[::1]/ok", "bad host"),
        ("http://localhost/ok", "bad host"),
        ("http://com/ok", "bad host"),
    ],
)
def test_http01_redirect_to_forbidden_places(
    validation_settings: ValidationSettings, location: str, why: str
) -> None:
    error = failure(validation_settings, redirecting(lambda port: location))
    assert error.problem == "connection"
    assert why in error.detail


def test_http01_redirect_loop_stops_after_ten(validation_settings: ValidationSettings) -> None:
    hops: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        hops.append(request.path)
        raise web.HTTPFound(f"/hop{len(hops)}")

    error = failure(validation_settings, handler)
    assert error.problem == "connection"
    assert "more than 10 redirects" in error.detail
    assert len(hops) == 11


def test_http01_redirect_without_location(validation_settings: ValidationSettings) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302)

    assert failure(validation_settings, handler).problem == "unauthorized"


def test_http01_follows_a_redirect_to_https(
    validation_settings: ValidationSettings, tmp_path: Any
) -> None:
    cert, key = acme_tls_certificate(["example.com"], None)
    tls = server_tls_context(cert, key, str(tmp_path), [])

    async def scenario() -> ValidationRecord:
        async with serve(key_auth_handler(), ssl_context=tls) as https_port:
            handler = redirecting(lambda port: f"https://example.com:{https_port}{PATH}")
            async with serve(handler) as port:
                settings = settings_for(validation_settings, port, https_port=https_port)
                return await Validator(settings).http_01("example.com", TOKEN, KEY_AUTH)

    record = asyncio.run(scenario())
    assert record.urls[-1].startswith("https://example.com:")


def test_http01_timeout(validation_settings: ValidationSettings) -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(text=KEY_AUTH)

    async def scenario() -> None:
        async with serve(handler) as port:
            settings = settings_for(validation_settings, port, timeout_seconds=0.3)
            try:
                await Validator(settings).http_01("example.com", TOKEN, KEY_AUTH)
            finally:
                release.set()

    with pytest.raises(ValidationError) as caught:
        asyncio.run(scenario())
    assert caught.value.problem == "connection"
    assert "timed out" in caught.value.detail


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_http01_connection_refused(validation_settings: ValidationSettings) -> None:
    settings = settings_for(validation_settings, closed_port())
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(settings).http_01("example.com", TOKEN, KEY_AUTH))
    assert caught.value.problem == "connection"
    assert "127.0.0.1" in caught.value.detail


@pytest.mark.parametrize("address", ["192.0.2.1", "10.0.0.1", "2001:db8::1", "169.254.169.254"])
def test_http01_non_loopback_address_is_refused(
    validation_settings: ValidationSettings, address: str
) -> None:
    settings = dataclasses.replace(
        validation_settings, http_port=closed_port(), resolve={"example.com": address}
    )
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(settings).http_01("example.com", TOKEN, KEY_AUTH))
    assert caught.value.problem == "connection"
    assert "only loopback addresses are allowed" in caught.value.detail
    assert address in caught.value.detail


def test_http01_non_loopback_address_from_dns_is_refused(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "A", "198.51.100.7")
    dns_server.zone.add("example.com", "AAAA", "2001:db8::7")
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(validation_settings).http_01("example.com", TOKEN, KEY_AUTH))
    assert caught.value.problem == "connection"
    assert "198.51.100.7" in caught.value.detail


def test_http01_loopback_is_refused_outside_loopback_only(
    validation_settings: ValidationSettings,
) -> None:
    settings = dataclasses.replace(
        validation_settings,
        loopback_only=False,
        http_port=closed_port(),
        resolve={"example.com": "127.0.0.1"},
    )
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(settings).http_01("example.com", TOKEN, KEY_AUTH))
    assert caught.value.problem == "connection"
    assert "private, loopback and reserved addresses are never contacted" in caught.value.detail


def test_http01_nxdomain(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(validation_settings).http_01("example.com", TOKEN, KEY_AUTH))
    assert caught.value.problem == "dns"
    assert "no A or AAAA records for example.com" in caught.value.detail


def test_http01_servfail(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.fault("example.com", "SERVFAIL")
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(validation_settings).http_01("example.com", TOKEN, KEY_AUTH))
    assert caught.value.problem == "dns"
    assert "SERVFAIL" in caught.value.detail


def test_http01_refuses_wildcards_and_public_suffixes(
    validation_settings: ValidationSettings,
) -> None:
    validator = Validator(validation_settings)
    with pytest.raises(ValidationError) as caught:
        asyncio.run(validator.http_01("*.example.com", TOKEN, KEY_AUTH))
    assert caught.value.problem == "malformed"
    with pytest.raises(ValidationError) as caught:
        asyncio.run(validator.http_01("co.uk", TOKEN, KEY_AUTH))
    assert caught.value.problem == "rejectedIdentifier"


def test_http01_over_ipv6_loopback(validation_settings: ValidationSettings) -> None:
    async def scenario() -> ValidationRecord:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", key_auth_handler())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "::1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            settings = dataclasses.replace(
                validation_settings, http_port=port, resolve={"example.com": "::1"}
            )
            return await Validator(settings).http_01("example.com", TOKEN, KEY_AUTH)
        finally:
            await runner.cleanup()

    record = asyncio.run(scenario())
    assert record.address_used == "::1"


@pytest.mark.parametrize("token", ["../../etc/passwd", "a/b", "", "tok en", "x" * 300])
def test_http01_token_must_be_base64url(
    validation_settings: ValidationSettings, token: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        asyncio.run(Validator(validation_settings).http_01("example.com", token, KEY_AUTH))
    assert caught.value.problem == "malformed"
