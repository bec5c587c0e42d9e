"""Real OCSP requests from cryptography-vectors get the right kind of answer.

None of them names an issuer of ours, so every well-formed one is ``unauthorized`` (we cannot
answer authoritatively; never ``unknown``, never ``good``); broken ones are ``malformedRequest``.
The same requests re-aimed at an issuer of ours (their CertID hashes swapped for its own) are
answered ``good`` for a good serial: the parser takes what real clients send, extensions and all.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import cryptography_vectors
import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography.x509 import ocsp

from ctstatus.ledger import SerialState
from ctstatus.status.issuers import cert_id_hashes

DIRECTORY = os.path.join(os.path.dirname(cryptography_vectors.__file__), "x509", "ocsp")
REQUESTS = sorted(
    f for f in os.listdir(DIRECTORY) if f.endswith("-req.der") or f.startswith("req-")
)
MALFORMED = {"req-duplicate-ext.der", "req-invalid-version.der", "req-multi-sha1.der"}


def load(name: str) -> bytes:
    with open(os.path.join(DIRECTORY, name), "rb") as f:
        return f.read()


def test_the_vectors_are_there() -> None:
    assert len(REQUESTS) >= 10
    assert set(REQUESTS) >= MALFORMED


@pytest.mark.parametrize("name", REQUESTS)
def test_real_requests_get_the_right_kind_of_answer(
    name: str, make_issuer: Callable[..., Any], make_service: Any
) -> None:
    service = make_service([make_issuer()])
    body, headers = asyncio.run(service.responder.respond(load(name)))
    status = ocsp.load_der_ocsp_response(body).response_status
    if name in MALFORMED:
        assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    else:
        assert status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert dict(headers)[b"cache-control"] == b"no-cache"


@pytest.mark.parametrize("name", sorted(set(REQUESTS) - MALFORMED - {"req-invalid-hash-alg.der"}))
def test_real_requests_aimed_at_our_issuer_are_answered(
    name: str, make_issuer: Callable[..., Any], make_service: Any
) -> None:
    issuer = make_issuer()
    service = make_service([issuer])
    record = issuer.serial(SerialState.ABANDONED)
    request = asn1_ocsp.OCSPRequest.load(load(name))
    cert_id = request["tbs_request"]["request_list"][0]["req_cert"]
    hash_name = cert_id["hash_algorithm"]["algorithm"].native
    hashes = cert_id_hashes(issuer.issuer, hash_name)
    cert_id["issuer_name_hash"] = hashes.name_hash
    cert_id["issuer_key_hash"] = hashes.key_hash
    cert_id["serial_number"] = record.serial
    body, _ = asyncio.run(service.responder.respond(request.dump(force=True)))
    response = ocsp.load_der_ocsp_response(body)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == record.serial
    assert response.hash_algorithm.name == hash_name
