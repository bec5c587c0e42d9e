"""RFC 8555 rules against the real server, one broken rule per test, with our own client.

Happy paths here complement certbot and lego (tests/acme/test_certbot.py, test_lego.py): every
failure path gets its problem type checked, and the ledger is checked where it matters.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from tests.acme import acmestack
from tests.acme.acmestack import AcmeStack, unique_domain
from tests.acme.client import Client, b64, csr_for, jws, new_key

from ctstatus.ledger import SerialState

acme_stack = acmestack.acme_stack  # the module's stack (a fixture)
ERROR = "urn:ietf:params:acme:error:"


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def backend(request: pytest.FixtureRequest) -> str:
    """Both ledger backends: all ACME state lives in the ledger database."""
    return str(request.param)


@pytest.fixture(scope="module")
def http01(acme_stack: AcmeStack) -> Iterator[dict[str, str]]:
    """Key authorizations served at http://127.0.0.1:HTTP_PORT/.well-known/acme-challenge/."""
    tokens: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            token = self.path.rsplit("/", 1)[-1]
            body = tokens.get(token, "").encode()
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", acme_stack.http_port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tokens
    server.shutdown()
    server.server_close()


@pytest.fixture
def http(acme_stack: AcmeStack) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(acme_stack.tls_root))
    with httpx.Client(verify=context, timeout=60) as client:
        yield client


@pytest.fixture
def client(acme_stack: AcmeStack, http: httpx.Client) -> Client:
    client = Client(http, acme_stack.directory)
    client.register()
    return client


def problem(response: httpx.Response, kind: str, status: int | None = None) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == ERROR + kind, body
    if status is not None:
        assert response.status_code == status, body
    assert response.headers.get("Replay-Nonce"), "errors carry a fresh nonce"
    return body


def validate_http(client: Client, order: dict[str, Any], tokens: dict[str, str]) -> None:
    for url in order["authorizations"]:
        authz = client.get(url).json()
        (challenge,) = [c for c in authz["challenges"] if c["type"] == "http-01"]
        tokens[challenge["token"]] = client.key_authorization(challenge["token"])
        answer = client.post(challenge["url"], {})
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "valid", answer.json()


def issue(client: Client, names: list[str], tokens: dict[str, str], **extra: Any) -> dict[str, Any]:
    created = client.new_order(names, **extra)
    assert created.status_code == 201, created.text
    order = created.json()
    order_url = created.headers["Location"]
    validate_http(client, order, tokens)
    assert client.get(order_url).json()["status"] == "ready"
    finalized = client.post(order["finalize"], {"csr": b64(csr_for(names))})
    assert finalized.status_code == 200, finalized.text
    order = finalized.json()
    assert order["status"] == "valid", order
    order["url"] = order_url
    return order


# ------------------------------------------------------------------------ directory, nonces


def test_directory_and_nonces(acme_stack: AcmeStack, http: httpx.Client) -> None:
    directory = http.get(acme_stack.directory).json()
    assert set(directory["meta"]["profiles"]) == {"tlsserver", "shortlived"}
    assert directory["renewalInfo"].endswith("/acme/renewal-info")
    head = http.head(directory["newNonce"])
    get = http.get(directory["newNonce"])
    assert head.status_code == 200
    assert get.status_code == 204
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]
    assert head.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_accounts_with_each_algorithm(acme_stack: AcmeStack, http: httpx.Client, alg: str) -> None:
    client = Client(http, acme_stack.directory, new_key(alg))
    created = client.register()
    assert created.status_code == 201
    again = client.post(client.directory["newAccount"], {}, use_jwk=True)
    assert again.status_code == 200
    assert again.headers["Location"] == created.headers["Location"]
    fetched = client.get(client.kid or "")
    assert fetched.json()["status"] == "valid"


def test_only_return_existing(acme_stack: AcmeStack, http: httpx.Client) -> None:
    client = Client(http, acme_stack.directory)
    response = client.post(
        client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True
    )
    problem(response, "accountDoesNotExist", 400)


def test_used_nonce_is_bad_and_the_retry_works(client: Client) -> None:
    nonce = client.nonce()
    first = client.post(client.kid or "", None, nonce=nonce)
    assert first.status_code == 200
    replay = client.post(client.kid or "", None, nonce=nonce)
    problem(replay, "badNonce", 400)
    retry = client.post(client.kid or "", None, nonce=replay.headers["Replay-Nonce"])
    assert retry.status_code == 200


def test_invented_nonce_is_bad(client: Client) -> None:
    problem(client.post(client.kid or "", None, nonce="bm90LW91cnM"), "badNonce", 400)


def test_wrong_url_is_refused(client: Client) -> None:
    response = client.post(client.kid or "", None, signed_url=client.directory["newOrder"])
    problem(response, "unauthorized", 401)


def test_bad_jws_documents(client: Client, http: httpx.Client) -> None:
    headers = {"Content-Type": "application/jose+json"}
    url = client.directory["newOrder"]
    problem(http.post(url, content=b"not json", headers=headers), "malformed", 400)
    problem(http.post(url, json={"payload": ""}, headers=headers), "malformed", 400)
    body = jws(client.key, {"identifiers": []}, url=url, nonce=client.nonce(), kid=client.kid)
    body["signature"] = b64(b"\x00" * 64)
    problem(http.post(url, json=body, headers=headers), "malformed", 400)
    none = jws(client.key, {}, url=url, nonce=client.nonce(), kid=client.kid, extra={"alg": "none"})
    problem(http.post(url, json=none, headers=headers), "badSignatureAlgorithm", 400)
    hs = jws(client.key, {}, url=url, nonce=client.nonce(), kid=client.kid, extra={"alg": "HS256"})
    problem(http.post(url, json=hs, headers=headers), "badSignatureAlgorithm", 400)
    good = jws(client.key, {}, url=url, nonce=client.nonce(), kid=client.kid)
    problem(http.post(url, json=good, headers={"Content-Type": "application/json"}), "malformed")


def test_kid_and_jwk_rules(client: Client) -> None:
    order_by_jwk = client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": unique_domain("jwk")}]},
        use_jwk=True,
    )
    problem(order_by_jwk, "malformed", 400)
    account_by_kid = client.post(client.directory["newAccount"], {})
    problem(account_by_kid, "malformed", 400)
    stranger = client.post(client.kid or "", None, key=new_key())
    problem(stranger, "malformed", 400)  # the signature does not verify with the kid's key
    unknown = client.kid.rsplit("/", 1)[0] + "/nosuchaccount"  # type: ignore[union-attr]
    client.kid = unknown
    problem(client.get(unknown), "accountDoesNotExist", 400)


# ---------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("name", ["*.com", "com", "co.uk", "*.github.io", "localhost", "1.2.3.4"])
def test_public_suffixes_and_non_names_are_refused(client: Client, name: str) -> None:
    problem(client.new_order([name]), "rejectedIdentifier", 400)


def test_wildcard_gets_dns01_only(client: Client) -> None:
    created = client.new_order([f"*.{unique_domain('wild')}"])
    assert created.status_code == 201, created.text
    (authz_url,) = created.json()["authorizations"]
    authz = client.get(authz_url).json()
    assert authz["wildcard"] is True
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]


def test_unknown_profile_is_refused(client: Client) -> None:
    problem(client.new_order([unique_domain("p")], profile="forever"), "invalidProfile", 400)


# --------------------------------------------------------------------- orders and finalize


def test_other_accounts_objects_are_not_yours(
    acme_stack: AcmeStack, client: Client, http: httpx.Client
) -> None:
    created = client.new_order([unique_domain("mine")])
    other = Client(http, acme_stack.directory)
    other.register()
    problem(other.get(created.headers["Location"]), "unauthorized", 403)
    problem(other.get(created.json()["authorizations"][0]), "unauthorized", 403)
    problem(other.get(client.kid or ""), "unauthorized", 403)


def test_finalize_before_validation_is_not_ready(client: Client) -> None:
    created = client.new_order([unique_domain("early")])
    response = client.post(created.json()["finalize"], {"csr": b64(csr_for(["x.example.com"]))})
    problem(response, "orderNotReady", 403)


def test_failed_http01_makes_the_order_invalid(client: Client) -> None:
    created = client.new_order([unique_domain("nobody")])
    authz = client.get(created.json()["authorizations"][0]).json()
    (challenge,) = [c for c in authz["challenges"] if c["type"] == "http-01"]
    answer = client.post(challenge["url"], {}).json()  # nothing serves the token
    assert answer["status"] == "invalid"
    assert answer["error"]["type"].startswith(ERROR)
    assert client.get(created.headers["Location"]).json()["status"] == "invalid"


def test_bad_csrs_then_issue_download_ari_and_revoke(
    acme_stack: AcmeStack, client: Client, http01: dict[str, str]
) -> None:
    name = unique_domain("flow")
    created = client.new_order([name])
    order = created.json()
    validate_http(client, order, http01)
    finalize = order["finalize"]
    problem(client.post(finalize, {"csr": b64(b"garbage")}), "badCSR", 400)
    problem(client.post(finalize, {"csr": "!!"}), "malformed", 400)
    other_names = client.post(finalize, {"csr": b64(csr_for([name, "extra.example.com"]))})
    assert "extra.example.com" in problem(other_names, "badCSR", 400)["detail"]
    assert isinstance(client.key, ec.EllipticCurvePrivateKey)
    account_key = client.post(finalize, {"csr": b64(csr_for([name], client.key))})
    problem(account_key, "badCSR", 400)
    done = client.post(finalize, {"csr": b64(csr_for([name]))})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "valid"
    problem(client.post(finalize, {"csr": b64(csr_for([name]))}), "orderNotReady", 403)

    chain = client.get(done.json()["certificate"])
    assert chain.headers["content-type"] == "application/pem-certificate-chain"
    certs = x509.load_pem_x509_certificates(chain.content)
    assert certs[1] == acme_stack.stack.issuing_certificate
    leaf = certs[0]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=45, seconds=-1)
    with acme_stack.stack.open_ledger() as ledger:
        (record,) = ledger.by_request(f"acme-order:{created.headers['Location'].rsplit('/', 1)[1]}")
        assert record.serial == leaf.serial_number

    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    serial_der = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 8) // 8, "big")
    cert_id = f"{b64(aki.key_identifier)}.{b64(serial_der)}"
    info = client.http.get(f"{client.directory['renewalInfo']}/{cert_id}")
    assert info.status_code == 200, info.text
    assert "Retry-After" in info.headers
    window = info.json()["suggestedWindow"]
    assert leaf.not_valid_before_utc.isoformat()[:10] < window["start"] < window["end"]

    # revocation by the certificate's own key is refused when the key is another one
    der = leaf.public_bytes(Encoding.DER)
    stranger = client.post(
        client.directory["revokeCert"], {"certificate": b64(der)}, key=new_key(), use_jwk=True
    )
    problem(stranger, "unauthorized", 403)
    bad_reason = client.post(client.directory["revokeCert"], {"certificate": b64(der), "reason": 9})
    problem(bad_reason, "badRevocationReason", 400)
    revoked = client.post(client.directory["revokeCert"], {"certificate": b64(der), "reason": 4})
    assert revoked.status_code == 200, revoked.text
    again = client.post(client.directory["revokeCert"], {"certificate": b64(der)})
    problem(again, "alreadyRevoked", 400)
    with acme_stack.stack.open_ledger() as ledger:
        record = ledger.get(acme_stack.stack.issuer_id, leaf.serial_number)
        assert record is not None
        assert record.state is SerialState.REVOKED
    moved = client.http.get(f"{client.directory['renewalInfo']}/{cert_id}").json()
    assert moved["suggestedWindow"]["end"] <= info.json()["suggestedWindow"]["start"]


def test_revocation_by_another_account_needs_authorizations(
    acme_stack: AcmeStack, client: Client, http: httpx.Client, http01: dict[str, str]
) -> None:
    name = unique_domain("revoker")
    order = issue(client, [name], http01)
    der = x509.load_pem_x509_certificates(client.get(order["certificate"]).content)[0]
    certificate = b64(der.public_bytes(Encoding.DER))
    other = Client(http, acme_stack.directory)
    other.register()
    refused = other.post(other.directory["revokeCert"], {"certificate": certificate})
    problem(refused, "unauthorized", 403)
    issue(other, [name], http01)  # now the other account holds an authorization for the name
    allowed = other.post(other.directory["revokeCert"], {"certificate": certificate})
    assert allowed.status_code == 200, allowed.text


def test_replaces_and_already_replaced(client: Client, http01: dict[str, str]) -> None:
    name = unique_domain("renew")
    order = issue(client, [name], http01)
    leaf = x509.load_pem_x509_certificates(client.get(order["certificate"]).content)[0]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    serial_der = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 8) // 8, "big")
    cert_id = f"{b64(aki.key_identifier)}.{b64(serial_der)}"
    renewed = client.new_order([name], replaces=cert_id)
    assert renewed.status_code == 201, renewed.text
    assert renewed.json()["replaces"] == cert_id
    problem(client.new_order([name], replaces=cert_id), "alreadyReplaced", 409)
    problem(client.new_order([name], replaces="AAAA.AAAA"), "malformed", 400)


def test_shortlived_profile_has_no_ocsp_url(client: Client, http01: dict[str, str]) -> None:
    order = issue(client, [unique_domain("short")], http01, profile="shortlived")
    assert order["profile"] == "shortlived"
    leaf = x509.load_pem_x509_certificates(client.get(order["certificate"]).content)[0]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=6, seconds=-1)
    leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)  # pkilint wants it
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_method._name for d in aia] == ["caIssuers"]


def test_caa_forbidding_us_refuses_finalize(
    acme_stack: AcmeStack, client: Client, http01: dict[str, str]
) -> None:
    name = unique_domain("caa")
    acme_stack.dns.zone.add(name, "CAA", '0 issue "other-ca.example"')
    try:
        created = client.new_order([name])
        validate_http(client, created.json(), http01)
        refused = client.post(created.json()["finalize"], {"csr": b64(csr_for([name]))})
        body = problem(refused, "caa", 403)
        assert body["subproblems"][0]["identifier"] == {"type": "dns", "value": name}
        assert client.get(created.headers["Location"]).json()["status"] == "ready"
    finally:
        acme_stack.dns.zone.remove(name, "CAA")


# -------------------------------------------------------------- key change, deactivation


def test_key_change(acme_stack: AcmeStack, client: Client, http: httpx.Client) -> None:
    url = client.directory["keyChange"]
    new = new_key("EdDSA")
    from ctstatus.acme.jws import public_jwk

    inner = jws(
        new,
        {"account": client.kid, "oldKey": public_jwk(client.key.public_key())},
        url=url,
        nonce=None,
    )
    wrong_inner_url = jws(
        new,
        {"account": client.kid, "oldKey": public_jwk(client.key.public_key())},
        url=client.directory["newOrder"],
        nonce=None,
    )
    problem(client.post(url, wrong_inner_url), "malformed", 400)
    changed = client.post(url, inner)
    assert changed.status_code == 200, changed.text
    # the old (ES256) key no longer signs for the account, whose key is now Ed25519
    problem(client.get(client.kid or ""), "badSignatureAlgorithm", 400)
    client.key = new
    assert client.get(client.kid or "").status_code == 200
    # a key that already has an account cannot be taken over
    other = Client(http, acme_stack.directory)
    other.register()
    clash = jws(
        new,
        {"account": other.kid, "oldKey": public_jwk(other.key.public_key())},
        url=url,
        nonce=None,
    )
    response = other.post(url, clash)
    problem(response, "conflict", 409)
    assert response.headers["Location"] == client.kid


def test_account_and_authorization_deactivation(client: Client) -> None:
    created = client.new_order([unique_domain("deact")])
    authz_url = created.json()["authorizations"][0]
    problem(client.post(authz_url, {"status": "valid"}), "malformed", 400)
    deactivated = client.post(authz_url, {"status": "deactivated"})
    assert deactivated.json()["status"] == "deactivated"
    assert client.get(created.headers["Location"]).json()["status"] == "invalid"
    problem(client.post(client.kid or "", {"status": "revoked"}), "malformed", 400)
    gone = client.post(client.kid or "", {"status": "deactivated"})
    assert gone.json()["status"] == "deactivated"
    problem(client.get(client.kid or ""), "unauthorized", 403)
    problem(client.new_order([unique_domain("after")]), "unauthorized", 403)


# ----------------------------------------------------------------------------- rate limits


def test_failed_validations_per_identifier_are_limited(client: Client) -> None:
    name = unique_domain("limited")
    for _ in range(5):
        created = client.new_order([name])
        authz = client.get(created.json()["authorizations"][0]).json()
        (challenge,) = [c for c in authz["challenges"] if c["type"] == "http-01"]
        assert client.post(challenge["url"], {}).json()["status"] == "invalid"
    created = client.new_order([name])
    authz = client.get(created.json()["authorizations"][0]).json()
    (challenge,) = [c for c in authz["challenges"] if c["type"] == "http-01"]
    limited = client.post(challenge["url"], {})
    problem(limited, "rateLimited", 429)
    assert limited.headers["Retry-After"] == "3600"


def test_eab_kid_in_payload_is_checked_when_offered(
    acme_stack: AcmeStack, http: httpx.Client
) -> None:
    """With no EAB keys configured, a binding naming an unknown kid is refused."""
    client = Client(http, acme_stack.directory)
    url = client.directory["newAccount"]
    from ctstatus.acme.jws import public_jwk

    protected = b64(json.dumps({"alg": "HS256", "kid": "nosuch", "url": url}).encode())
    payload = b64(json.dumps(public_jwk(client.key.public_key())).encode())
    binding = {"protected": protected, "payload": payload, "signature": b64(b"x" * 32)}
    response = client.post(url, {"externalAccountBinding": binding}, use_jwk=True)
    problem(response, "unauthorized", 403)


def test_ct_failure_at_finalize_invalidates_the_order_and_keeps_the_serial(
    acme_stack: AcmeStack, client: Client, http01: dict[str, str]
) -> None:
    """Two logs refusing: the precertificate is abandoned (and revoked) through the CA's one
    path, the order is invalid with the reason, the serial stays the order's, and ARI says
    renew now."""
    name = unique_domain("ctdown")
    created = client.new_order([name])
    order_url = created.headers["Location"]
    validate_http(client, created.json(), http01)
    acme_stack.stack.set_faults("bravo", reject_status=503)
    acme_stack.stack.set_faults("charlie", reject_status=503)
    try:
        failed = client.post(created.json()["finalize"], {"csr": b64(csr_for([name]))})
    finally:
        acme_stack.stack.reset_faults()
    body = problem(failed, "serverInternal", 500)
    assert "abandoned and revoked" in body["detail"], body
    order = client.get(order_url).json()
    assert order["status"] == "invalid"
    assert "certificate" not in order
    with acme_stack.stack.open_ledger() as ledger:
        (record,) = ledger.by_request(f"acme-order:{order_url.rsplit('/', 1)[1]}")
        assert record.state is SerialState.REVOKED
        assert record.precert_der is not None
    issuer = acme_stack.stack.issuing_certificate
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    serial_der = record.serial.to_bytes((record.serial.bit_length() + 8) // 8, "big")
    info = client.http.get(f"{client.directory['renewalInfo']}/{b64(ski)}.{b64(serial_der)}")
    window = info.json()["suggestedWindow"]
    asked = datetime.now(UTC)
    end = datetime.fromisoformat(window["end"].replace("Z", "+00:00"))
    assert window["start"] < window["end"]
    assert record.updated_at <= end <= asked, (window, record.updated_at)  # renew now
