"""Delegated responder certificates: BR §7.1.2.8 profile, early rotation, capped validity."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from ctstatus.clock import FrozenClock
from ctstatus.errors import SigningKeyError
from ctstatus.keys import InProcessSigner, KeyAlgorithm
from ctstatus.ledger import SerialState
from ctstatus.secrets import Secret
from ctstatus.status.delegated import DelegatedIdentities, issue_responder, scan
from ctstatus.status.ocsp_response import ResponderIdentity, validity_window
from ctstatus.status.responder_keys import FileResponderKeys
from ctstatus.status.service import ServiceSettings, StatusService

VALIDITY = timedelta(hours=96)
LIFETIME = timedelta(days=14)


def identities(issuer: Any, directory: Path, *, auto: bool = True) -> DelegatedIdentities:
    return DelegatedIdentities(
        lambda _: directory,
        FileResponderKeys(Secret("test passphrase")),
        validity=VALIDITY,
        lifetime=LIFETIME,
        ca_signer_for=(lambda i: issuer.signer if i.id == issuer.id else None) if auto else None,
    )


def test_profile(make_issuer: Callable[..., Any], frozen: FrozenClock, tmp_path: Path) -> None:
    issuer = make_issuer(frozen)
    responder = issue_responder(
        issuer.certificate,
        issuer.signer,
        FileResponderKeys(Secret("pw")),
        tmp_path,
        now=frozen.now,
        lifetime=LIFETIME,
    )
    cert = responder.certificate
    cert.verify_directly_issued_by(issuer.certificate)
    assert cert.issuer == issuer.certificate.subject
    assert frozen.now - cert.not_valid_before_utc == timedelta(hours=1)  # backdated <= 1 day
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == LIFETIME - timedelta(seconds=1)
    exts = {e.oid: e for e in cert.extensions}
    assert list(exts[ExtensionOID.EXTENDED_KEY_USAGE].value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert exts[ExtensionOID.OCSP_NO_CHECK].value.public_bytes() == b"\x05\x00"
    assert not exts[ExtensionOID.OCSP_NO_CHECK].critical
    key_usage = exts[ExtensionOID.KEY_USAGE]
    assert key_usage.critical
    assert key_usage.value.digital_signature
    assert not key_usage.value.key_cert_sign
    assert not key_usage.value.crl_sign
    for forbidden in (
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ExtensionOID.NAME_CONSTRAINTS,
        ExtensionOID.BASIC_CONSTRAINTS,
    ):
        assert forbidden not in exts
    assert 64 <= cert.serial_number.bit_length() <= 159
    assert (tmp_path / f"{responder.stem.name}.key.pem").stat().st_mode & 0o777 == 0o600


def test_issued_only_with_the_issuers_own_key(
    make_issuer: Callable[..., Any], frozen: FrozenClock, tmp_path: Path
) -> None:
    issuer, other = make_issuer(frozen), make_issuer(frozen)
    with pytest.raises(SigningKeyError, match="is not the key of"):
        issue_responder(
            issuer.certificate,
            other.signer,
            FileResponderKeys(Secret("pw")),
            tmp_path,
            now=frozen.now,
            lifetime=LIFETIME,
        )


def test_rotated_before_responses_could_outlive_it(
    make_issuer: Callable[..., Any], frozen: FrozenClock, tmp_path: Path
) -> None:
    issuer = make_issuer(frozen)
    source = identities(issuer, tmp_path)
    first = source.refresh(issuer.issuer, frozen.now)
    assert first is not None
    identity = source.identity(issuer.issuer, frozen.now)
    assert identity is not None
    assert identity.delegated
    frozen.advance(days=8)  # 6 days left > validity + 1 day: keep it
    assert source.refresh(issuer.issuer, frozen.now) == first
    frozen.advance(days=1, seconds=1)  # less than 5 days left: a successor
    second = source.refresh(issuer.issuer, frozen.now)
    assert second is not None
    assert second.stem != first.stem
    assert [r.stem for r in scan(tmp_path, issuer.certificate)] == [second.stem, first.stem]
    identity = source.identity(issuer.issuer, frozen.now)
    assert identity is not None
    this_update, next_update = validity_window(frozen.now, VALIDITY, identity)
    assert next_update - this_update == VALIDITY - timedelta(seconds=1)  # full validity again
    source.close()


def test_without_the_ca_key_it_signs_until_the_cap_then_refuses(
    make_issuer: Callable[..., Any], frozen: FrozenClock, tmp_path: Path
) -> None:
    issuer = make_issuer(frozen)
    identities(issuer, tmp_path).refresh(issuer.issuer, frozen.now)  # issue one
    source = identities(issuer, tmp_path, auto=False)
    source.refresh(issuer.issuer, frozen.now)
    frozen.advance(days=12)  # 2 days left: responses are capped at its notAfter
    identity = source.identity(issuer.issuer, frozen.now)
    assert identity is not None
    _, next_update = validity_window(frozen.now, VALIDITY, identity)
    assert next_update == identity.not_after
    frozen.advance(days=1, hours=17)  # less than 8 hours left: unusable
    assert source.identity(issuer.issuer, frozen.now) is None
    with pytest.raises(SigningKeyError, match="too soon"):
        validity_window(frozen.now, VALIDITY, identity)
    source.close()


def test_service_signs_with_the_responder_and_includes_it(
    make_issuer: Callable[..., Any], frozen: FrozenClock, tmp_path: Path, status_engine: Any
) -> None:
    issuer = make_issuer(frozen)
    service = StatusService(
        status_engine, frozen, identities(issuer, tmp_path), ServiceSettings(validity=VALIDITY)
    )
    service.prepare()
    record = issuer.serial(SerialState.ISSUED)
    from cryptography.hazmat.primitives import hashes

    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(issuer.certificates[record.serial], issuer.certificate, hashes.SHA256())
        .build()
    )
    body, _ = asyncio.run(service.responder.respond(request.public_bytes(_der())))
    response = ocsp.load_der_ocsp_response(body)
    (responder,) = response.certificates
    assert responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert (
        response.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest
    )
    asyncio.run(service.responder.drain())
    service.identities.close()


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def test_ca_mode_refuses_a_key_that_is_not_the_issuers(make_issuer: Callable[..., Any]) -> None:
    from ctstatus.status.identities import CaIdentities

    issuer = make_issuer()
    wrong = InProcessSigner(KeyAlgorithm.ECDSA_P256.generate())
    with pytest.raises(SigningKeyError):
        CaIdentities({issuer.name: wrong}).identity(issuer.issuer, frozen_now())


def frozen_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_response_identity_key_hash_is_rfc6960(make_issuer: Callable[..., Any]) -> None:
    issuer = make_issuer()
    identity = ResponderIdentity(issuer.signer, issuer.certificate, delegated=False)
    assert identity.key_hash == issuer.issuer.key_hash_sha1
    assert identity.label == "ca"
