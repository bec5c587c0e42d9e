"""Turn what a subscriber hands us (a CSR, or names) into an :class:`IssuanceRequest`.

Everything here is untrusted input: the CSR must parse, its self-signature must verify, its key
must be one the Web PKI allows, and every name must be a syntactically valid DNS name or IP
address. Policy beyond syntax (public suffixes, reserved ranges) is pkilint's job at step 2.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from cryptography import x509
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


def request_from_csr(
    data: bytes, *, lifetime_days: int | None, request_id: str | None = None
) -> IssuanceRequest:
    """A request for the key and names of a PEM or DER CSR whose self-signature verifies."""
    if len(data) > MAX_CSR_BYTES:
        raise BadRequest(f"the CSR is {len(data)} bytes; at most {MAX_CSR_BYTES}")
    try:
        csr = (
            x509.load_pem_x509_csr(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_csr(data)
        )
        if not csr.is_signature_valid:
            raise BadRequest("the CSR's signature does not verify with its own key")
        public_key = csr.public_key()
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
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"not a valid certificate signing request: {exc}") from None
    try:
        if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise ValueError(f"{type(public_key).__name__} keys are not allowed")
        KeyAlgorithm.of(public_key)
    except ValueError as exc:
        raise BadRequest(
            f"the CSR's key cannot be certified: {exc}",
            "use ECDSA P-256/P-384 or RSA 2048/3072/4096",
        ) from None
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
