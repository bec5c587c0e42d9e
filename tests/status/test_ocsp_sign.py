"""Signing OCSP responses through the Signer abstraction, including keys that never leave a token.

A token-like signer (``private_key()`` is None, as for PKCS#11) takes the throwaway-key-then-swap
path; its responses must verify with openssl exactly like those of an in-process key, for every
key algorithm the Web PKI allows.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ctstatus.ca import profiles
from ctstatus.errors import SigningKeyError
from ctstatus.keys import InProcessSigner, KeyAlgorithm
from ctstatus.keys.assemble import sign_certificate
from ctstatus.ledger import RevocationReason
from ctstatus.ledger.hashes import IssuerHashes
from ctstatus.status.answer import GOOD, Answer, Verdict
from ctstatus.status.ocsp_response import (
    CertId,
    ResponderIdentity,
    sign_response,
    validity_window,
)

NOW = datetime.now(UTC).replace(microsecond=0)


class TokenLike(InProcessSigner):
    """Signs like a PKCS#11 key: no in-process key is handed to builders."""

    def private_key(self) -> None:  # type: ignore[override]
        return None

    @property
    def description(self) -> str:
        return "pkcs11:token=test;object=fake"


class Broken(TokenLike):
    def sign(self, data: bytes) -> bytes:
        return super().sign(data + b"!")


def make_ca(signer: InProcessSigner) -> x509.Certificate:
    return sign_certificate(
        profiles.root_ca(
            profiles.ca_subject("DE", "ctstatus Test", "Token CA"),
            signer.public_key(),
            profiles.new_serial(),
            NOW - timedelta(days=1),
            3000,
        ),
        signer,
    )


ALGORITHMS = [KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ECDSA_P384, KeyAlgorithm.RSA_2048]


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=[a.value for a in ALGORITHMS])
@pytest.mark.parametrize("kind", [InProcessSigner, TokenLike], ids=["in-process", "token"])
def test_responses_verify_with_openssl(
    algorithm: KeyAlgorithm, kind: type[InProcessSigner], tmp_path: Path
) -> None:
    key = algorithm.generate()
    signer = kind(key)
    ca = make_ca(InProcessSigner(key))
    hashes_ = IssuerHashes.from_certificate(ca)
    identity = ResponderIdentity(signer, ca, delegated=False)
    this_update, next_update = validity_window(NOW, timedelta(hours=96), identity)
    revoked = Answer(Verdict.REVOKED, NOW - timedelta(hours=2), RevocationReason.SUPERSEDED)
    for serial, answer in ((1234567, GOOD), (7654321, revoked)):
        der = sign_response(
            CertId("sha1", hashes_.name_hash_sha1, hashes_.key_hash_sha1, serial),
            answer,
            identity,
            this_update=this_update,
            next_update=next_update,
        )
        response = ocsp.load_der_ocsp_response(der)
        assert response.responder_key_hash == hashes_.key_hash_sha1
        assert response.signature_hash_algorithm.name == algorithm.hash_algorithm.name
        (tmp_path / "resp.der").write_bytes(der)
        (tmp_path / "ca.pem").write_bytes(ca.public_bytes(Encoding.PEM))
        out = subprocess.run(
            ["openssl", "ocsp", "-respin", tmp_path / "resp.der", "-issuer", tmp_path / "ca.pem",
             "-serial", str(serial), "-CAfile", tmp_path / "ca.pem"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert "Response verify OK" in out.stdout + out.stderr, out.stderr
        assert f"{serial}: {answer.verdict.value}" in out.stdout


def test_a_faulty_token_never_yields_a_response(tmp_path: Path) -> None:
    key = KeyAlgorithm.ECDSA_P256.generate()
    ca = make_ca(InProcessSigner(key))
    identity = ResponderIdentity(Broken(key), ca, delegated=False)
    this_update, next_update = validity_window(NOW, timedelta(hours=96), identity)
    with pytest.raises(SigningKeyError, match="does not verify"):
        sign_response(
            CertId("sha256", b"\0" * 32, b"\1" * 32, 5),
            GOOD,
            identity,
            this_update=this_update,
            next_update=next_update,
        )


def test_unauthorized_is_never_signed() -> None:
    key = KeyAlgorithm.ECDSA_P256.generate()
    ca = make_ca(InProcessSigner(key))
    identity = ResponderIdentity(InProcessSigner(key), ca, delegated=False)
    with pytest.raises(ValueError, match="unsigned"):
        sign_response(
            CertId("sha256", b"\0" * 32, b"\1" * 32, 5),
            Answer(Verdict.UNAUTHORIZED),
            identity,
            this_update=NOW,
            next_update=NOW + timedelta(hours=9),
        )


@pytest.mark.parametrize("validity", [timedelta(hours=7), timedelta(days=10, seconds=1)])
def test_validity_outside_the_br_bounds_is_refused(validity: timedelta) -> None:
    key = KeyAlgorithm.ECDSA_P256.generate()
    identity = ResponderIdentity(InProcessSigner(key), make_ca(InProcessSigner(key)), False)
    with pytest.raises(ValueError, match="BR"):
        validity_window(NOW, validity, identity)


def test_sha1_certid_hash_is_what_openssl_sends() -> None:
    assert hashes.SHA1().name == "sha1"  # noqa: S303
