"""Hostile input: whatever arrives, a well-formed OCSP answer or a 4xx, never a crash, hang or 500.

Two layers: hypothesis drives the ASGI app in-process (fast, thousands of inputs: random bytes,
truncated and over-long DER lengths, deep nesting, huge and odd GET paths, content types), and
raw sockets drive the real server (connections that send nothing, clients that trickle bytes,
oversized bodies announced or chunked, garbage HTTP) while a well-behaved client keeps asking.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctstatus.clock import system_clock
from ctstatus.ledger import Ledger, SerialState
from ctstatus.status.app import AppSettings, StatusApp
from ctstatus.status.identities import CaIdentities
from ctstatus.status.issuers import cert_id_hashes
from ctstatus.status.service import StatusService

LIMIT = 2048


@pytest.fixture(scope="module")
def target(
    status_engine: Any, issuer_factory: Callable[..., Any]
) -> Iterator[tuple[Any, bytes, StatusApp]]:
    """An app with one issuer; a valid request for a good serial of it."""
    issuer = issuer_factory(Ledger(status_engine))
    record = issuer.serial(SerialState.ISSUED)
    service = StatusService(status_engine, system_clock, CaIdentities({issuer.name: issuer.signer}))
    service.prepare()
    hashes_ = cert_id_hashes(issuer.issuer, "sha1")
    good = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            hashes_.name_hash,
            hashes_.key_hash,
            record.serial,
            hashes.SHA1(),  # noqa: S303 - the CertID hash openssl sends by default
        )
        .build()
        .public_bytes(Encoding.DER)
    )
    app = StatusApp(service, AppSettings(ocsp_prefixes=(b"/ocsp",), max_request_bytes=LIMIT))
    yield issuer, good, app
    asyncio.run(service.responder.drain())


async def call(
    app: StatusApp, method: str, path: bytes, body: bytes, headers: list[Any]
) -> tuple[int, dict[bytes, bytes], bytes]:
    chunks = [body[i : i + 512] for i in range(0, len(body), 512)] or [b""]
    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path.decode("latin-1"), "raw_path": path,
             "headers": headers, "query_string": b""}  # fmt: skip
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    start, body_msg = sent
    return start["status"], dict(start["headers"]), body_msg.get("body", b"")


def check_answer(status: int, headers: dict[bytes, bytes], body: bytes) -> None:
    """A 4xx, or a 200 carrying a parseable OCSP response."""
    assert status != 500
    assert 200 <= status < 500
    if status == 200:
        assert headers[b"content-type"] == b"application/ocsp-response"
        response = ocsp.load_der_ocsp_response(body)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            assert headers[b"cache-control"] == b"no-cache"
            assert len(body) == 5


POST_HEADERS = [(b"content-type", b"application/ocsp-request")]


def der_mutations(good: bytes) -> st.SearchStrategy[bytes]:
    def truncate(n: int) -> bytes:
        return good[: n % len(good)]

    def lengthen(pair: tuple[int, int]) -> bytes:
        at, value = pair
        data = bytearray(good)
        data[at % len(data)] = value
        return bytes(data)

    def nest(depth: int) -> bytes:
        data = good
        for _ in range(depth):
            size = len(data)
            length = bytes([size]) if size < 128 else b"\x82" + size.to_bytes(2, "big")
            data = b"\x30" + length + data
        return data[:LIMIT]

    return st.one_of(
        st.binary(max_size=LIMIT),
        st.integers(0, 10_000).map(truncate),
        st.tuples(st.integers(0, 200), st.integers(0, 255)).map(lengthen),
        st.integers(1, 500).map(nest),
        st.binary(max_size=64).map(lambda tail: good + tail),
        st.sampled_from([b"\x30\x80" * 100, b"\x30\x84\xff\xff\xff\xff", b"\x30", b""]),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_post_body_gets_an_ocsp_answer(target: Any, data: st.DataObject) -> None:
    _, good, app = target
    body = data.draw(der_mutations(good))
    status, headers, answer = asyncio.run(call(app, "POST", b"/ocsp", body, POST_HEADERS))
    assert status == 200
    check_answer(status, headers, answer)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_get_path_gets_an_ocsp_answer_or_4xx(target: Any, data: st.DataObject) -> None:
    _, good, app = target
    encoded = base64.b64encode(data.draw(der_mutations(good))).decode()
    path = data.draw(
        st.one_of(
            st.just("/ocsp/" + encoded),
            st.just("/" + encoded.replace("+", "%2B").replace("/", "%2F")),
            st.text(max_size=300).map(lambda t: "/" + t),
            st.just("/ocsp/" + "A" * 20_000),
            st.binary(max_size=200).map(lambda b: "/" + b.decode("latin-1")),
        )
    )
    status, headers, answer = asyncio.run(
        call(app, "GET", path.encode("utf-8", "surrogateescape"), b"", [])
    )
    check_answer(status, headers, answer)


@pytest.mark.parametrize(
    ("method", "headers", "body", "expected_status", "expected_ocsp"),
    [
        ("POST", [(b"content-type", b"text/plain")], "good", 200, "malformed_request"),
        ("POST", [], "good", 200, "malformed_request"),
        ("POST", [(b"content-type", b"application/ocsp-request; charset=x")], "good", 200, None),
        ("POST", [*POST_HEADERS, (b"content-length", b"999999")], "", 413, None),
        ("POST", [*POST_HEADERS, (b"content-length", b"-1")], "", 400, None),
        ("POST", POST_HEADERS, "x" * (LIMIT + 1), 413, None),
        ("PUT", POST_HEADERS, "good", 405, None),
        ("DELETE", [], "", 405, None),
    ],
)
def test_http_level_refusals(
    target: Any,
    method: str,
    headers: list[Any],
    body: str,
    expected_status: int,
    expected_ocsp: str | None,
) -> None:
    _, good, app = target
    raw = good if body == "good" else body.encode()
    status, got_headers, answer = asyncio.run(call(app, method, b"/ocsp", raw, headers))
    assert status == expected_status
    if expected_ocsp is not None:
        assert ocsp.load_der_ocsp_response(answer).response_status.name.lower() == expected_ocsp
    elif status == 200:
        assert ocsp.load_der_ocsp_response(answer).certificate_status is ocsp.OCSPCertStatus.GOOD
    check_answer(status, got_headers, answer)


def test_get_spellings_real_clients_send(target: Any) -> None:
    _, good, app = target
    standard = base64.b64encode(good).decode()
    spellings = {
        standard.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D"),
        standard,  # unencoded '/', '+' and '='
        base64.urlsafe_b64encode(good).decode(),
        standard.rstrip("="),
        standard.replace("+", "%2b").replace("/", "%2f"),
    }
    bodies = set()
    for spelling in spellings:
        for path in (f"/ocsp/{spelling}", f"/ocsp//{spelling}", f"/{spelling}", f"//{spelling}"):
            status, _headers, answer = asyncio.run(call(app, "GET", path.encode(), b"", []))
            assert status == 200, path
            response = ocsp.load_der_ocsp_response(answer)
            assert response.certificate_status is ocsp.OCSPCertStatus.GOOD, path
            bodies.add(answer)
    assert len(bodies) == 1  # the same pre-signed bytes, whatever the spelling


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/ocsp"),
        ("GET", "/ocsp/"),
        ("GET", "/favicon.ico"),
        ("GET", "/robots.txt"),
        ("GET", "/wp-login.php"),
        ("GET", "/foo"),
        ("GET", "/ocsp/status"),
        ("GET", "/crl/does-not-exist.crl"),
        ("HEAD", "/index.html"),
        ("POST", "/submit"),
        ("POST", "/ocsp/x/y"),
    ],
)
def test_unknown_paths_are_404(target: Any, method: str, path: str) -> None:
    """Only OCSP requests, CRLs, CA certificates and /healthz are served; a scanner's GET
    /favicon.ico is not an OCSP request and gets a plain 404, not an OCSP error."""
    _, good, app = target
    headers = POST_HEADERS if method == "POST" else []
    status, got, body = asyncio.run(call(app, method, path.encode(), good, headers))
    assert status == 404, (path, status)
    assert got[b"content-type"].startswith(b"text/plain")
    if method != "HEAD":
        assert b"ocsp" in body.lower()  # says what is served here


@pytest.mark.parametrize(
    "path",
    [
        "/MEIwQDA",  # base64 of a truncated DER SEQUENCE: an OCSP request gone wrong
        "/ocsp/MEIwQDA-_",
        "/MAAA",
        "/" + "M" * 7,  # not decodable base64 (bad length)
    ],
)
def test_broken_base64_requests_get_malformed_request(target: Any, path: str) -> None:
    """A path that looks like a base64 OCSP request (DER starts with 0x30, so its base64 with
    'M') and fails to decode or parse is answered as OCSP: malformedRequest."""
    _, _good, app = target
    status, headers, body = asyncio.run(call(app, "GET", path.encode(), b"", []))
    assert status == 200, path
    assert headers[b"content-type"] == b"application/ocsp-response"
    assert ocsp.load_der_ocsp_response(body).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


@pytest.mark.parametrize("path", ["/", "/ocsp", "/ocsp/"])
def test_post_to_the_responder_paths_is_served(target: Any, path: str) -> None:
    _, good, app = target
    status, _headers, body = asyncio.run(call(app, "POST", path.encode(), good, POST_HEADERS))
    assert status == 200
    assert ocsp.load_der_ocsp_response(body).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_healthz_is_served(target: Any) -> None:
    _, _good, app = target
    status, _headers, body = asyncio.run(call(app, "GET", b"/healthz", b"", []))
    assert (status, body) == (200, b"ok\n")


def test_if_none_match_gets_304(target: Any) -> None:
    _, good, app = target
    path = b"/ocsp/" + base64.urlsafe_b64encode(good)
    _, headers, _ = asyncio.run(call(app, "GET", path, b"", []))
    status, again, body = asyncio.run(
        call(app, "GET", path, b"", [(b"if-none-match", headers[b"etag"])])
    )
    assert status == 304
    assert body == b""
    assert again[b"etag"] == headers[b"etag"]


# ------------------------------------------------------------------------------- real sockets


@pytest.fixture(scope="module")
def live(target: Any, serve: Callable[[Any], Any]) -> Iterator[tuple[Any, bytes]]:
    _, good, app = target
    running = serve(app)
    yield running, good
    running.stop()


def _ok(url: str, good: bytes) -> float:
    started = time.monotonic()
    response = httpx.post(
        f"{url}/ocsp", content=good, headers={"content-type": "application/ocsp-request"}, timeout=5
    )
    assert response.status_code == 200
    assert ocsp.load_der_ocsp_response(response.content).certificate_status is (
        ocsp.OCSPCertStatus.GOOD
    )
    return time.monotonic() - started


def test_connections_that_send_nothing_do_not_wedge_it(live: tuple[Any, bytes]) -> None:
    """What makes `openssl ocsp -port` spin forever."""
    server, good = live
    for _ in range(200):
        with socket.create_connection(("127.0.0.1", server.port)):
            pass
    half_open = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    try:
        assert _ok(server.url, good) < 1.0
    finally:
        for sock in half_open:
            sock.close()
    assert _ok(server.url, good) < 1.0


def test_a_client_that_trickles_bytes_does_not_hold_up_others(live: tuple[Any, bytes]) -> None:
    server, good = live
    head = (
        f"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        f"Content-Length: {len(good)}\r\n\r\n"
    ).encode()
    message = head + good
    result: dict[str, bytes] = {}

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            for start in range(0, len(message), 8):  # 8 bytes every 20 ms (within the timeout)
                sock.sendall(message[start : start + 8])
                time.sleep(0.02)
            result["reply"] = sock.recv(65536)

    thread = threading.Thread(target=trickle)
    thread.start()
    latencies = []
    while thread.is_alive():
        latencies.append(_ok(server.url, good))
    thread.join()
    assert result["reply"].startswith(b"HTTP/1.1 200")
    assert len(latencies) >= 3  # others were answered while it trickled
    assert max(latencies) < 1.0


def test_oversized_body_is_refused_before_it_is_sent(live: tuple[Any, bytes]) -> None:
    server, good = live
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
            b"Content-Length: 1073741824\r\n\r\n"
        )  # announce 1 GiB, send none of it
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"A" * 1024
        reply = b""
        for _ in range(64):  # stops being read after LIMIT bytes
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                break
            sock.settimeout(0.05)
            try:
                reply += sock.recv(4096)
            except TimeoutError:
                continue
            if reply:
                break
        assert reply.startswith(b"HTTP/1.1 413")
    assert _ok(server.url, good) < 1.0


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /" + b"A" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 200_000 + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
    ],
    ids=["garbage", "huge-path", "huge-header", "tls"],
)
def test_garbage_http_gets_4xx_an_ocsp_error_or_a_close(
    live: tuple[Any, bytes], raw: bytes
) -> None:
    server, good = live
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        try:
            sock.sendall(raw)
            reply = sock.recv(4096)
        except OSError:
            reply = b""
    if reply:
        status = int(reply.split(b" ", 2)[1])
        if status == 200:  # an HTTP request after all: then an OCSP error
            assert reply.endswith(bytes.fromhex("30030a0101")), reply[:300]
        else:
            assert 400 <= status < 500, reply[:200]
    assert _ok(server.url, good) < 1.0


def _request(good: bytes, *, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    return (
        b"POST /ocsp HTTP/" + version + b"\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        b"Content-Length: %d\r\n" % len(good) + extra + b"\r\n" + good
    )


def _read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """Read ``count`` HTTP responses (each with a Content-Length) off ``sock``."""
    data = b""
    out: list[bytes] = []
    while len(out) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end]
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(data) >= head_end + 4 + length:
                out.append(data[: head_end + 4 + length])
                data = data[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection early"
        data += chunk
    return out


def test_pipelined_requests_are_answered_in_order(live: tuple[Any, bytes]) -> None:
    server, good = live
    unknown = bytearray(good)
    unknown[-1] ^= 0x5A  # another serial: not in memory, read from the ledger (a slow answer)
    requests = [good, bytes(unknown), good] * 100
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"".join(_request(r) for r in requests))  # far more than max_pipelined
        replies = _read_responses(sock, len(requests))
    for request, reply in zip(requests, replies, strict=True):
        body = reply.split(b"\r\n\r\n", 1)[1]
        status = ocsp.load_der_ocsp_response(body).response_status
        expected = "SUCCESSFUL" if request == good else "UNAUTHORIZED"
        assert status.name == expected


def test_expect_100_continue_and_http_1_0(live: tuple[Any, bytes]) -> None:
    server, good = live
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        head, body = _request(good, extra=b"Expect: 100-continue\r\n").split(b"\r\n\r\n", 1)
        sock.sendall(head + b"\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        (reply,) = _read_responses(sock, 1)
        assert reply.startswith(b"HTTP/1.1 200 OK")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_request(good, version=b"1.0"))
        (reply,) = _read_responses(sock, 1)
        assert b"connection: close" in reply.lower()
        assert sock.recv(4096) == b""  # and closed


def test_a_stalled_request_is_cut_off(live: tuple[Any, bytes]) -> None:
    """Half a request, then nothing: the connection is closed after the request timeout."""
    server, good = live
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_request(good)[:40])
        started = time.monotonic()
        assert _ok(server.url, good) < 0.5  # others are served meanwhile
        assert sock.recv(4096) == b""  # closed by the server
        assert time.monotonic() - started < 4


def test_the_uvicorn_front_end_serves_the_same_answers(
    target: Any, serve_uvicorn: Callable[[Any], Any], status_engine: Any
) -> None:
    issuer, good, _ = target
    service = StatusService(
        status_engine, system_clock, CaIdentities({issuer.name: issuer.signer})
    )  # a service of its own: uvicorn's lifespan starts it on uvicorn's loop
    app = StatusApp(service, AppSettings(ocsp_prefixes=(b"/ocsp",), max_request_bytes=LIMIT))
    running = serve_uvicorn(app)
    try:
        assert _ok(running.url, good) < 1.0
        encoded = base64.b64encode(good).decode()
        response = httpx.get(f"{running.url}/ocsp/{encoded}", timeout=5)
        assert ocsp.load_der_ocsp_response(response.content).certificate_status is (
            ocsp.OCSPCertStatus.GOOD
        )
        assert response.headers["cache-control"].startswith("max-age=")
        assert httpx.post(f"{running.url}/ocsp", content=b"x" * (LIMIT + 1)).status_code == 413
    finally:
        running.stop()
