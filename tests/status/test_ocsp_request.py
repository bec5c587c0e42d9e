"""Request parsing: exactly two outcomes for anything that is not a valid single-CertID request."""

from __future__ import annotations

import base64
import contextlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from hypothesis import given
from hypothesis import strategies as st

from ctstatus.status.ocsp_request import (
    MalformedRequest,
    UnsupportedHash,
    decode_get_path,
    parse_request,
)

REQUEST = (
    ocsp.OCSPRequestBuilder()
    .add_certificate_by_hash(b"\x01" * 32, b"\x02" * 32, 0x1234, hashes.SHA256())
    .build()
    .public_bytes(Encoding.DER)
)


def test_parses_one_certid() -> None:
    query = parse_request(REQUEST)
    assert (query.hash_name, query.name_hash, query.key_hash, query.serial) == (
        "sha256",
        b"\x01" * 32,
        b"\x02" * 32,
        0x1234,
    )


def test_sha224_is_unsupported_not_malformed() -> None:
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(b"\x01" * 28, b"\x02" * 28, 5, hashes.SHA224())
        .build()
        .public_bytes(Encoding.DER)
    )
    with pytest.raises(UnsupportedHash):
        parse_request(der)


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30", REQUEST[:-1], REQUEST + b"\x00", b"\x30\x80" * 50, b"\x04\x00", REQUEST[2:]],
)
def test_malformed(der: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(der)


@given(st.binary(max_size=512))
def test_random_bytes_are_malformed_or_unsupported(data: bytes) -> None:
    with contextlib.suppress(MalformedRequest, UnsupportedHash):
        parse_request(data)


STANDARD = base64.b64encode(REQUEST).decode()


@pytest.mark.parametrize(
    "path",
    [
        "/" + STANDARD.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D"),
        "/" + STANDARD,
        "//" + STANDARD,
        "/ocsp/" + STANDARD,
        "/ocsp//" + STANDARD,
        "/" + base64.urlsafe_b64encode(REQUEST).decode().rstrip("="),
        "/" + STANDARD.replace("+", " "),  # a '+' some clients turn into a space
    ],
)
def test_get_paths(path: str) -> None:
    assert decode_get_path(path.encode(), (b"/ocsp",)) == REQUEST


@given(st.binary(max_size=1024))
def test_any_get_path_decodes_or_is_malformed(path: bytes) -> None:
    with contextlib.suppress(MalformedRequest):
        decode_get_path(path, (b"/ocsp",))


@pytest.mark.parametrize("path", [b"/", b"/ocsp", b"/ocsp/", b"/%%%", b"/M=A=", b"/\xff"])
def test_get_paths_without_a_request(path: bytes) -> None:
    with pytest.raises(MalformedRequest):
        decode_get_path(path, (b"/ocsp",))
