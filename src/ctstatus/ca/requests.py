"""Turn what a subscriber hands us (a CSR, or names) into an :class:`IssuanceRequest`.

Everything here is untrusted input: the CSR must parse, its self-signature must verify, its key
must be one the Web PKI allows, and every name must be a syntactically valid DNS name or IP
address. Policy beyond syntax (public suffixes, reserved ranges) is pkilint's job at step 2.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ctstatus.ca.issuance import IssuanceRequest
from ctstatus.ca.profiles import SubjectAltName
from ctstatus.errors import UserError
from ctstatus.keys.signer import KeyAlgorithm, PrivateKey

MAX_CSR_BYTES = 64 * 1024
MAX_NAMES = 100
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class BadRequest(UserError):
    """The request cannot be certified as given; the message says which part and why."""


def parse_name(value: str) -> SubjectAltName:
    """One SAN: an IP address if it parses as one, else a DNS name (``*.`` only leftmost)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.strip().lower().rstrip(".")
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2:
        raise BadRequest(f"{value!r} is not a fully qualified domain name")
    for index, label in enumerate(labels):
        if label == "*" and index == 0:
            continue
        if not _LABEL.match(label):
            raise BadRequest(
                f"{value!r} is not a valid DNS name (label {label!r}); internationalised names "
                "must be given as A-labels (xn--…)"
            )
    return x509.DNSName(name)


def parse_names(values: Sequence[str]) -> list[SubjectAltName]:
    if not values:
        raise BadRequest("no names to certify")
    if len(values) > MAX_NAMES:
        raise BadRequest(f"{len(values)} names; at most {MAX_NAMES} per certificate")
    names: list[SubjectAltName] = []
    for value in values:
        name = parse_name(value)
        if name not in names:
            names.append(name)
    return names


_CSR_HINT = (
    "make one with e.g. `openssl req -new -key key.pem -subj /CN=www.example.com "
    "-addext subjectAltName=DNS:www.example.com -out req.pem` and send the file's text"
)
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """The CSR in ``data`` (PEM or DER), or a :class:`BadRequest` that says what is wrong."""
    text = data.strip()
    if text.startswith(b"-----BEGIN "):
        label = text[len(b"-----BEGIN ") :].split(b"-----", 1)[0].decode("ascii", "replace")
        if label not in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
            article = "an" if label[:1] in "AEIOU" else "a"
            raise BadRequest(
                f"the CSR is {article} {label.lower()}, not a certificate signing request "
                "(-----BEGIN CERTIFICATE REQUEST-----)",
                _CSR_HINT,
            )
        try:
            return x509.load_pem_x509_csr(data)
        except ValueError:
            try:
                body = b"".join(text.splitlines()[1:-1])
                der = base64.b64decode(body, validate=True)
            except (ValueError, binascii.Error):
                raise BadRequest(
                    "the CSR is damaged: its PEM text is not valid base64 (truncated or edited?)",
                    _CSR_HINT,
                ) from None
            data = der
    elif not text.startswith(b"\x30"):
        raise BadRequest(
            "the CSR is not a valid certificate signing request: it is not PEM (which begins "
            "with -----BEGIN CERTIFICATE REQUEST-----) nor DER",
            _CSR_HINT,
        )
    try:
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise BadRequest(
            "the CSR is damaged: its DER content does not parse as a PKCS#10 request",
            f"{_CSR_HINT} (parser said: {str(exc)[:120]})",
        ) from None


def _key_error(public_key: object) -> str | None:
    """Why ``public_key`` cannot be certified, in words, or None if it can."""
    if isinstance(public_key, rsa.RSAPublicKey):
        size = public_key.key_size
        if size < 2048:
            return (
                f"the CSR's key cannot be certified: RSA {size} is too weak (the Baseline "
                "Requirements ask for 2048 bits or more)"
            )
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = _CURVES.get(public_key.curve.name, public_key.curve.name)
        if curve not in ("P-256", "P-384"):
            return f"the CSR's key cannot be certified: ECDSA {curve} is not allowed in the Web PKI"
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        kind = type(public_key).__name__.removeprefix("_").removesuffix("PublicKey")
        return f"the CSR's key cannot be certified: {kind} keys are not allowed in the Web PKI"
    try:
        KeyAlgorithm.of(public_key)
    except ValueError as exc:
        return f"the CSR's key cannot be certified: {exc}"
    return None


def request_from_csr(
    data: bytes, *, lifetime_days: int | None, request_id: str | None = None
) -> IssuanceRequest:
    """A request for the key and names of a PEM or DER CSR whose self-signature verifies.

    Each refusal says what is wrong in words (not the ASN.1 parser's), with a hint.
    """
    if len(data) > MAX_CSR_BYTES:
        raise BadRequest(f"the CSR is {len(data)} bytes; at most {MAX_CSR_BYTES}")
    csr = _load_csr(data)
    try:
        public_key = csr.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadRequest(
            f"the CSR's key cannot be read: {exc}", "use ECDSA P-256/P-384 or RSA 2048/3072/4096"
        ) from None
    weak = _key_error(public_key)
    if weak is not None:
        raise BadRequest(weak, "use ECDSA P-256/P-384 or RSA 2048/3072/4096")
    try:
        if not csr.is_signature_valid:
            raise BadRequest(
                "the CSR's signature does not verify with its own key: the CSR was altered or "
                "damaged after it was signed",
                "create the CSR again with the private key it is for",
            )
        values: list[str] = []
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        if san is not None:
            for general_name in san:
                if isinstance(general_name, x509.DNSName | x509.IPAddress):
                    values.append(str(general_name.value))
                else:
                    raise BadRequest(
                        f"the CSR asks for a {type(general_name).__name__}; only DNS names and "
                        "IP addresses can be certified"
                    )
        for attribute in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            common_name = str(attribute.value)
            if common_name.lower().rstrip(".") not in [v.lower() for v in values]:
                values.append(common_name)
    except BadRequest:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadRequest(f"not a valid certificate signing request: {exc}", _CSR_HINT) from None
    assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return IssuanceRequest(
        public_key=public_key,
        names=parse_names(values),
        lifetime_days=lifetime_days,
        request_id=request_id,
    )


def request_for_names(
    values: Sequence[str],
    *,
    lifetime_days: int | None,
    key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
    request_id: str | None = None,
) -> tuple[IssuanceRequest, PrivateKey]:
    """A request for ``values`` with a freshly generated subscriber key (a convenience)."""
    key = key_algorithm.generate()
    request = IssuanceRequest(
        public_key=key.public_key(),
        names=parse_names(values),
        lifetime_days=lifetime_days,
        request_id=request_id,
    )
    return request, key
