"""The issuance API of a running ``ctstatus up``: auth, precise 4xx on bad input, issuance,
revocation, lifecycle, and a schemathesis run against its own OpenAPI schema."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.stack.conftest import Up


@pytest.fixture(scope="module")
def api(demo_stack: Up) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_stack.web, timeout=60) as client:
        yield client


def csr_for(*names: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def auth(up: Up) -> dict[str, str]:
    return {"authorization": f"Bearer {up.token}"}


def test_issue_and_revoke_need_the_token(api: httpx.Client, demo_stack: Up) -> None:
    body = {"csr": csr_for("api-auth.example.com")}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic x"}):
        response = api.post("/api/v1/certificates", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"].startswith("this needs the API token")
        assert response.headers["www-authenticate"].startswith("Bearer")
    response = api.post("/api/v1/certificates/01/revoke", json={})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"csr": "garbage"}, 422, "not a valid certificate signing request"),
        ({"csr": csr_for("bad_name.example.com")}, 422, "is not a valid DNS name"),
        ({"csr": csr_for("printer.local")}, 422, "Baseline Requirements"),
        ({"csr": csr_for("*.com")}, 422, "'com' is a public suffix"),
        ({"csr": 5}, 400, "csr must be"),
        ({"csr": "x", "extra": 1}, 400, "unknown field(s): extra"),
        ({"csr": "x", "lifetime_days": 4000}, 400, "lifetime_days must be"),
        ([1], 400, "must be a JSON object"),
    ],
)
def test_bad_input_is_a_precise_4xx(
    api: httpx.Client, demo_stack: Up, body: object, status: int, message: str
) -> None:
    response = api.post("/api/v1/certificates", json=body, headers=auth(demo_stack))
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_size_limit_and_content_type(api: httpx.Client, demo_stack: Up) -> None:
    big = api.post(
        "/api/v1/certificates",
        content=b"{" + b" " * (200 * 1024) + b"}",
        headers=auth(demo_stack) | {"content-type": "application/json"},
    )
    assert big.status_code == 413
    text = api.post(
        "/api/v1/certificates",
        content=b"csr",
        headers=auth(demo_stack) | {"content-type": "text/plain"},
    )
    assert text.status_code == 415


def test_issue_fetch_revoke_lifecycle(api: httpx.Client, demo_stack: Up) -> None:
    response = api.post(
        "/api/v1/certificates",
        json={"csr": csr_for("api-issue.example.com")},
        headers=auth(demo_stack),
    )
    if response.status_code == 503:  # the demo's faulty moment; retry once
        response = api.post(
            "/api/v1/certificates",
            json={"csr": csr_for("api-issue.example.com")},
            headers=auth(demo_stack),
        )
    assert response.status_code == 201, response.text
    issued = response.json()
    serial = issued["serial"]
    assert len(issued["scts"]) >= 2
    assert x509.load_pem_x509_certificates(issued["chain_pem"].encode())[0].serial_number == int(
        serial, 16
    )
    record = api.get(f"/api/v1/certificates/{serial}").json()
    assert record["state"] == "issued"
    assert record["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    revoked = api.post(
        f"/api/v1/certificates/{serial}/revoke",
        json={"reason": "keyCompromise"},
        headers=auth(demo_stack),
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revocation_reason"] == "keyCompromise"
    again = api.post(f"/api/v1/certificates/{serial}/revoke", json={}, headers=auth(demo_stack))
    assert again.status_code == 409
    lifecycle = api.get(f"/api/v1/serials/{serial}").json()
    actions = [event["action"] for event in lifecycle["journal"]]
    assert actions == ["reserve", "precert_signed", "issued", "revoke"]
    assert lifecycle["journal"][-1]["actor"] == "api:revoke"
    assert api.get("/api/v1/serials/zz").status_code == 400
    assert api.get("/api/v1/serials/1234").status_code == 404


def test_overview_says_why_a_precertificate_was_abandoned(
    api: httpx.Client, demo_stack: Up
) -> None:
    """The dashboard's "Why" column shows the cause the ledger journaled, and the demo's log
    line for that abandonment names the serial once."""
    deadline = time.monotonic() + 90
    while True:
        rows = re.findall(r'<tr class="abandoned-row">(.*?)</tr>', api.get("/").text, re.S)
        if rows:
            break
        assert time.monotonic() < deadline, demo_stack.log()
        time.sleep(0.5)  # polls until the demo abandons a precertificate (every 4th issuance)
    cells = [
        re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td.*?</td>", rows[0], re.S)
    ]
    assert "CT policy not met" in cells[-1], cells
    lines = [line for line in demo_stack.log().splitlines() if "refusing)" in line]
    assert lines, demo_stack.log()
    for line in lines:
        assert line.startswith("demo: "), line
        assert len(re.findall(r"serial [0-9a-f]+", line)) == 1, line


def test_serial_page_lists_the_watchers_checks(api: httpx.Client, demo_stack: Up) -> None:
    """An abandoned (so revoked) precertificate: once the watcher has read it from the log and
    asked our responder, its page lists that check (watch_checks) and the timeline shows it."""
    deadline = time.monotonic() + 120
    while True:
        serials = re.findall(
            r'<tr class="abandoned-row">\s*<td[^>]*><a href="/serial/([0-9a-f]+)"',
            api.get("/").text,
        )
        pages = [api.get(f"/serial/{serial}").text for serial in serials]
        checked = [page for page in pages if 'class="watch-check"' in page]
        if checked:
            break
        assert time.monotonic() < deadline, demo_stack.log()
        time.sleep(0.5)  # polls until the watcher has checked an abandoned precertificate
    page = checked[0]
    rows = re.findall(r'<tr class="watch-check">(.*?)</tr>', page, re.S)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td.*?</td>", rows[-1], re.S)]
    assert cells[1] == "revoked", cells  # the OCSP answer the watcher saw
    assert cells[2] in {"revoked", "not_listed", "—"}, cells
    assert "watcher saw OCSP revoked" in page


@pytest.mark.parametrize("authorized", [False, True])
def test_schemathesis_finds_no_5xx_and_no_schema_violation(
    demo_stack: Up, authorized: bool
) -> None:
    """The schemathesis CLI, run as CI runs it, with and without the token."""
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "schemathesis"
    args = [
        str(cli),
        "run",
        demo_stack.web + "/api/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance,status_code_conformance,"
        "content_type_conformance",
        "--max-examples",
        "25",
        "--phases",
        "examples,coverage,fuzzing",
    ]
    if authorized:
        args += ["-H", f"Authorization: Bearer {demo_stack.token}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _pem(der: bytes, label: str = "CERTIFICATE REQUEST") -> str:
    import base64

    return f"-----BEGIN {label}-----\n{base64.encodebytes(der).decode()}-----END {label}-----\n"


def _csr_with_key(key: object, name: str = "api-csr.example.com") -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
    )
    csr = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _bad_signature() -> str:
    der = bytearray(
        x509.load_pem_x509_csr(csr_for("api-sig.example.com").encode()).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-5] ^= 0xFF  # inside the signature
    return _pem(bytes(der))


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (
            lambda: "garbage",
            ["not a valid certificate signing request", "BEGIN CERTIFICATE REQUEST"],
        ),
        (lambda: _pem(b"\x30\x03\x02\x01\x01"), ["damaged", "DER"]),
        (
            lambda: csr_for("api-t.example.com")[:150] + "\n-----END CERTIFICATE REQUEST-----\n",
            ["damaged", "base64"],
        ),
        (lambda: _pem(b"\x30\x00", "CERTIFICATE"), ["a certificate, not a certificate signing"]),
        (_bad_signature, ["signature does not verify", "altered or damaged"]),
        (
            lambda: _csr_with_key(
                __import__(
                    "cryptography.hazmat.primitives.asymmetric.rsa", fromlist=["rsa"]
                ).generate_private_key(65537, 1024)
            ),
            ["RSA 1024", "too weak"],
        ),
        (lambda: _csr_with_key(ec.generate_private_key(ec.SECP521R1())), ["P-521", "P-256"]),
    ],
    ids=["not-pem", "bad-der", "truncated", "a-certificate", "bad-signature", "rsa-1024", "p521"],
)
def test_csr_errors_say_what_is_wrong(
    api: httpx.Client, demo_stack: Up, make: object, fragments: list[str]
) -> None:
    """A malformed CSR, a bad signature and a weak key each get a 422 a person understands:
    no parser internals (``ParseError {...}``), no library FAQ links."""
    response = api.post("/api/v1/certificates", json={"csr": make()}, headers=auth(demo_stack))  # type: ignore[operator]
    assert response.status_code == 422, response.text
    body = response.json()
    text = body["error"] + " " + (body["hint"] or "")
    for fragment in fragments:
        assert fragment in text, text
    assert "ParseError" not in body["error"]
    assert "cryptography.io" not in text


def test_responses_and_requests_name_the_ca(api: httpx.Client, demo_stack: Up) -> None:
    response = api.post(
        "/api/v1/certificates",
        json={"csr": csr_for("api-ca.example.com"), "ca": "issuing-ca"},
        headers=auth(demo_stack),
    )
    if response.status_code == 503:  # the demo's faulty moment; retry once
        response = api.post(
            "/api/v1/certificates",
            json={"csr": csr_for("api-ca.example.com"), "ca": "issuing-ca"},
            headers=auth(demo_stack),
        )
    assert response.status_code == 201, response.text
    issued = response.json()
    assert issued["ca"] == "issuing-ca"
    serial = issued["serial"]
    assert api.get(f"/api/v1/certificates/{serial}").json()["ca"] == "issuing-ca"
    assert api.get(f"/api/v1/serials/{serial}").json()["record"]["ca"] == "issuing-ca"
    wrong = api.post(
        "/api/v1/certificates",
        json={"csr": csr_for("api-ca.example.com"), "ca": "root-ca"},
        headers=auth(demo_stack),
    )
    assert wrong.status_code == 404, wrong.text
    assert "issuing-ca" in wrong.json()["error"]
    revoke = api.post(
        f"/api/v1/certificates/{serial}/revoke",
        json={"ca": "other-ca", "reason": "superseded"},
        headers=auth(demo_stack),
    )
    assert revoke.status_code == 404
    assert "issuing-ca" in revoke.json()["error"]


def test_revocation_reasons_have_one_spelling(api: httpx.Client, demo_stack: Up) -> None:
    """RFC 5280's camelCase names (as ``ctstatus revoke --reason`` takes them) in and out."""
    serial = _issue(api, demo_stack, "api-reason.example.com")["serial"]
    refused = api.post(
        f"/api/v1/certificates/{serial}/revoke",
        json={"reason": "key_compromise"},
        headers=auth(demo_stack),
    )
    assert refused.status_code == 400
    assert "keyCompromise" in refused.json()["error"]
    revoked = api.post(
        f"/api/v1/certificates/{serial}/revoke",
        json={"reason": "keyCompromise"},
        headers=auth(demo_stack),
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revocation_reason"] == "keyCompromise"
    assert api.get(f"/api/v1/certificates/{serial}").json()["revocation_reason"] == "keyCompromise"
    journal = api.get(f"/api/v1/serials/{serial}").json()["journal"]
    assert journal[-1]["detail"]["reason"] == "keyCompromise"
    page = api.get(f"/serial/{serial}").text
    assert "keyCompromise" in page
    assert "key_compromise" not in page


def _issue(api: httpx.Client, up: Up, name: str, **extra: object) -> dict[str, object]:
    body = {"csr": csr_for(name), **extra}
    for _ in range(3):  # the demo's faulty moments
        response = api.post("/api/v1/certificates", json=body, headers=auth(up))
        if response.status_code != 503:
            break
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def _serials_for_request(up: Up, request_id: str) -> list[str]:
    import sqlite3

    ledger = up.state / "ca" / "ledger.sqlite3"
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT serial FROM serials WHERE request_id = ?", (request_id,))
        return [row[0] for row in rows]


def test_a_reused_request_id_returns_its_certificate(api: httpx.Client, demo_stack: Up) -> None:
    """DESIGN.md invariant 4: a retry of the same order gets the same serial, never a second."""
    import secrets

    request_id = "order-" + secrets.token_hex(4)
    csr = csr_for("api-retry.example.com")
    first = api.post(
        "/api/v1/certificates",
        json={"csr": csr, "request_id": request_id},
        headers=auth(demo_stack),
    )
    if first.status_code == 503:  # the demo's faulty moment: that serial is abandoned; again
        first = api.post(
            "/api/v1/certificates",
            json={"csr": csr, "request_id": request_id},
            headers=auth(demo_stack),
        )
    assert first.status_code == 201, first.text
    again = api.post(
        "/api/v1/certificates",
        json={"csr": csr, "request_id": request_id},
        headers=auth(demo_stack),
    )
    assert again.status_code == 200, again.text
    assert again.json()["serial"] == first.json()["serial"]
    assert again.json()["chain_pem"] == first.json()["chain_pem"]
    assert again.json()["ca"] == "issuing-ca"
    other = api.post(
        "/api/v1/certificates",
        json={"csr": csr_for("api-retry.example.com"), "request_id": request_id},
        headers=auth(demo_stack),
    )
    assert other.status_code == 409, other.text
    assert first.json()["serial"] in other.json()["error"]
    held = [
        int(s, 16)
        for s in _serials_for_request(demo_stack, request_id)
        if api.get(f"/api/v1/certificates/{s}").json()["state"] == "issued"
    ]
    assert held == [int(str(first.json()["serial"]), 16)]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/nope", 404),
        ("GET", "/api/v1/nope", 404),
        ("GET", "/api/v1/certificates", 405),
        ("DELETE", "/api/v1/certificates/01", 405),
        ("PUT", "/api/v1/certificates/01/revoke", 405),
    ],
)
def test_unknown_api_routes_and_methods_are_json(
    api: httpx.Client, demo_stack: Up, method: str, path: str, status: int
) -> None:
    response = api.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]
    if status == 405:
        assert response.headers["allow"]
