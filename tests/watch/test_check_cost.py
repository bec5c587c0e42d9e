"""What made status checks cheaper must not make them blind: the SHA-256 CertID probe is per
issuer and responder (not per certificate) yet still finds a responder that cannot answer
SHA-256 CertIDs, and the fast paths give exactly what the strict code they replace gives."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import urllib.parse
from collections import Counter
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from hypothesis import given, settings
from hypothesis import strategies as st

from ctstatus.clock import FrozenClock
from ctstatus.watch.checker import Checker, CheckSettings, ocsp_get_url
from ctstatus.watch.entries import describe, issuer_key_of
from ctstatus.watch.lean import LeanHttp, split_url
from ctstatus.watch.store import EntryRow, WatchStore

from .conftest import NOW, MisbehavingApp, Served, WatchCa

PROBE_SECONDS = 3600.0


def _queue(store: WatchStore, ca: WatchCa, modes: list[str]) -> dict[str, list[str]]:
    """Queue one certificate per mode, due now; mode -> serials (hex)."""
    key = issuer_key_of(ca.issuing_der)
    store.add_issuer(key, ca.issuing_der, "Misbehaving Issuing CA")
    rows, serials = [], {}
    for n, mode in enumerate(modes):
        leaf = ca.precert(mode, None)
        serial = format(leaf.serial, "x")
        serials.setdefault(mode, []).append(serial)
        info = describe(x509.load_der_x509_certificate(leaf.precert))
        rows.append(EntryRow(n, True, 0, key, serial, n.to_bytes(32, "big"), True, info, None))
    with store.engine.begin() as conn:
        store._queue_many(conn, [(row, 0.0) for row in rows])
    return serials


def _asked(app: MisbehavingApp, mode: str) -> Counter[str]:
    """CertID hash algorithms of the GET requests the responder under ``mode`` received."""
    seen: Counter[str] = Counter()
    for method, raw in app.requests:
        parts = raw.strip("/").split("/", 2)
        if method == "GET" and parts[:2] == ["ocsp", mode]:
            der = base64.b64decode(urllib.parse.unquote(parts[2]))
            seen[ocsp.load_der_ocsp_request(der).hash_algorithm.name] += 1
    return seen


async def _pass(checker: Checker) -> int:
    async with httpx.AsyncClient() as http:
        lean = LeanHttp()
        checker.use(http, lean)
        try:
            return (await checker.run_due()).checked
        finally:
            await lean.aclose()


def test_sha256_probe_is_per_responder_and_still_finds_failures(
    tmp_path: Path, bad_ca: tuple[WatchCa, Served, MisbehavingApp]
) -> None:
    ca, _, app = bad_ca
    modes = ["good"] * 3 + ["nosha256"] * 3 + ["sha1id"] * 3 + ["404"] * 2
    clock = FrozenClock(NOW)
    with WatchStore.open(f"sqlite:///{tmp_path / 'watch.db'}") as store:
        serials = _queue(store, ca, modes)
        settings = CheckSettings(timeout=5, concurrency=4, probe_seconds=PROBE_SECONDS)
        checker = Checker(store, None, settings, clock=clock)
        assert asyncio.run(_pass(checker)) == len(modes)

        # Every certificate asked with SHA-1; SHA-256 once per responder that answered SHA-1.
        for mode in ("good", "nosha256", "sha1id"):
            # + 1 SHA-1 GET: the random-serial probe
            assert _asked(app, mode) == {"sha1": 3 + 1, "sha256": 1}, mode
        assert _asked(app, "404")["sha256"] == 0

        problems = store.problems(open_only=True)
        sha256 = {p.subject: p for p in problems if p.code == "ocsp.sha256_certid_failed"}
        key = issuer_key_of(ca.issuing_der)[:16]
        assert set(sha256) == {
            f"sha256:{key}:{ca.base}/ocsp/nosha256",
            f"sha256:{key}:{ca.base}/ocsp/sha1id",
        }
        # The reverse of django-ca's cache: SHA-256 asked, a SHA-1 CertID answered.
        reverse = sha256[f"sha256:{key}:{ca.base}/ocsp/sha1id"].evidence
        assert reverse["sha256_findings"] == ["ocsp.certid_hash_algorithm"]
        assert sha256[f"sha256:{key}:{ca.base}/ocsp/nosha256"].evidence["sha256_findings"] == [
            "ocsp.unknown"
        ]
        # Nothing of it is charged to the certificates: they answer SHA-1 correctly.
        on_certs = {p.subject.rsplit(":", 1)[-1] for p in problems if p.subject.startswith("cert:")}
        assert on_certs == set(serials["404"])

        # Within probe_seconds a recheck asks no SHA-256 again; after it, the responders
        # (meanwhile fixed) are probed again and the problems resolve.
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE watch_certs SET due_at = 0")
        clock.advance(seconds=PROBE_SECONDS / 2)
        asyncio.run(_pass(checker))
        assert _asked(app, "nosha256")["sha256"] == 1
        ca.sha256_fixed = True
        try:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE watch_certs SET due_at = 0")
            clock.advance(seconds=PROBE_SECONDS)
            asyncio.run(_pass(checker))
        finally:
            ca.sha256_fixed = False
        assert _asked(app, "nosha256")["sha256"] == 2
        still = [p for p in store.problems(open_only=True) if p.subject in sha256]
        assert still == []
        resolved = [p for p in store.problems() if p.subject in sha256]
        assert {p.resolved_at for p in resolved} == {(clock.now).timestamp()}


@given(st.binary(max_size=600))
def test_get_url_encoding_is_quote(request_der: bytes) -> None:
    from ctstatus.ct.b64 import b64encode

    quoted = urllib.parse.quote(b64encode(request_der), safe="")
    assert ocsp_get_url("http://o.example/", request_der) == "http://o.example/" + quoted
    assert ocsp_get_url("http://o.example/p", request_der) == "http://o.example/p/" + quoted


_URL_CHARS = st.sampled_from(list("aZ09.:-[]/?#%@ \t\x00\x7fé+=&_~!\"$'()*,;\\^`{|}"))
_URLS = st.one_of(
    st.text(_URL_CHARS, max_size=40).map(lambda rest: "http://" + rest),
    st.builds(
        lambda host, port, path: f"http://{host}{port}{path}",
        st.sampled_from(["127.0.0.1", "ocsp.Example.com", "[::1]", "h", "a]b", "x@y", ""]),
        st.sampled_from(["", ":80", ":8080", ":", ":99999", ":x"]),
        st.text(_URL_CHARS, max_size=40).map(lambda path: "/" + path) | st.text(_URL_CHARS),
    ),
    st.builds(  # mostly the fast path: printable ASCII after the origin
        lambda host, port, path: f"http://{host}{port}/{path}",
        st.sampled_from(["127.0.0.1", "ocsp.example.com", "OCSP.example.com", "h", "[::1]"]),
        st.sampled_from(["", ":80", ":8080"]),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7F), max_size=60),
    ),
    st.text(max_size=30),
)


def _strict(client: LeanHttp, url: str) -> tuple[tuple[str, int], str, str] | type[Exception]:
    try:
        route, path = client._new_route(url)
    except ValueError as exc:
        return type(exc)
    return route.connect, route.host_line, path


@settings(max_examples=400)
@given(_URLS, _URLS)
def test_lean_route_fast_path_agrees_with_urlsplit(first: str, url: str) -> None:
    """Same connection, Host line and request target as the urlsplit path, or the same error;
    also when the origin was cached by an earlier URL."""
    resolve = {"ocsp.example.com": "127.0.0.2:81", "h:8080": "127.0.0.3:82"}
    warm = LeanHttp(resolve)
    with contextlib.suppress(ValueError):
        warm._route(first)
    for client in (LeanHttp(resolve), warm):
        try:
            route, path = client._route(url)
            fast: tuple[tuple[str, int], str, str] | type[Exception] = (
                route.connect,
                route.host_line,
                path,
            )
        except ValueError as exc:
            fast = type(exc)
        assert fast == _strict(LeanHttp(resolve), url)


def test_split_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="plain http only"):
        split_url("https://ocsp.example.com/")
    assert split_url("http://ocsp.example.com") == ("ocsp.example.com", 80, "/")
