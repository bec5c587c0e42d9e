"""The real and crafted OCSP responses of ``cryptography-vectors``, classified by the watcher."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from ctstatus.watch.ocsp import CertIdRequest, classify

vectors = pytest.importorskip("cryptography_vectors")
WHEN = datetime(2026, 11, 1, tzinfo=UTC)

# file -> (status, codes); responses from 2018-2019 are long past their nextUpdate.
EXPECTED = {
    "ocsp-army.deps.mil-resp.der": ("revoked", {"ocsp.next_update_passed"}),
    "resp-delegate-unknown-cert.der": ("unknown", {"ocsp.next_update_passed", "ocsp.unknown"}),
    "resp-invalid-signature-oid.der": ("good", {"ocsp.next_update_passed"}),
    "resp-responder-key-hash.der": ("revoked", {"ocsp.next_update_passed"}),
    "resp-revoked-no-next-update.der": ("revoked", {"ocsp.no_next_update"}),
    "resp-revoked-reason.der": ("revoked", {"ocsp.next_update_passed"}),
    "resp-revoked.der": ("revoked", {"ocsp.next_update_passed"}),
    "resp-sct-extension.der": ("good", {"ocsp.next_update_passed"}),
    "resp-sha256.der": ("good", {"ocsp.next_update_passed"}),
    "resp-unknown-extension.der": ("revoked", {"ocsp.next_update_passed"}),
    "resp-unauthorized.der": (None, {"ocsp.unauthorized"}),
    "resp-invalid-version.der": (None, {"ocsp.malformed"}),
    "resp-response-type-unknown-oid.der": (None, {"ocsp.malformed"}),
    "resp-successful-no-response-bytes.der": (None, {"ocsp.malformed"}),
    "resp-unknown-response-status.der": (None, {"ocsp.malformed"}),
}


def _request_for(body: bytes) -> CertIdRequest:
    """The CertID the response is about (as if we had asked exactly that)."""
    try:
        response = ocsp.load_der_ocsp_response(body)
        single = next(iter(response.responses))
        return CertIdRequest(
            single.hash_algorithm.name,
            single.issuer_name_hash,
            single.issuer_key_hash,
            single.serial_number,
        )
    except (ValueError, StopIteration, UnsupportedAlgorithm):
        return CertIdRequest("sha1", b"\0" * 20, b"\0" * 20, 1)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_is_classified(name: str) -> None:
    body = vectors.open_vector_file(f"x509/ocsp/{name}", "rb").read()
    verdict = classify(body, _request_for(body), None, WHEN)
    assert (verdict.status, {f.code.value for f in verdict.findings}) == EXPECTED[name]


def test_answer_for_another_serial_is_a_certid_mismatch() -> None:
    body = vectors.open_vector_file("x509/ocsp/resp-sha256.der", "rb").read()
    asked = _request_for(body)
    other = CertIdRequest(asked.algorithm, asked.name_hash, asked.key_hash, asked.serial + 1)
    assert {f.code.value for f in classify(body, other, None, WHEN).findings} == {
        "ocsp.certid_mismatch"
    }


def test_answer_with_another_certid_hash_algorithm() -> None:
    body = vectors.open_vector_file("x509/ocsp/resp-sha256.der", "rb").read()
    asked = _request_for(body)
    other = "sha256" if asked.algorithm == "sha1" else "sha1"
    request = CertIdRequest(other, asked.name_hash, asked.key_hash, asked.serial)
    assert {f.code.value for f in classify(body, request, None, WHEN).findings} == {
        "ocsp.certid_hash_algorithm"
    }


def test_unknown_hash_algorithm_is_not_trusted() -> None:
    body = vectors.open_vector_file("x509/ocsp/resp-unknown-hash-alg.der", "rb").read()
    verdict = classify(body, CertIdRequest("sha1", b"", b"", 1), None, WHEN)
    assert verdict.status is None
    assert verdict.findings
