"""External Account Binding and the new-order limit, on a server configured for them.

The server is the real app over a real (SQLite) ledger, driven in process through Starlette's
test client; nothing here issues, so the CA's ``issue`` is one that fails the test if called.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.acme.client import Client, b64, new_key
from tests.acme.test_protocol import problem

from ctstatus.acme.jws import public_jwk
from ctstatus.acme.server import AcmeServer, AcmeSettings
from ctstatus.acme.store import AcmeStore
from ctstatus.acme.validation import ValidationSettings, Validator
from ctstatus.ca import bootstrap
from ctstatus.ca.issuance import IssuanceRequest, IssuanceResult
from ctstatus.config import new_instance_config
from ctstatus.instance import Instance

BASE = "https://acme.test"
MAC_KEY = b"0123456789abcdef0123456789abcdef"


async def _must_not_issue(request: IssuanceRequest) -> IssuanceResult:
    raise AssertionError("these tests never finalize")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    directory: Path = tmp_path_factory.mktemp("eab") / "ca"
    bootstrap.init_instance(directory, new_instance_config())
    instance = Instance.open(directory)
    ledger = instance.open_ledger()
    issuer = ledger.issuer_by_name(instance.config.ca.issuing.name)
    assert issuer is not None
    acme = AcmeServer(
        AcmeSettings(
            base_url=BASE,
            eab_required=True,
            eab_keys={"team-a": MAC_KEY},
            orders_per_account=2,
            orders_window=timedelta(hours=1),
        ),
        AcmeStore(ledger.engine),
        ledger,
        issuer.id,
        instance.certificate(instance.config.ca.issuing),
        _must_not_issue,
        Validator(ValidationSettings(loopback_only=True)),
    )
    with TestClient(acme.app(), base_url=BASE) as client:
        yield client
    ledger.close()


def binding(client: Client, kid: str, mac_key: bytes, key_of: object = None) -> dict[str, str]:
    url = client.directory["newAccount"]
    protected = b64(json.dumps({"alg": "HS256", "kid": kid, "url": url}).encode())
    bound = key_of or client.key
    payload = b64(json.dumps(public_jwk(bound.public_key())).encode())  # type: ignore[attr-defined]
    mac = hmac.new(mac_key, f"{protected}.{payload}".encode(), hashlib.sha256).digest()
    return {"protected": protected, "payload": payload, "signature": b64(mac)}


def new_account(client: Client, payload: dict[str, object]) -> object:
    return client.post(client.directory["newAccount"], payload, use_jwk=True)


def test_directory_says_eab_is_required(server: TestClient) -> None:
    assert server.get("/directory").json()["meta"]["externalAccountRequired"] is True


def test_accounts_need_a_valid_binding(server: TestClient) -> None:
    client = Client(server, f"{BASE}/directory")
    url = client.directory["newAccount"]
    problem(client.post(url, {}, use_jwk=True), "externalAccountRequired", 403)
    wrong_mac = binding(client, "team-a", b"another key of thirty-two bytes!")
    problem(
        client.post(url, {"externalAccountBinding": wrong_mac}, use_jwk=True), "unauthorized", 403
    )
    unknown_kid = binding(client, "team-b", MAC_KEY)
    problem(
        client.post(url, {"externalAccountBinding": unknown_kid}, use_jwk=True), "unauthorized", 403
    )
    other_key = binding(client, "team-a", MAC_KEY, key_of=new_key())
    problem(
        client.post(url, {"externalAccountBinding": other_key}, use_jwk=True), "unauthorized", 403
    )
    good = client.post(
        url, {"externalAccountBinding": binding(client, "team-a", MAC_KEY)}, use_jwk=True
    )
    assert good.status_code == 201, good.text
    assert good.json()["externalAccountBinding"] == {"kid": "team-a"}


def test_new_orders_per_account_are_limited(server: TestClient) -> None:
    client = Client(server, f"{BASE}/directory")
    created = client.post(
        client.directory["newAccount"],
        {"externalAccountBinding": binding(client, "team-a", MAC_KEY)},
        use_jwk=True,
    )
    client.kid = created.headers["Location"]
    for index in range(2):
        assert client.new_order([f"limit{index}.example.com"]).status_code == 201
    limited = client.new_order(["limit2.example.com"])
    problem(limited, "rateLimited", 429)
    assert limited.headers["Retry-After"] == "3600"
