"""OCSP requests from the network: DER (POST) or the GET path, parsed defensively.

Everything here is fed bytes an attacker chose (DESIGN.md invariant 5), so every failure is one
of two exceptions the responder turns into an OCSP error -- never an HTTP 500:

* :class:`MalformedRequest` -> ``malformedRequest`` (not DER, several CertIDs, bad version, ...);
* :class:`UnsupportedHash` -> ``unauthorized`` (a well-formed request we cannot answer for).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import unquote_to_bytes

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

HashName = Literal["sha1", "sha256", "sha384", "sha512"]
HASH_NAMES: Final[frozenset[str]] = frozenset({"sha1", "sha256", "sha384", "sha512"})
"""CertID hashes we can match an issuer by (RFC 9919: SHA-256; legacy clients: SHA-1)."""


class MalformedRequest(ValueError):
    """The bytes are not one parseable OCSP request for one certificate."""


class NotAnOcspPath(MalformedRequest):
    """A GET path that does not even look like a base64 OCSP request (``/favicon.ico``): the
    server answers 404, not an OCSP error."""


class UnsupportedHash(ValueError):
    """A well-formed request whose CertID uses a hash we do not index."""


@dataclass(frozen=True, slots=True)
class CertIdQuery:
    """The one CertID of a request: what the responder looks up and echoes back."""

    hash_name: HashName
    name_hash: bytes
    key_hash: bytes
    serial: int


def parse_request(der: bytes) -> CertIdQuery:
    """Parse a DER OCSPRequest holding exactly one CertID.

    Nonces and other request extensions are ignored: responses are pre-signed (RFC 9919 §2.1,
    a responder that cannot include a nonce returns the most complete response it can).
    """
    try:
        request = ocsp.load_der_ocsp_request(der)
        _ = request.extensions  # parsed lazily: refuse duplicates and bad encodings here
        name = request.hash_algorithm.name
        query = (request.issuer_name_hash, request.issuer_key_hash, request.serial_number)
    except UnsupportedAlgorithm as exc:
        raise UnsupportedHash(str(exc)) from None
    except NotImplementedError as exc:  # cryptography: "more than one request"
        raise MalformedRequest(str(exc)) from None
    except Exception as exc:
        raise MalformedRequest(f"{type(exc).__name__}: {exc}") from None
    if name not in HASH_NAMES:
        raise UnsupportedHash(f"CertID hash {name} is not supported")
    return CertIdQuery(name, *query)  # type: ignore[arg-type]


_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")
_BASE64: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \r\n"
)


def decode_get_path(path: bytes, prefixes: tuple[bytes, ...] = ()) -> bytes:
    """The DER request in a GET path: ``{prefix}/{url-encode(base64(DER))}`` (RFC 6960 App. A).

    Lenient in what real clients send: a doubled or missing ``/``, unencoded ``/`` and ``+``,
    base64url instead of base64, missing ``=`` padding. ``prefixes`` are the path parts of the
    configured responder URLs (``/ocsp``), stripped when present. A DER request starts with
    ``0x30``, so its base64 starts with ``M`` and never with ``/``.

    What is an OCSP request at all (RFC 6960 App. A.1 defines only this one form of GET): a
    path whose request part starts with ``M`` and holds only base64/base64url characters. Such a
    path that does not decode, or decodes to something that is not an OCSP request, is a broken
    OCSP request (``malformedRequest``, :class:`MalformedRequest`). Anything else (``/``,
    ``/favicon.ico``, ``/robots.txt``) raises :class:`NotAnOcspPath`: the server says 404.
    """
    for prefix in prefixes:
        if path == prefix or path.startswith(prefix + b"/"):
            path = path[len(prefix) :]
            break
    encoded = unquote_to_bytes(path.lstrip(b"/")).translate(_URLSAFE)
    encoded = encoded.replace(b"\r", b"").replace(b"\n", b"").replace(b" ", b"+")
    if not encoded or encoded[:1] != b"M" or not _BASE64.issuperset(encoded):
        raise NotAnOcspPath("the GET path is not a base64 OCSP request")
    encoded += b"=" * (-len(encoded) % 4)
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except binascii.Error as exc:
        raise MalformedRequest(f"the GET path is not base64: {exc}") from None
