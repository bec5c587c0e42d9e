"""RFC 6962 structures: exact byte layouts, round trips, JSON forms, strictness."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from ctstatus.ct import DecodeError, EncodeError
from ctstatus.ct.merkle import leaf_hash
from ctstatus.ct.structures import (
    SCT_LIST_OID,
    CertificateChain,
    DigitallySigned,
    HashAlgorithm,
    LogEntryType,
    MerkleTreeLeaf,
    PrecertChainEntry,
    SctList,
    SignatureAlgorithm,
    SignedCertificateTimestamp,
    SignedTreeHead,
    TimestampedEntry,
    Version,
    sct_list_extension,
    sct_list_from_extension_value,
    sct_list_to_extension_value,
    sct_signature_input,
    scts_from_certificate,
    tree_head_signature_input,
)


def sct(
    signature: bytes = b"", extensions: bytes = b"", timestamp: int = 0
) -> SignedCertificateTimestamp:
    return SignedCertificateTimestamp(
        Version.V1,
        bytes(32),
        timestamp,
        extensions,
        DigitallySigned(HashAlgorithm.SHA256, SignatureAlgorithm.ECDSA, signature),
    )


scts = st.builds(
    SignedCertificateTimestamp,
    st.just(Version.V1),
    st.binary(min_size=32, max_size=32),
    st.integers(0, (1 << 64) - 1),
    st.binary(max_size=40),
    st.builds(
        DigitallySigned,
        st.sampled_from(HashAlgorithm),
        st.sampled_from(SignatureAlgorithm),
        st.binary(max_size=80),
    ),
)
entries = st.one_of(
    st.builds(
        TimestampedEntry.x509_entry,
        st.integers(0, (1 << 64) - 1),
        st.binary(min_size=1, max_size=64),
        st.binary(max_size=16),
    ),
    st.builds(
        TimestampedEntry.precert_entry,
        st.integers(0, (1 << 64) - 1),
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=1, max_size=64),
        st.binary(max_size=16),
    ),
)


def test_empty_sct_is_47_bytes_with_the_documented_layout() -> None:
    """Spec digest §1.4: no extensions and an empty signature make a 47-byte SCT."""
    value = sct(timestamp=0x0102030405060708)
    encoded = value.encode()
    assert len(encoded) == 47
    assert encoded[0] == 0  # v1
    assert encoded[1:33] == bytes(32)
    assert encoded[33:41] == bytes.fromhex("0102030405060708")
    assert encoded[41:43] == b"\x00\x00"  # extensions length
    assert encoded[43:47] == bytes([4, 3, 0, 0])  # sha256, ecdsa, signature length 0


def test_sct_list_extension_value_matches_boulder_example() -> None:
    """Boulder's test: one 47-byte SCT gives extnValue ``04 33 | 00 31 | 00 2f | 00 ...``."""
    value = sct_list_to_extension_value([sct()])
    assert value[:7] == bytes.fromhex("04330031002f00")
    assert len(value) == 2 + 0x33
    assert sct_list_from_extension_value(value) == SctList((sct(),))


def test_sct_with_leaf_index_extension_layout() -> None:
    value = sct(extensions=bytes.fromhex("0000050000000102"), signature=b"sig")
    encoded = value.encode()
    assert encoded[41:51] == bytes.fromhex("00080000050000000102")
    assert SignedCertificateTimestamp.decode(encoded) == value


@settings(max_examples=100)
@given(scts)
def test_sct_round_trips_binary_and_json(value: SignedCertificateTimestamp) -> None:
    assert SignedCertificateTimestamp.decode(value.encode()) == value
    assert SignedCertificateTimestamp.from_json(value.to_json()) == value


@settings(max_examples=50)
@given(st.lists(scts, min_size=1, max_size=5))
def test_sct_list_round_trips(values: list[SignedCertificateTimestamp]) -> None:
    encoded = SctList(tuple(values)).encode()
    assert SctList.decode(encoded).scts == tuple(values)
    assert sct_list_from_extension_value(sct_list_to_extension_value(values)).scts == tuple(values)


@settings(max_examples=100)
@given(entries)
def test_timestamped_entry_and_leaf_round_trip(entry: TimestampedEntry) -> None:
    assert TimestampedEntry.decode(entry.encode()) == entry
    leaf = MerkleTreeLeaf(entry)
    encoded = leaf.encode()
    assert encoded[:2] == b"\x00\x00"
    assert MerkleTreeLeaf.decode(encoded) == leaf
    assert leaf.leaf_hash() == leaf_hash(encoded)
    # The SCT's signed data is the same bytes (the second byte means signature_type there).
    assert sct_signature_input(entry) == encoded


def test_precert_leaf_layout() -> None:
    entry = TimestampedEntry.precert_entry(7, b"\xaa" * 32, b"TBS", b"\x01\x02")
    assert MerkleTreeLeaf(entry).encode() == (
        b"\x00\x00"
        + (7).to_bytes(8, "big")
        + b"\x00\x01"
        + b"\xaa" * 32
        + b"\x00\x00\x03TBS"
        + b"\x00\x02\x01\x02"
    )


def test_x509_leaf_layout() -> None:
    entry = TimestampedEntry.x509_entry(1, b"CERT")
    assert MerkleTreeLeaf(entry).encode() == (
        b"\x00\x00" + (1).to_bytes(8, "big") + b"\x00\x00" + b"\x00\x00\x04CERT" + b"\x00\x00"
    )


def test_tree_head_signature_input_is_50_bytes() -> None:
    data = tree_head_signature_input(0x1122, 0x3344, b"\x55" * 32)
    assert len(data) == 50
    assert data == b"\x00\x01" + (0x1122).to_bytes(8, "big") + (0x3344).to_bytes(8, "big") + (
        b"\x55" * 32
    )
    with pytest.raises(EncodeError):
        tree_head_signature_input(0, 0, b"\x55" * 31)


@settings(max_examples=40)
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=4), st.binary(min_size=1, max_size=40))
def test_extra_data_round_trips(chain: list[bytes], precert: bytes) -> None:
    value = CertificateChain(tuple(chain))
    encoded = value.encode()
    assert int.from_bytes(encoded[:3], "big") == len(encoded) - 3
    assert CertificateChain.decode(encoded) == value
    entry = PrecertChainEntry(precert, tuple(chain))
    assert PrecertChainEntry.decode(entry.encode()) == entry


def test_strict_decoding_errors_name_the_field() -> None:
    good = sct(signature=b"abc").encode()
    with pytest.raises(DecodeError, match="trailing"):
        SignedCertificateTimestamp.decode(good + b"\x00")
    with pytest.raises(DecodeError, match="signature: truncated"):
        SignedCertificateTimestamp.decode(good[:-1])
    with pytest.raises(DecodeError, match="sct_version: bad enum value 1"):
        SignedCertificateTimestamp.decode(b"\x01" + good[1:])
    with pytest.raises(DecodeError, match="hash_alg: bad enum value 9"):
        SignedCertificateTimestamp.decode(good[:43] + b"\x09" + good[44:])
    with pytest.raises(DecodeError, match="entry_type: bad enum value 2"):
        TimestampedEntry.decode(bytes(8) + b"\x00\x02" + b"\x00\x00\x01X\x00\x00")
    with pytest.raises(DecodeError, match="signed_entry: too short"):
        TimestampedEntry.decode(bytes(8) + b"\x00\x00" + b"\x00\x00\x00\x00\x00")
    with pytest.raises(DecodeError, match="leaf_type: bad enum value 1"):
        MerkleTreeLeaf.decode(b"\x00\x01" + TimestampedEntry.x509_entry(0, b"X").encode())
    with pytest.raises(DecodeError, match="sct_list: too short"):
        SctList.decode(b"\x00\x00")
    with pytest.raises(DecodeError, match=r"sct_list\[0\]: too short"):
        SctList.decode(b"\x00\x02\x00\x00")
    with pytest.raises(DecodeError, match="expected tag 0x04"):
        sct_list_from_extension_value(b"\x30\x00")


def test_constructors_refuse_bad_values() -> None:
    with pytest.raises(EncodeError, match="log_id"):
        SignedCertificateTimestamp(
            Version.V1,
            b"short",
            0,
            b"",
            DigitallySigned(HashAlgorithm.SHA256, SignatureAlgorithm.ECDSA, b""),
        )
    with pytest.raises(EncodeError, match="timestamp"):
        sct(timestamp=1 << 64)
    with pytest.raises(EncodeError, match="issuer_key_hash"):
        TimestampedEntry(0, LogEntryType.PRECERT_ENTRY, b"TBS")
    with pytest.raises(EncodeError, match="issuer_key_hash"):
        TimestampedEntry(0, LogEntryType.X509_ENTRY, b"CERT", bytes(32))
    with pytest.raises(EncodeError, match="certificate"):
        TimestampedEntry.x509_entry(0, b"")
    with pytest.raises(EncodeError):
        SctList(())
    with pytest.raises(EncodeError, match="signature"):
        sct(signature=b"x" * 0x10000).encode()


def sth_json() -> dict[str, Any]:
    return {
        "tree_size": 12,
        "timestamp": 1700000000000,
        "sha256_root_hash": base64.b64encode(b"\x01" * 32).decode(),
        "tree_head_signature": base64.b64encode(bytes([4, 3, 0, 2, 0xAB, 0xCD])).decode(),
        "unknown_member": "ignored",
    }


def test_sth_json_round_trip() -> None:
    sth = SignedTreeHead.from_json(sth_json())
    assert sth.tree_size == 12
    assert sth.root_hash == b"\x01" * 32
    assert sth.signature == DigitallySigned(
        HashAlgorithm.SHA256, SignatureAlgorithm.ECDSA, b"\xab\xcd"
    )
    assert sth.signature_input() == tree_head_signature_input(1700000000000, 12, b"\x01" * 32)
    assert SignedTreeHead.from_json(sth.to_json()) == sth


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("tree_size", -1, "not a uint64"),
        ("tree_size", 1 << 64, "not a uint64"),
        ("tree_size", True, "expected an integer"),
        ("tree_size", 1.0, "expected an integer"),
        ("timestamp", "1", "expected an integer"),
        ("sha256_root_hash", base64.b64encode(b"\x01" * 31).decode(), "expected 32 bytes"),
        ("sha256_root_hash", "AQ==", "expected 32 bytes"),
        ("sha256_root_hash", "AR==", "non-canonical"),
        ("sha256_root_hash", "not base64!", "invalid base64"),
        ("sha256_root_hash", "é" * 44, "not ASCII"),
        ("sha256_root_hash", None, "expected a base64 string"),
        ("tree_head_signature", base64.b64encode(bytes([4, 3, 0, 3, 1])).decode(), "truncated"),
    ],
)
def test_sth_json_is_strict(member: str, value: object, message: str) -> None:
    body = sth_json()
    body[member] = value
    with pytest.raises(DecodeError, match=message):
        SignedTreeHead.from_json(body)


def test_sct_json_is_strict() -> None:
    good = sct(signature=b"sig").to_json()
    assert SignedCertificateTimestamp.from_json(good) == sct(signature=b"sig")
    with pytest.raises(DecodeError, match="JSON object"):
        SignedCertificateTimestamp.from_json([good])
    for member, value in [("sct_version", 1), ("id", ""), ("extensions", 5), ("signature", "")]:
        with pytest.raises(DecodeError):
            SignedCertificateTimestamp.from_json({**good, member: value})
    missing = dict(good)
    del missing["timestamp"]
    with pytest.raises(DecodeError, match="timestamp"):
        SignedCertificateTimestamp.from_json(missing)


def test_sct_list_extension_goes_into_a_certificate(ca: Any, ec_log: Any) -> None:
    """cryptography accepts our extension value and parses it back into the same SCTs."""
    from ctstatus.ct.sct import sign_sct

    signed = sign_sct(ec_log, LogEntryType.PRECERT_ENTRY, 1, (bytes(32), b"TBS"))
    _, final = ca.pair([signed, sct(signature=b"x")])
    certificate = x509.load_der_x509_certificate(final)
    extension = certificate.extensions.get_extension_for_oid(SCT_LIST_OID)
    assert not extension.critical
    assert isinstance(extension.value, x509.PrecertificateSignedCertificateTimestamps)
    assert extension.value.public_bytes() == sct_list_to_extension_value(
        [signed, sct(signature=b"x")]
    )
    parsed = scts_from_certificate(certificate)
    assert parsed is not None
    assert parsed.scts == (signed, sct(signature=b"x"))
    assert scts_from_certificate(final) == parsed
    assert sct_list_extension([signed]).oid == SCT_LIST_OID


def test_scts_from_real_certificate(vector: Any) -> None:
    certificate = vector("x509/cryptography-scts.pem")
    parsed = scts_from_certificate(certificate)
    assert parsed is not None
    ours = [base64.b64encode(s.log_id).decode() for s in parsed.scts]
    theirs = x509.load_der_x509_certificate(certificate).extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps
    )
    assert ours == [base64.b64encode(s.log_id).decode() for s in theirs.value]
    epoch = datetime.datetime(1970, 1, 1)
    assert [s.timestamp_ms for s in parsed.scts] == [
        (s.timestamp - epoch) // datetime.timedelta(milliseconds=1) for s in theirs.value
    ]
    assert [s.signature.signature for s in parsed.scts] == [s.signature for s in theirs.value]
    assert scts_from_certificate(vector("x509/letsencryptx3.pem")) is None


def test_sct_list_split_keeps_undecodable_scts_apart() -> None:
    good = sct(signature=b"ok").encode()
    future_version = b"\x01" + good[1:]
    body = b"".join(len(x).to_bytes(2, "big") + x for x in (good, future_version))
    data = len(body).to_bytes(2, "big") + body
    assert SctList.split(data) == (good, future_version)
    with pytest.raises(DecodeError, match="sct_version"):
        SctList.decode(data)
    with pytest.raises(DecodeError, match="trailing"):
        SctList.split(data + b"\x00")


def test_plain_ints_become_enum_members() -> None:
    signed = DigitallySigned(4, 3, b"")  # type: ignore[arg-type]
    assert signed.hash_alg is HashAlgorithm.SHA256
    assert signed.sig_alg is SignatureAlgorithm.ECDSA
    entry = TimestampedEntry(0, 1, b"TBS", bytes(32))  # type: ignore[arg-type]
    assert entry.entry_type is LogEntryType.PRECERT_ENTRY
    with pytest.raises(EncodeError, match="not a HashAlgorithm"):
        DigitallySigned(7, 3, b"")  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="not a LogEntryType"):
        TimestampedEntry(0, 2, b"X")  # type: ignore[arg-type]
