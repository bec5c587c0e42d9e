"""Ask our own responder about one serial, as a relying party would, and decode the answer."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp


def ocsp_request(issuer: x509.Certificate, serial: int) -> bytes:
    import hashlib

    from ctstatus.ledger.hashes import raw_public_key

    name_hash = hashlib.sha1(issuer.subject.public_bytes()).digest()  # noqa: S324 (CertID)
    key_hash = hashlib.sha1(raw_public_key(issuer)).digest()  # noqa: S324 (CertID)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        name_hash,
        key_hash,
        serial,
        hashes.SHA1(),  # noqa: S303 (RFC 5019 CertID)
    )
    return builder.build().public_bytes(Encoding.DER)


def decode_response(der: bytes) -> dict[str, Any]:
    """The fields a person checks, plus the raw bytes in base64."""
    result: dict[str, Any] = {"raw_b64": base64.b64encode(der).decode(), "bytes": len(der)}
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        result["error"] = f"not an OCSP response: {exc}"
        return result
    result["response_status"] = response.response_status.name.lower()
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return result
    result["cert_status"] = response.certificate_status.name.lower()
    result["produced_at"] = response.produced_at_utc.isoformat()
    result["this_update"] = response.this_update_utc.isoformat()
    next_update = response.next_update_utc
    result["next_update"] = None if next_update is None else next_update.isoformat()
    if response.certificate_status is ocsp.OCSPCertStatus.REVOKED:
        revoked = response.revocation_time_utc
        result["revoked_at"] = None if revoked is None else revoked.isoformat()
        reason = response.revocation_reason
        result["reason"] = "unspecified" if reason is None else reason.value  # keyCompromise
    result["serial"] = format(response.serial_number, "x")
    return result


async def probe(
    http: httpx.AsyncClient, status_url: str, ocsp_path: str, issuer: x509.Certificate, serial: int
) -> dict[str, Any]:
    """POST an OCSP request for ``serial`` to our responder; the decoded answer or the error."""
    body = ocsp_request(issuer, serial)
    try:
        response = await http.post(
            status_url + ocsp_path,
            content=body,
            headers={"content-type": "application/ocsp-request"},
            timeout=5,
        )
    except httpx.HTTPError as exc:
        return {"error": f"the responder did not answer: {exc}"}
    decoded = decode_response(response.content) if response.status_code == 200 else {}
    decoded["http_status"] = response.status_code
    decoded["headers"] = {
        k: v
        for k, v in response.headers.items()
        if k.lower() in ("content-type", "cache-control", "expires", "last-modified", "etag")
    }
    return decoded
