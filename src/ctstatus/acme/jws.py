"""JWS as ACME uses it (RFC 8555 §6.2, RFC 7515 flattened JSON): parse, check, verify.

Only what ACME allows: the flattened serialization, one signature, a protected header with
``alg``, ``nonce``, ``url`` and exactly one of ``jwk`` (new accounts, revocation by certificate
key) or ``kid`` (everything else). ES256/ES384 (raw r||s), RS256 (2048+ bits) and EdDSA
(Ed25519). Nonce and URL checks are the server's; this module only parses and verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ctstatus.acme.problems import AcmeProblem, malformed

MAX_JWS_BYTES = 128 * 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
AccountKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
ALGORITHMS = ("ES256", "ES384", "RS256", "EdDSA")
_CURVES = {"P-256": (ec.SECP256R1(), 32, "ES256"), "P-384": (ec.SECP384R1(), 48, "ES384")}


def b64decode(value: object, what: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2)."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value) or len(value) % 4 == 1:
        raise malformed(f"{what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise malformed(f"{what} is not base64url") from None


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bad_signature(detail: str) -> AcmeProblem:
    return AcmeProblem("badSignatureAlgorithm", detail)


@dataclass(frozen=True)
class Jws:
    """A parsed, not yet verified JWS."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def nonce(self) -> str:
        return str(self.header.get("nonce", ""))

    @property
    def url(self) -> str:
        return str(self.header.get("url", ""))

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return None if kid is None else str(kid)

    @property
    def jwk(self) -> dict[str, Any] | None:
        jwk = self.header.get("jwk")
        return jwk if isinstance(jwk, dict) else None

    @property
    def post_as_get(self) -> bool:
        return self.payload == b""

    def payload_json(self) -> dict[str, Any]:
        """The payload as a JSON object (POST-as-GET's empty payload is refused here)."""
        try:
            value = json.loads(self.payload)
        except (ValueError, UnicodeDecodeError):
            raise malformed("the JWS payload is not JSON") from None
        if not isinstance(value, dict):
            raise malformed("the JWS payload must be a JSON object")
        return value


def parse(body: bytes, *, require_nonce: bool = True) -> Jws:
    """The flattened JWS in ``body``; anything else is ``malformed``."""
    if len(body) > MAX_JWS_BYTES:
        raise malformed(f"the request body is {len(body)} bytes; at most {MAX_JWS_BYTES}")
    try:
        outer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise malformed("the request body is not JSON (a flattened JWS is expected)") from None
    if not isinstance(outer, dict):
        raise malformed("the request body must be a flattened JWS object")
    if "signatures" in outer or "header" in outer:
        raise malformed("only the flattened JWS serialization with a protected header is accepted")
    if set(outer) != {"protected", "payload", "signature"}:
        raise malformed("a JWS needs exactly 'protected', 'payload' and 'signature'")
    protected = outer["protected"]
    payload = outer["payload"]
    try:
        header = json.loads(b64decode(protected, "the protected header"))
    except (ValueError, UnicodeDecodeError):
        raise malformed("the protected header is not JSON") from None
    if not isinstance(header, dict):
        raise malformed("the protected header must be a JSON object")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise bad_signature(f"alg {alg!r} is not accepted; use one of {', '.join(ALGORITHMS)}")
    if ("jwk" in header) == ("kid" in header):
        raise malformed("the protected header must have exactly one of 'jwk' and 'kid'")
    if "jwk" in header and not isinstance(header["jwk"], dict):
        raise malformed("'jwk' must be a JSON object")
    if "kid" in header and not isinstance(header["kid"], str):
        raise malformed("'kid' must be a string (the account URL)")
    if not isinstance(header.get("url"), str):
        raise malformed("the protected header has no 'url'")
    if require_nonce and not isinstance(header.get("nonce"), str):
        raise AcmeProblem("badNonce", "the protected header has no 'nonce'")
    if "b64" in header or "crit" in header:
        raise malformed("'b64' and 'crit' are not allowed in ACME JWS")
    return Jws(
        header=header,
        payload=b64decode(payload, "the payload") if payload != "" else b"",
        signing_input=f"{protected}.{payload}".encode(),
        signature=b64decode(outer["signature"], "the signature"),
    )


def _int(jwk: dict[str, Any], member: str) -> int:
    return int.from_bytes(b64decode(jwk.get(member), f"jwk member {member!r}"), "big")


def load_jwk(jwk: dict[str, Any]) -> AccountKey:
    """The public key of a JWK (EC P-256/P-384, RSA >= 2048 bits, OKP Ed25519)."""
    kty = jwk.get("kty")
    if "d" in jwk or "p" in jwk:
        raise malformed("the jwk holds a private key; send only the public key")
    try:
        if kty == "EC":
            curve = _CURVES.get(str(jwk.get("crv")))
            if curve is None:
                raise bad_signature("EC keys must be P-256 or P-384")
            x, y = b64decode(jwk.get("x"), "jwk x"), b64decode(jwk.get("y"), "jwk y")
            if len(x) != curve[1] or len(y) != curve[1]:
                raise malformed("the EC jwk coordinates have the wrong length")
            return ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve[0]
            ).public_key()
        if kty == "RSA":
            key = rsa.RSAPublicNumbers(_int(jwk, "e"), _int(jwk, "n")).public_key()
            if key.key_size < 2048:
                raise bad_signature(f"RSA keys need at least 2048 bits, not {key.key_size}")
            return key
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise bad_signature("OKP keys must be Ed25519")
            return ed25519.Ed25519PublicKey.from_public_bytes(b64decode(jwk.get("x"), "jwk x"))
    except AcmeProblem:
        raise
    except ValueError as exc:
        raise malformed(f"the jwk is not a valid public key: {exc}") from None
    raise bad_signature(f"key type {kty!r} is not accepted (EC, RSA or OKP)")


def public_jwk(key: AccountKey) -> dict[str, str]:
    """The required members of ``key``'s JWK (what the thumbprint covers)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        numbers = key.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[key.curve.name]
        return {
            "crv": crv,
            "kty": "EC",
            "x": b64encode(numbers.x.to_bytes(size, "big")),
            "y": b64encode(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return {
            "e": b64encode(rsa_numbers.e.to_bytes((rsa_numbers.e.bit_length() + 7) // 8, "big")),
            "kty": "RSA",
            "n": b64encode(rsa_numbers.n.to_bytes((rsa_numbers.n.bit_length() + 7) // 8, "big")),
        }
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return {
        "crv": "Ed25519",
        "kty": "OKP",
        "x": b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)),
    }


def thumbprint(key: AccountKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key authorization's second half."""
    canonical = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True)
    return b64encode(hashlib.sha256(canonical.encode()).digest())


def verify(jws: Jws, key: AccountKey) -> None:
    """Raise ``malformed`` unless ``jws`` is signed by ``key`` with an algorithm that fits it."""
    alg, signature, data = jws.alg, jws.signature, jws.signing_input
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            curve = _CURVES["P-256" if key.curve.name == "secp256r1" else "P-384"]
            if alg != curve[2]:
                raise bad_signature(f"a {key.curve.name} key signs with {curve[2]}, not {alg}")
            if len(signature) != 2 * curve[1]:
                raise malformed("the ECDSA signature must be r||s of the curve's size")
            der = encode_dss_signature(
                int.from_bytes(signature[: curve[1]], "big"),
                int.from_bytes(signature[curve[1] :], "big"),
            )
            hash_alg = hashes.SHA256() if curve[2] == "ES256" else hashes.SHA384()
            key.verify(der, data, ec.ECDSA(hash_alg))
        elif isinstance(key, rsa.RSAPublicKey):
            if alg != "RS256":
                raise bad_signature(f"an RSA key signs with RS256, not {alg}")
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            if alg != "EdDSA":
                raise bad_signature(f"an Ed25519 key signs with EdDSA, not {alg}")
            key.verify(signature, data)
    except InvalidSignature:
        raise malformed("the JWS signature does not verify") from None


def verify_hs256(jws: Jws, mac_key: bytes) -> None:
    """External Account Binding's MAC (RFC 8555 §7.3.4)."""
    if jws.alg != "HS256":
        raise malformed("externalAccountBinding must use HS256")
    expected = hmac.new(mac_key, jws.signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, jws.signature):
        raise unauthorized_eab()


def unauthorized_eab() -> AcmeProblem:
    return AcmeProblem("unauthorized", "the externalAccountBinding MAC does not verify", 403)


def parse_inner(value: object, *, allowed_algs: tuple[str, ...]) -> Jws:
    """A nested JWS (keyChange, externalAccountBinding): flattened JSON object, no nonce."""
    if not isinstance(value, dict):
        raise malformed("the nested JWS must be a flattened JWS object")
    if set(value) != {"protected", "payload", "signature"}:
        raise malformed("a nested JWS needs exactly 'protected', 'payload' and 'signature'")
    try:
        header = json.loads(b64decode(value["protected"], "the nested protected header"))
    except (ValueError, UnicodeDecodeError):
        raise malformed("the nested protected header is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") not in allowed_algs:
        raise malformed(f"the nested JWS must use one of {', '.join(allowed_algs)}")
    if "nonce" in header:
        raise malformed("the nested JWS must not have a nonce")
    if not isinstance(header.get("url"), str):
        raise malformed("the nested JWS has no 'url'")
    return Jws(
        header=header,
        payload=b64decode(value["payload"], "the nested payload"),
        signing_input=f"{value['protected']}.{value['payload']}".encode(),
        signature=b64decode(value["signature"], "the nested signature"),
    )
