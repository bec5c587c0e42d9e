"""Transport failures of OCSP and CRL fetches told apart: a name that does not resolve
(``transport.dns``), a TLS handshake that fails (``transport.tls``) and a refused connection
(``transport.connect``), in both HTTP paths (httpx, and :class:`LeanHttp` for plain http).

Nothing but 127.0.0.1 is ever contacted: the tests run on an event loop whose resolver is
injected (:class:`LoopbackResolverLoop`), so no name reaches real DNS; the TLS peers are
loopback servers with an untrusted self-signed certificate, or that hang up mid-handshake.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ctstatus.ct.merkle import CompactTree
from ctstatus.watch.checker import Checker, CheckSettings
from ctstatus.watch.entries import issuer_key_of
from ctstatus.watch.http import Fetched, fetch
from ctstatus.watch.lean import LeanHttp
from ctstatus.watch.store import EntryRow, WatchStore

from .conftest import WatchCa

T = TypeVar("T")
KNOWN = "known.test"  # the one name the injected resolver knows: 127.0.0.1
UNKNOWN = "nowhere.test"


class LoopbackResolverLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``getaddrinfo`` is the injected resolver: it maps :data:`KNOWN` to
    127.0.0.1, passes loopback literals through, and fails every other name with EAI_NONAME
    (as an unregistered name does). Both httpx (through anyio) and ``asyncio.open_connection``
    resolve through the loop, so neither can reach real DNS or a non-loopback address."""

    resolved: list[str]

    async def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.resolved.append(name)
        if name == KNOWN:
            name = "127.0.0.1"
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        assert address.is_loopback, f"only loopback may be contacted, not {name}"
        return await super().getaddrinfo(name, port, *args, **kwargs)


def run(coroutine: Coroutine[Any, Any, T]) -> tuple[T, list[str]]:
    """Run on a fresh :class:`LoopbackResolverLoop`; also return the names it was asked."""
    asked: list[str] = []

    def factory() -> asyncio.AbstractEventLoop:
        loop = LoopbackResolverLoop()
        loop.resolved = asked
        return loop

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine), asked


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler, context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    listening = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    try:
        yield int(listening.sockets[0].getsockname()[1])
    finally:
        listening.close()


async def ocsp_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n\x30\x00"
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    writer.close()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Take the ClientHello (or nothing) and close: the handshake never completes."""
    await reader.read(16)
    writer.close()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context whose certificate (for 127.0.0.1 and KNOWN) nobody trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, KNOWN)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(KNOWN), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def get(url: str, *, lean: bool = False) -> Fetched:
    client = LeanHttp() if lean else None
    async with httpx.AsyncClient(trust_env=False) as http:
        try:
            return await fetch(http, "GET", url, timeout=5, max_bytes=1000, lean=client)
        finally:
            if client is not None:
                await client.aclose()


def code_of(fetched: Fetched) -> str | None:
    return None if fetched.finding is None else fetched.finding.code.value


# -- DNS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "lean"),
    [
        (f"http://{UNKNOWN}/ocsp", True),  # plain http: LeanHttp
        (f"http://{UNKNOWN}/ocsp", False),  # plain http through httpx (no lean client)
        (f"https://{UNKNOWN}/ocsp", False),  # https: httpx
    ],
    ids=["lean", "httpx-http", "httpx-https"],
)
def test_a_name_that_does_not_resolve_is_transport_dns(url: str, lean: bool) -> None:
    fetched, asked = run(get(url, lean=lean))
    assert code_of(fetched) == "transport.dns"
    assert UNKNOWN in asked  # the injected resolver was asked; nothing else could have been
    assert fetched.finding is not None
    evidence = fetched.finding.evidence
    assert evidence["url"] == url
    assert evidence["status"] is None
    assert evidence["error_code"] == "transport.dns"
    assert "gaierror" in evidence["error"]
    assert "elapsed_ms" in evidence


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx"])
def test_a_name_that_resolves_is_fetched(lean: bool) -> None:
    """The control: the same path with a name the resolver knows gets its answer."""

    async def scenario() -> Fetched:
        async with server(ocsp_ok) as port:
            return await get(f"http://{KNOWN}:{port}/ocsp", lean=lean)

    fetched, asked = run(scenario())
    assert (code_of(fetched), fetched.status, fetched.body) == (None, 200, b"\x30\x00")
    assert KNOWN in asked


def test_resolve_mapping_to_a_name_that_does_not_resolve() -> None:
    """``resolve`` (curl's --resolve) sends the host elsewhere; if that name fails, it is DNS."""

    async def scenario() -> Fetched:
        client = LeanHttp({"ocsp.example.com": f"{UNKNOWN}:80"})
        async with httpx.AsyncClient(trust_env=False) as http:
            try:
                return await fetch(
                    http, "GET", "http://ocsp.example.com/x", timeout=5, max_bytes=100, lean=client
                )
            finally:
                await client.aclose()

    fetched, asked = run(scenario())
    assert code_of(fetched) == "transport.dns"
    assert asked == [UNKNOWN]


# -- TLS and connect ---------------------------------------------------------------------------


def test_untrusted_self_signed_certificate_is_transport_tls(self_signed: ssl.SSLContext) -> None:
    async def scenario() -> Fetched:
        async with server(ocsp_ok, self_signed) as port:
            return await get(f"https://{KNOWN}:{port}/ocsp")

    fetched, _ = run(scenario())
    assert code_of(fetched) == "transport.tls"
    assert fetched.finding is not None
    assert "CERTIFICATE_VERIFY_FAILED" in fetched.finding.evidence["error"]
    assert fetched.finding.evidence["error_code"] == "transport.tls"
    assert "TLS handshake" in fetched.finding.message


def test_a_peer_that_closes_the_handshake_is_transport_tls() -> None:
    async def scenario() -> Fetched:
        async with server(hang_up) as port:
            return await get(f"https://127.0.0.1:{port}/ocsp")

    fetched, _ = run(scenario())
    assert code_of(fetched) == "transport.tls"
    assert fetched.finding is not None
    assert "SSL" in fetched.finding.evidence["error"]


@pytest.mark.parametrize(
    ("scheme", "lean"),
    [("http", True), ("http", False), ("https", False)],
    ids=["lean", "httpx-http", "httpx-https"],
)
def test_a_refused_connection_stays_transport_connect(scheme: str, lean: bool) -> None:
    async def scenario() -> Fetched:
        async with server(hang_up) as port:
            pass  # closed again: nothing listens on the port now
        return await get(f"{scheme}://127.0.0.1:{port}/ocsp", lean=lean)

    fetched, _ = run(scenario())
    assert code_of(fetched) == "transport.connect"
    assert fetched.finding is not None
    assert fetched.finding.evidence["error_code"] == "transport.connect"
    assert "refused" in fetched.finding.evidence["error"].lower()


# -- as the checker records them ---------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WatchStore]:
    with WatchStore.open(f"sqlite:///{tmp_path / 'w.db'}") as opened:
        yield opened


def test_checker_records_tls_for_ocsp_and_dns_for_the_crl(
    store: WatchStore, self_signed: ssl.SSLContext
) -> None:
    """An OCSP responder behind an untrusted certificate and a CRL on a name that does not
    resolve: the certificate's problem is transport.tls, the CRL's crl.unreachable says DNS,
    each with the evidence the other transport problems keep."""
    ca = WatchCa.create("transport")
    key = issuer_key_of(ca.issuing_der)
    store.add_issuer(key, ca.issuing_der, "transport CA")
    log_id = "ef" * 32
    store.cursor(log_id, "test log", "http://127.0.0.1:1/")
    crl_url = f"http://{UNKNOWN}/crl/ok.crl"

    async def scenario() -> None:
        async with server(ocsp_ok, self_signed) as port:
            info = {"names": ["a.test"], "ocsp": [f"https://{KNOWN}:{port}/ocsp"], "crl": [crl_url]}
            row = EntryRow(0, True, 1_000, key, "1234", b"\x01" * 32, True, info, None)
            tree = CompactTree()
            tree.append(b"\x02" * 32)
            store.commit_batch(log_id, [row], tree, now=1.0, queue=[(row, 0.0)])
            lean = LeanHttp()
            async with httpx.AsyncClient(trust_env=False) as http:
                checker = Checker(store, http, CheckSettings(timeout=5, probe_seconds=10**9))
                checker.use(http, lean)
                try:
                    await checker.run_due()
                finally:
                    await lean.aclose()

    run(scenario())
    problems = {p.subject.split(":", 1)[0]: p for p in store.problems(open_only=True)}
    assert problems["cert"].code == "transport.tls"
    assert problems["cert"].evidence["error_code"] == "transport.tls"
    assert problems["cert"].evidence["serial"] == "1234"
    assert problems["crl"].code == "crl.unreachable"
    assert problems["crl"].evidence["error_code"] == "transport.dns"
    assert problems["crl"].evidence["url"] == crl_url
