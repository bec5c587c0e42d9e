"""A small ACME client for protocol tests: signs JWS with ES256, RS256 or EdDSA over httpx.

It lets a test break exactly one rule (the url, the nonce, the key, the signature) so that each
failure path is checked against the real server.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from ctstatus.acme.jws import public_jwk, thumbprint

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(alg: str = "ES256") -> Key:
    if alg == "RS256":
        return rsa.generate_private_key(65537, 2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def alg_of(key: Key) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    return "ES256"


def sign(key: Key, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def jws(
    key: Key,
    payload: Any,
    *,
    url: str,
    nonce: str | None,
    kid: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    header: dict[str, Any] = {"alg": alg_of(key), "url": url}
    if nonce is not None:
        header["nonce"] = nonce
    if kid is None:
        header["jwk"] = public_jwk(key.public_key())
    else:
        header["kid"] = kid
    header.update(extra or {})
    protected = b64(json.dumps(header).encode())
    body = "" if payload is None else b64(json.dumps(payload).encode())
    signature = sign(key, f"{protected}.{body}".encode())
    return {"protected": protected, "payload": body, "signature": b64(signature)}


def csr_for(names: list[str], key: Key | None = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    )
    assert not isinstance(key, ed25519.Ed25519PrivateKey)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@dataclass
class Client:
    http: httpx.Client
    directory_url: str
    key: Key = field(default_factory=new_key)
    kid: str | None = None
    directory: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory = self.http.get(self.directory_url).json()

    def nonce(self) -> str:
        return self.http.head(self.directory["newNonce"]).headers["Replay-Nonce"]

    def post(
        self,
        url: str,
        payload: Any,
        *,
        key: Key | None = None,
        use_jwk: bool = False,
        nonce: str | None = None,
        signed_url: str | None = None,
    ) -> httpx.Response:
        body = jws(
            key or self.key,
            payload,
            url=signed_url or url,
            nonce=nonce or self.nonce(),
            kid=None if use_jwk else self.kid,
        )
        return self.http.post(url, json=body, headers={"Content-Type": "application/jose+json"})

    def register(self) -> httpx.Response:
        response = self.post(
            self.directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True
        )
        assert response.status_code in (200, 201), response.text
        self.kid = response.headers["Location"]
        return response

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.key.public_key())

    def key_authorization(self, token: str) -> str:
        return f"{token}.{self.thumbprint}"

    def dns_txt(self, token: str) -> str:
        return b64(hashlib.sha256(self.key_authorization(token).encode()).digest())

    def new_order(self, names: list[str], **extra: Any) -> httpx.Response:
        payload = {"identifiers": [{"type": "dns", "value": n} for n in names], **extra}
        return self.post(self.directory["newOrder"], payload)

    def get(self, url: str) -> httpx.Response:
        return self.post(url, None)
