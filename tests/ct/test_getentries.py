"""The lean get-entries decoders agree with the strict ones: same entry, or the same error."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ctstatus.ct.b64 import b64decode
from ctstatus.ct.errors import DecodeError
from ctstatus.ct.getentries import b64decode_lean, decode_entry_lean
from ctstatus.ct.reader import LogEntry, decode_entry
from ctstatus.ct.structures import (
    CertificateChain,
    MerkleTreeLeaf,
    PrecertChainEntry,
    TimestampedEntry,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

certificates = st.binary(min_size=1, max_size=40)
chains = st.lists(certificates, max_size=3).map(tuple)


@st.composite
def valid_items(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A well-formed (leaf_input, extra_data) of either known entry type."""
    timestamp = draw(st.integers(0, (1 << 64) - 1))
    extensions = draw(st.binary(max_size=8))
    chain = draw(chains)
    if draw(st.booleans()):
        entry = TimestampedEntry.x509_entry(timestamp, draw(certificates), extensions)
        extra = CertificateChain(chain).encode()
    else:
        entry = TimestampedEntry.precert_entry(
            timestamp, draw(st.binary(min_size=32, max_size=32)), draw(certificates), extensions
        )
        extra = PrecertChainEntry(draw(certificates), chain).encode()
    return MerkleTreeLeaf(entry).encode(), extra


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes changed, cut short or lengthened."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        if out and draw(st.booleans()):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        elif draw(st.booleans()):
            del out[draw(st.integers(0, len(out))) :]
        else:
            out += draw(st.binary(min_size=1, max_size=4))
    return bytes(out)


def _u(value: int, width: int) -> bytes:
    return (value % (1 << (8 * width))).to_bytes(width, "big")


@st.composite
def loose_items(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Items built field by field where any length prefix may lie (off by a little) and any
    vector element may be empty: the boundary cases a slicing decoder can get wrong."""
    skew = st.sampled_from([0] * 8 + [-1, 1, 2])
    kind = draw(st.sampled_from([0, 1, 1, 2]))
    certificate = draw(st.binary(max_size=6))
    leaf = bytes([0, 0]) + bytes(8) + _u(kind, 2)
    if kind == 1:
        leaf += bytes(draw(st.sampled_from([32] * 4 + [31, 33])))
    extensions = draw(st.binary(max_size=3))
    leaf += _u(len(certificate) + draw(skew), 3) + certificate
    leaf += _u(len(extensions) + draw(skew), 2) + extensions
    items = [draw(st.binary(max_size=4)) for _ in range(draw(st.integers(0, 3)))]
    body = b"".join(_u(len(i) + draw(skew), 3) + i for i in items)
    extra = _u(len(body) + draw(skew), 3) + body
    if kind == 1:
        pre = draw(st.binary(max_size=4))
        extra = _u(len(pre) + draw(skew), 3) + pre + extra
    return leaf, extra


@FUZZ
@given(item=loose_items())
@example(item=(bytes(11) + b"\x01" + bytes(32) + b"\x00\x00\x01C\x00\x00", bytes(6)))
def test_lying_lengths_and_empty_elements_as_the_strict_decoder_does(
    item: tuple[bytes, bytes],
) -> None:
    leaf_input, extra = item
    assert outcome(decode_entry_lean, 1, leaf_input, extra) == outcome(
        decode_entry, 1, leaf_input, extra
    )


def outcome(decode: object, *args: object) -> LogEntry | str:
    assert callable(decode)
    try:
        result = decode(*args)
    except DecodeError as exc:
        return f"DecodeError: {exc}"
    assert isinstance(result, LogEntry)
    return result


@FUZZ
@given(item=valid_items(), index=st.integers(0, 1 << 40))
def test_valid_entries_decode_to_the_strict_result(item: tuple[bytes, bytes], index: int) -> None:
    leaf_input, extra = item
    strict = decode_entry(index, leaf_input, extra)
    lean = decode_entry_lean(index, leaf_input, extra)
    assert lean == strict
    assert lean.leaf == strict.leaf
    assert lean.chain == strict.chain
    assert lean.pre_certificate == strict.pre_certificate
    assert lean.leaf_hash == strict.leaf_hash
    assert lean.certificate_der == strict.certificate_der


@FUZZ
@given(data=st.data())
def test_malformed_entries_fail_as_the_strict_decoder_does(data: st.DataObject) -> None:
    leaf_input, extra = data.draw(valid_items())
    which = data.draw(st.sampled_from(["leaf", "extra", "both"]))
    if which != "extra":
        leaf_input = data.draw(mutated(leaf_input))
    if which != "leaf":
        extra = data.draw(mutated(extra))
    assert outcome(decode_entry_lean, 5, leaf_input, extra) == outcome(
        decode_entry, 5, leaf_input, extra
    )


@FUZZ
@given(leaf_input=st.binary(max_size=80), extra=st.binary(max_size=40))
@example(leaf_input=bytes(12), extra=b"")
@example(leaf_input=bytes([0, 0]) + bytes(8) + (7).to_bytes(2, "big") + b"opaque", extra=b"x")
@example(leaf_input=bytes([0, 0]) + bytes(8) + (256).to_bytes(2, "big") + b"opaque", extra=b"")
def test_arbitrary_bytes_fail_or_decode_as_the_strict_decoder_does(
    leaf_input: bytes, extra: bytes
) -> None:
    assert outcome(decode_entry_lean, 0, leaf_input, extra) == outcome(
        decode_entry, 0, leaf_input, extra
    )


def b64_outcome(decode: object, value: object, max_len: int) -> bytes | str:
    assert callable(decode)
    try:
        result = decode(value, "field", max_len=max_len)
    except DecodeError as exc:
        return f"DecodeError: {exc}"
    assert isinstance(result, bytes)
    return result


def _lean(value: object, field: str, *, max_len: int) -> bytes:
    return b64decode_lean(value, field, max_len)


b64_texts = st.one_of(
    st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=12
    ),
    st.text(max_size=8),
)


@FUZZ
@given(
    value=b64_texts,
    max_len=st.integers(0, 24),
    edit=st.tuples(st.integers(0, 40), st.sampled_from(["", "=", "A", "B", "Q", "/", " ", "\n"])),
)
@example(value="YQ==", max_len=5, edit=(99, ""))  # canonical
@example(value="YR==", max_len=5, edit=(99, ""))  # non-zero padding bits
@example(value="YWI=", max_len=5, edit=(99, ""))
@example(value="YWJ=", max_len=5, edit=(99, ""))
@example(value="YQ", max_len=5, edit=(99, ""))  # padding missing
@example(value="YQ=", max_len=5, edit=(99, ""))
@example(value="Y===", max_len=5, edit=(99, ""))
@example(value="YWJj", max_len=2, edit=(99, ""))  # longer than allowed
@example(value="", max_len=0, edit=(99, ""))
@example(value="é", max_len=5, edit=(99, ""))
def test_base64_is_accepted_and_refused_as_the_strict_decoder_does(
    value: str, max_len: int, edit: tuple[int, str]
) -> None:
    position, insert = edit
    if position <= len(value):
        value = value[:position] + insert + value[position:]
    assert b64_outcome(_lean, value, max_len) == b64_outcome(b64decode, value, max_len)


@pytest.mark.parametrize("value", [None, 5, b"YQ==", ["YQ=="]])
def test_base64_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(DecodeError, match="expected a base64 string"):
        b64decode_lean(value, "leaf_input", 10)
