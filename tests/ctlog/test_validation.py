"""What the log refuses, and how: a 4xx with a JSON error for anything a client sends, never 5xx."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctstatus.ct.structures import POISON_OID

from .conftest import START, CtCa, RunningServer, _ca_certificate, _name, b64

LOG = "bravo"
CT_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.4")


def expect_error(response: httpx.Response, status: int = 400, text: str = "") -> str:
    assert response.status_code == status, (response.status_code, response.text)
    message = response.json()["error"]
    assert isinstance(message, str)
    assert text.lower() in message.lower(), message
    return message


@pytest.fixture(scope="module")
def other_ca() -> CtCa:
    return CtCa.create("another")


def test_chain_to_a_root_the_log_does_not_accept(server: RunningServer, other_ca: CtCa) -> None:
    issued = other_ca.precert()
    response = server.submit(LOG, [issued.precert, other_ca.issuing_der], precert=True)
    expect_error(response, text="root")
    response = server.submit(
        LOG, [other_ca.plain(), other_ca.issuing_der, other_ca.root_der], precert=False
    )
    expect_error(response, text="root")


def test_broken_chain(server: RunningServer, test_ca: CtCa, other_ca: CtCa) -> None:
    issued = test_ca.precert()
    foreign = other_ca.precert()
    response = server.submit(LOG, [foreign.precert, test_ca.issuing_der], precert=True)
    expect_error(response, text="chain[0] is not issued by chain[1]")
    # An intermediate that is not signed by the root after it.
    response = server.submit(
        LOG, [issued.precert, test_ca.issuing_der, other_ca.root_der], precert=True
    )
    expect_error(response, text="chain[1] is not issued by chain[2]")


def test_poison_rules(server: RunningServer, test_ca: CtCa) -> None:
    issued = test_ca.precert()
    chain = [issued.precert, test_ca.issuing_der]
    expect_error(server.submit(LOG, chain, precert=False), text="poison")
    plain = test_ca.plain()
    expect_error(server.submit(LOG, [plain, test_ca.issuing_der], precert=True), text="no poison")
    soft = test_ca.precert(poison=(x509.PrecertPoison(), False))
    expect_error(
        server.submit(LOG, [soft.precert, test_ca.issuing_der], precert=True), text="critical"
    )
    odd = test_ca.precert(poison=(x509.UnrecognizedExtension(POISON_OID, b"\x04\x00"), True))
    expect_error(server.submit(LOG, [odd.precert, test_ca.issuing_der], precert=True), text="05 00")


def test_precert_not_signed_by_the_chains_first_certificate(
    server: RunningServer, test_ca: CtCa
) -> None:
    # Claims the issuing CA as issuer but is signed by the root's key.
    issued = test_ca.precert()
    forged = test_ca._sign(
        issued.serial,
        issued.domain,
        issued.leaf_key,
        issued.not_after,
        (x509.PrecertPoison(), True),
        signer=test_ca.root_key,
    )
    response = server.submit(LOG, [forged, test_ca.issuing_der], precert=True)
    expect_error(response, text="not issued by")


def test_precertificate_signing_certificates_are_refused(
    server: RunningServer, test_ca: CtCa
) -> None:
    psc_key = ec.generate_private_key(ec.SECP256R1())
    psc = _ca_certificate(
        _name("ctstatus test PSC"),
        psc_key,
        test_ca.issuing.subject,
        test_ca.key,
        extra_eku=[CT_EKU],
    )
    issued = test_ca.precert()
    by_psc = test_ca._sign(
        issued.serial,
        issued.domain,
        issued.leaf_key,
        issued.not_after,
        (x509.PrecertPoison(), True),
        signer=psc_key,
        issuer=psc.subject,
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    chain = [by_psc, psc.public_bytes(Encoding.DER), test_ca.issuing_der]
    expect_error(server.submit(LOG, chain, precert=True), text="Precertificate Signing")


def test_leaf_issued_by_a_non_ca_is_refused(server: RunningServer, test_ca: CtCa) -> None:
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    not_ca = (
        x509.CertificateBuilder()
        .subject_name(_name("not a CA"))
        .issuer_name(test_ca.issuing.subject)
        .public_key(leaf_key.public_key())
        .serial_number(7)
        .not_valid_before(START)
        .not_valid_after(START.replace(year=2027))
        .sign(test_ca.key, hashes.SHA256())
    )
    child = (
        x509.CertificateBuilder()
        .subject_name(_name("child"))
        .issuer_name(not_ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(8)
        .not_valid_before(START)
        .not_valid_after(START.replace(year=2027))
        .sign(leaf_key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    chain = [child.public_bytes(Encoding.DER), not_ca.public_bytes(Encoding.DER)]
    expect_error(server.submit(LOG, [*chain, test_ca.issuing_der], precert=False), text="not a CA")


def post(
    server: RunningServer, body: bytes, content_type: str = "application/json"
) -> httpx.Response:
    return server.client.post(
        server.url(LOG, "ct/v1/add-chain"), content=body, headers={"content-type": content_type}
    )


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"", "JSON"),
        (b"not json", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"chain": "abc"}', "array"),
        (b'{"chain": []}', "empty"),
        (b'{"chain": [1]}', "base64"),
        (b'{"chain": ["not base64!"]}', "base64"),
        (b'{"chain": ["AAAA"]}', "DER"),
        (b"[" * 100_000, "JSON"),
    ],
)
def test_garbage_bodies(server: RunningServer, body: bytes, text: str) -> None:
    expect_error(post(server, body), text=text)


def test_unsupported_certificate_version(server: RunningServer, test_ca: CtCa) -> None:
    # cryptography raises InvalidVersion (not a ValueError) for a v2 certificate.
    plain = test_ca.plain()
    v2 = plain.replace(bytes.fromhex("a003020102"), bytes.fromhex("a003020101"), 1)
    assert v2 != plain
    response = server.submit(LOG, [v2, test_ca.issuing_der], precert=False)
    expect_error(response, text="not a DER X.509 certificate")
    response = server.submit(LOG, [test_ca.plain(), v2], precert=False)
    expect_error(response, text="chain[1]")


def test_too_long_chain(server: RunningServer, test_ca: CtCa) -> None:
    chain = [test_ca.plain()] + [test_ca.issuing_der] * 8
    expect_error(server.submit(LOG, chain, precert=False), text="longer")


def test_oversized_body_is_refused_before_it_is_read(server: RunningServer) -> None:
    limit = 256 * 1024
    body = b'{"chain": ["' + b"A" * limit + b'"]}'
    expect_error(post(server, body), 413, "larger")

    def chunks() -> object:
        yield b'{"chain": ["'
        for _ in range(limit // 4096 + 2):
            yield b"A" * 4096
        yield b'"]}'

    response = server.client.post(
        server.url(LOG, "ct/v1/add-chain"),
        content=chunks(),  # type: ignore[arg-type]
        headers={"content-type": "application/json"},
    )
    expect_error(response, 413, "larger")


def test_content_type_and_method(server: RunningServer) -> None:
    expect_error(post(server, b'{"chain": []}', "text/plain"), 415, "application/json")
    response = server.client.get(server.url(LOG, "ct/v1/add-chain"))
    expect_error(response, 405, "POST")
    assert response.headers["allow"] == "POST"
    expect_error(server.client.post(server.url(LOG, "ct/v1/get-sth")), 405, "GET")
    expect_error(server.client.get(server.url(LOG, "ct/v1/nothing")), 404)
    expect_error(server.client.get(f"{server.base_url}/nolog/ct/v1/get-sth"), 404)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("ct/v1/get-entries?start=a&end=2", 400),
        ("ct/v1/get-entries?start=-1&end=2", 400),
        ("ct/v1/get-entries?start=+1&end=2", 400),
        ("ct/v1/get-entries?start=3&end=2", 400),
        ("ct/v1/get-entries?start=1", 400),
        ("ct/v1/get-entries?start=1&start=2&end=3", 400),
        ("ct/v1/get-entries?start=99999999&end=999999999", 400),
        ("ct/v1/get-entries?start=99999999999999999999&end=1", 400),
        ("ct/v1/get-sth-consistency?first=2&second=1", 400),
        ("ct/v1/get-sth-consistency?first=1&second=99999999", 400),
        ("ct/v1/get-proof-by-hash?hash=AAAA&tree_size=1", 400),
        ("ct/v1/get-proof-by-hash?tree_size=1", 400),
        (f"ct/v1/get-proof-by-hash?hash={'A' * 43}%3D&tree_size=0", 404),
        ("ct/v1/get-entry-and-proof?leaf_index=5&tree_size=2", 400),
        ("ct/v1/get-entry-and-proof?leaf_index=0&tree_size=99999999", 400),
        ("tile/0/x001", 404),
        ("tile/9/000", 404),
        ("tile/0/999", 404),
        ("tile/data/000.p/0", 404),
        ("issuer/ABCDEF", 404),
        (f"issuer/{'0' * 64}", 404),
    ],
)
def test_bad_query_parameters(server: RunningServer, path: str, status: int) -> None:
    expect_error(server.client.get(server.url(LOG, path)), status)


# --- fuzzing: nothing a client sends gives a 5xx ---

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert isinstance(response.json()["error"], str)


@FUZZ
@given(body=st.binary(max_size=2000))
def test_fuzz_raw_bodies(server: RunningServer, body: bytes) -> None:
    no_server_error(post(server, body))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=12,
)


@FUZZ
@given(chain=st.one_of(json_values, st.lists(json_values, max_size=10)))
def test_fuzz_json_chains(server: RunningServer, chain: object) -> None:
    no_server_error(post(server, json.dumps({"chain": chain}).encode()))


@pytest.fixture(scope="module")
def samples(test_ca: CtCa) -> tuple[bytes, bytes]:
    return test_ca.precert().precert, test_ca.plain()


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_certificates(
    server: RunningServer, test_ca: CtCa, samples: tuple[bytes, bytes], data: st.DataObject
) -> None:
    leaf = bytearray(samples[data.draw(st.integers(0, 1))])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(leaf) - 1))
        leaf[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(leaf)))
    chain = [bytes(leaf[:cut]), test_ca.issuing_der]
    endpoint = "add-pre-chain" if data.draw(st.booleans()) else "add-chain"
    response = server.client.post(
        server.url(LOG, f"ct/v1/{endpoint}"), json={"chain": [b64(c) for c in chain]}
    )
    no_server_error(response)


@FUZZ
@given(
    endpoint=st.sampled_from(
        [
            "get-entries",
            "get-sth-consistency",
            "get-proof-by-hash",
            "get-entry-and-proof",
            "get-sth",
            "get-roots",
        ]
    ),
    params=st.dictionaries(
        st.sampled_from(["start", "end", "first", "second", "hash", "tree_size", "leaf_index"]),
        st.one_of(
            st.integers(-5, 2**70).map(str),
            st.text(max_size=50),
            st.binary(max_size=32).map(lambda b: base64.b64encode(b).decode()),
        ),
    ),
)
def test_fuzz_query_parameters(
    server: RunningServer, endpoint: str, params: dict[str, str]
) -> None:
    no_server_error(server.client.get(server.url(LOG, f"ct/v1/{endpoint}"), params=params))


segments = st.sampled_from(
    ["tile", "data", "0", "1", "5", "6", "x001", "x000", "000", "255", "001.p", "256", "1.p",
     "issuer", "ct", "v1", "checkpoint", "get-sth", "", "..", "%00", "a" * 64]
)  # fmt: skip
printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#"))


@FUZZ
@given(parts=st.lists(st.one_of(segments, printable), min_size=1, max_size=6))
def test_fuzz_paths(server: RunningServer, parts: list[str]) -> None:
    no_server_error(server.client.get(server.url(LOG, "/".join(parts))))
