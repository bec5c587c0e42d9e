"""The low-level codecs: TLS presentation language and the DER walker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from asn1crypto import core as asn1_core
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from ctstatus.ct import der
from ctstatus.ct.errors import DecodeError, EncodeError
from ctstatus.ct.structures import HashAlgorithm
from ctstatus.ct.tls import Reader, Writer, enum_value

# --- TLS ----------------------------------------------------------------------------------


def test_reader_reads_big_endian_integers_and_vectors() -> None:
    data = bytes.fromhex("0102030405060708090a0b0c0d0e0f101112130002aabbcc")
    reader = Reader(data, "thing")
    assert reader.uint8() == 1
    assert reader.uint16() == 0x0203
    assert reader.uint24() == 0x040506
    assert reader.uint40() == 0x0708090A0B
    assert reader.uint64() == 0x0C0D0E0F10111213
    assert reader.opaque(2) == b"\xaa\xbb"
    assert reader.remaining == 1
    with pytest.raises(DecodeError, match="thing: 1 trailing bytes"):
        reader.done()
    assert reader.fixed(1) == b"\xcc"
    reader.done()


def test_reader_errors_name_the_field_and_the_reason() -> None:
    with pytest.raises(DecodeError, match=r"s\.count: truncated \(need 2 bytes, 1 left\)"):
        Reader(b"\x00", "s").uint16("count")
    with pytest.raises(DecodeError, match=r"s\.name: too long \(3 > 2 bytes\)"):
        Reader(b"\x03abc", "s").opaque(1, 0, 2, field="name")
    with pytest.raises(DecodeError, match=r"s\.name: too short \(0 < 1 bytes\)"):
        Reader(b"\x00", "s").opaque(1, 1, field="name")
    with pytest.raises(DecodeError, match=r"s\.name: truncated"):
        Reader(b"\x05abc", "s").opaque(1, field="name")
    with pytest.raises(DecodeError, match=r"s\.name\.length: truncated"):
        Reader(b"\x00", "s").opaque(2, field="name")
    with pytest.raises(DecodeError, match="bad enum value 9 for HashAlgorithm"):
        enum_value(HashAlgorithm, 9, "hash")
    with pytest.raises(DecodeError, match="expected bytes"):
        Reader("text", "s")  # type: ignore[arg-type]


def test_sub_reader_is_bounded_by_its_vector() -> None:
    reader = Reader(b"\x00\x03\x01\x02\x03\x04", "outer")
    inner = reader.sub(2, field="items")
    assert [inner.uint8(), inner.uint8(), inner.uint8()] == [1, 2, 3]
    with pytest.raises(DecodeError, match=r"outer\.items\.uint8: truncated"):
        inner.uint8()
    assert reader.uint8() == 4


def test_writer_checks_ranges_and_lengths() -> None:
    writer = Writer().uint8(1).uint16(2).uint24(3).uint40(4).uint64(5).fixed(b"ab", 2)
    writer.opaque(3, b"xyz")
    assert writer.to_bytes() == bytes.fromhex(
        "01000200000300000000040000000000000005616200000378797a"
    )
    calls: list[Callable[[], object]] = [
        lambda: Writer().uint8(256),
        lambda: Writer().uint16(-1),
        lambda: Writer().uint64(1 << 64),
        lambda: Writer().uint8(True),
        lambda: Writer().fixed(b"abc", 2),
        lambda: Writer().opaque(1, b"x" * 256),
        lambda: Writer().opaque(2, b"", 1),
        lambda: Writer().opaque(2, b"abc", 0, 2),
    ]
    for call in calls:
        with pytest.raises(EncodeError):
            call()
    with pytest.raises(ValueError, match="1, 2 or 3"):
        Writer().opaque(4, b"")


@settings(max_examples=100)
@given(st.binary(max_size=300), st.sampled_from([1, 2, 3]))
def test_opaque_round_trip(data: bytes, width: int) -> None:
    if len(data) >= 1 << (8 * width):
        return
    encoded = Writer().opaque(width, data).to_bytes()
    reader = Reader(encoded)
    assert reader.opaque(width) == data
    reader.done()


# --- DER ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no tag"),
        (b"\x04", "no length"),
        (b"\x04\x80", "indefinite"),
        (b"\x04\x81\x05abcde", "short form"),
        (b"\x04\x82\x00\x80" + b"a" * 128, "leading zero"),
        (b"\x04\x84\x01\x00\x00\x00", "too long"),
        (b"\x04\x82\x01", "truncated length"),
        (b"\x04\x05abc", "truncated"),
        (b"\x1f\x01\x00", "high tag"),
        (b"\x04\x00\x00", "trailing"),
        (b"\x30\x00", "expected tag 0x04"),
    ],
)
def test_der_is_strict(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        der.octet_string_content(data)


@settings(max_examples=100)
@given(st.binary(max_size=70000))
def test_der_length_encoding_agrees_with_asn1crypto(content: bytes) -> None:
    encoded = der.encode_tlv(der.TAG_OCTET_STRING, content)
    assert encoded == asn1_core.OctetString(content).dump()
    assert der.octet_string_content(encoded) == content


def test_certificate_parts_agree_with_cryptography(vector: Callable[[str], bytes]) -> None:
    for name in [
        "x509/cryptography-scts.pem",
        "x509/letsencryptx3.pem",
        "x509/cryptography.io.precert.pem",
    ]:
        data = vector(name)
        certificate = x509.load_der_x509_certificate(data)
        tbs = der.certificate_tbs(data)
        assert tbs == certificate.tbs_certificate_bytes
        extensions = der.tbs_extensions(tbs)
        assert [e.critical for e in extensions] == [e.critical for e in certificate.extensions]
        assert [e.oid for e in extensions] == [
            _oid_content(e.oid.dotted_string) for e in certificate.extensions
        ]


def _oid_content(dotted: str) -> bytes:
    encoded: bytes = asn1_core.ObjectIdentifier(dotted).dump()
    return encoded[2:]


def test_tbs_without_extension_needs_the_extension(vector: Callable[[str], bytes]) -> None:
    tbs = der.certificate_tbs(vector("x509/letsencryptx3.pem"))
    with pytest.raises(ValueError, match="no extension"):
        der.tbs_without_extension(tbs, der.OID_CT_POISON)


def test_duplicate_extensions_are_refused(vector: Callable[[str], bytes]) -> None:
    tbs = der.certificate_tbs(vector("x509/letsencryptx3.pem"))
    extensions = der.tbs_extensions(tbs)
    top = der.read_single(tbs, "tbs")
    fields = der.children(tbs, top, "tbs")
    doubled = der.encode_tlv(
        der.TAG_EXTENSIONS,
        der.encode_tlv(der.TAG_SEQUENCE, b"".join(e.raw for e in extensions) + extensions[0].raw),
    )
    body = b"".join(f.raw(tbs) for f in fields[:-1]) + doubled
    with pytest.raises(DecodeError, match="duplicate extension"):
        der.tbs_extensions(der.encode_tlv(der.TAG_SEQUENCE, body))
