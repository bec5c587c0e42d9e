"""Every fault mode, as an HTTP client sees it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from ctstatus.ct.checkpoint import verify_checkpoint
from ctstatus.ct.errors import FailureReason, SctVerificationError, VerificationError
from ctstatus.ct.sct import verify_sct, verify_tree_head
from ctstatus.ct.structures import SignedCertificateTimestamp, SignedTreeHead

from .conftest import CtCa, RunningServer

LOG = "charlie"


@pytest.fixture
def faulty(server: RunningServer) -> Iterator[RunningServer]:
    """The shared server; ``charlie``'s faults are cleared afterwards."""
    yield server
    server.set_faults(LOG)


def submit_precert(server: RunningServer, ca: CtCa, log: str = LOG) -> httpx.Response:
    issued = ca.precert()
    return server.submit(log, [issued.precert, ca.issuing_der], precert=True)


def test_reject_with_a_status(faulty: RunningServer, test_ca: CtCa) -> None:
    for status in (400, 403, 500, 503):
        faulty.set_faults(LOG, reject_status=status)
        response = submit_precert(faulty, test_ca)
        assert response.status_code == status
        assert "injected" in response.json()["error"]
        # Reads are not affected with the default scope (add).
        assert faulty.client.get(faulty.url(LOG, "ct/v1/get-sth")).status_code == 200
    faulty.set_faults(LOG, reject_status=502, scope="all")
    assert faulty.client.get(faulty.url(LOG, "ct/v1/get-sth")).status_code == 502
    # Other logs of the process are untouched.
    assert submit_precert(faulty, test_ca, "alpha").status_code == 200


def test_accept_then_fail_is_deterministic(faulty: RunningServer, test_ca: CtCa) -> None:
    faulty.set_faults(LOG, reject_status=503, after=2)
    statuses = [submit_precert(faulty, test_ca).status_code for _ in range(4)]
    assert statuses == [200, 200, 503, 503]


def test_rate_limited_with_retry_after(faulty: RunningServer, test_ca: CtCa) -> None:
    faulty.set_faults(LOG, rate_limit_retry_after=7)
    response = submit_precert(faulty, test_ca)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


def test_delay(faulty: RunningServer, test_ca: CtCa) -> None:
    faulty.set_faults(LOG, delay_ms=300)
    started = time.monotonic()
    response = submit_precert(faulty, test_ca)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_hang_until_the_client_gives_up(faulty: RunningServer, test_ca: CtCa) -> None:
    faulty.set_faults(LOG, hang=True)
    issued = test_ca.precert()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            faulty.url(LOG, "ct/v1/add-pre-chain"),
            json={"chain": []},
            timeout=httpx.Timeout(5, read=0.5),
        )
    faulty.set_faults(LOG)
    assert faulty.submit(LOG, [issued.precert, test_ca.issuing_der], precert=True).is_success


def test_corrupted_sct_signature(faulty: RunningServer, test_ca: CtCa) -> None:
    log = faulty.prepared.logs[LOG]
    faulty.set_faults(LOG, corrupt_sct_signature=True)
    issued = test_ca.precert()
    chain = [issued.precert, test_ca.issuing_der]
    response = faulty.submit(LOG, chain, precert=True)
    assert response.status_code == 200
    bad = SignedCertificateTimestamp.from_json(response.json())
    now = time.time_ns() // 1_000_000
    with pytest.raises(SctVerificationError) as caught:
        verify_sct(
            bad, log.public_key, certificate=issued.precert, issuer=test_ca.issuing, now_ms=now
        )
    assert caught.value.reason is FailureReason.BAD_SIGNATURE
    # The log itself stored a good SCT: without the fault, the resubmission gets it.
    faulty.set_faults(LOG)
    good = SignedCertificateTimestamp.from_json(faulty.submit(LOG, chain, precert=True).json())
    verify_sct(good, log.public_key, certificate=issued.precert, issuer=test_ca.issuing, now_ms=now)
    assert (good.timestamp_ms, good.extensions) == (bad.timestamp_ms, bad.extensions)


def test_lying_tree_heads(faulty: RunningServer, test_ca: CtCa) -> None:
    log = faulty.prepared.logs[LOG]
    assert submit_precert(faulty, test_ca).status_code == 200
    real = SignedTreeHead.from_json(faulty.publish(LOG))

    faulty.set_faults(LOG, sth="bad_signature")
    sth = SignedTreeHead.from_json(faulty.client.get(faulty.url(LOG, "ct/v1/get-sth")).json())
    with pytest.raises(VerificationError):
        verify_tree_head(sth, log.public_key)
    checkpoint = faulty.client.get(faulty.url(LOG, "checkpoint")).content
    with pytest.raises(VerificationError):
        verify_checkpoint(checkpoint, log.settings.origin, log.public_key)

    faulty.set_faults(LOG, sth="wrong_root")
    sth = SignedTreeHead.from_json(faulty.client.get(faulty.url(LOG, "ct/v1/get-sth")).json())
    verify_tree_head(sth, log.public_key)  # validly signed ...
    assert sth.tree_size == real.tree_size
    assert sth.root_hash != real.root_hash  # ... over a root that is not the tree's


def test_down_503_for_everything(faulty: RunningServer, test_ca: CtCa) -> None:
    faulty.set_faults(LOG, down="503")
    for path in ("ct/v1/get-sth", "checkpoint", "ct/v1/get-roots"):
        assert faulty.client.get(faulty.url(LOG, path)).status_code == 503
    assert submit_precert(faulty, test_ca).status_code == 503
    assert faulty.client.get(faulty.url("alpha", "ct/v1/get-sth")).status_code == 200


def test_down_refusing_connections(faulty: RunningServer, test_ca: CtCa) -> None:
    faulty.set_faults(LOG, down="refuse")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        httpx.get(faulty.url(LOG, "ct/v1/get-sth"), timeout=5)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        submit_precert(faulty, test_ca)
    assert faulty.client.get(faulty.url("alpha", "ct/v1/get-sth")).status_code == 200


def test_admin_refuses_invalid_faults(faulty: RunningServer) -> None:
    url = f"{faulty.base_url}/admin/{LOG}/faults"
    for body in ({"reject_status": 200}, {"nonsense": True}, {"down": "maybe"}, [1]):
        response = faulty.client.post(url, json=body)
        assert response.status_code == 400, response.text
        assert "invalid faults" in response.json()["error"]
    assert faulty.client.get(url).json()["reject_status"] is None
    assert faulty.client.get(f"{faulty.base_url}/admin/nolog/faults").status_code == 404
