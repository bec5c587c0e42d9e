"""Hostile input: random and mutated bytes fed to every decoder raise only the documented errors.

DESIGN invariant 5: bad input gets a precise error, never a crash. Each decoder gets random bytes
and mutations (bit flips, truncations, insertions, deletions, length bytes set to extremes) of a
valid encoding; the only acceptable outcomes are a decoded value or the documented exception.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import cryptography_vectors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctstatus.ct import (
    CertificateChain,
    Checkpoint,
    CheckpointVerificationError,
    DecodeError,
    DigitallySigned,
    MerkleTreeLeaf,
    PrecertChainEntry,
    RFC6962NoteSignature,
    SctList,
    SctVerificationError,
    SignedCertificateTimestamp,
    SignedNote,
    SignedTreeHead,
    TileLeaf,
    TimestampedEntry,
    decode_ct_extensions,
    decode_data_tile,
    decode_hash_tile,
    der,
    issuer_key_hash,
    leaf_index_extensions,
    leaf_index_from_extensions,
    parse_tile_path,
    sct_list_from_extension_value,
    scts_from_certificate,
    tbs_for_ct,
    verify_checkpoint,
    verify_sct,
)

REAL = json.loads((Path(__file__).parent / "data" / "real_vectors.json").read_text())


def _vector(name: str) -> bytes:
    with cryptography_vectors.open_vector_file(name, "rb") as handle:
        pem = handle.read()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


CERT = _vector("x509/cryptography-scts.pem")
PRECERT = _vector("x509/cryptography.io.precert.pem")
ISSUER = _vector("x509/letsencryptx3.pem")
SCTS = scts_from_certificate(CERT)
assert SCTS is not None
SCT = SCTS.scts[0]


def _ec_key(b64: str) -> ec.EllipticCurvePublicKey:
    key = load_der_public_key(base64.b64decode(b64))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


SCT_KEY = _ec_key(REAL["logs"]["google_icarus"]["key"])
ROME_NOTE: str = REAL["checkpoints"]["filippo_rome2024h1"]["note"]
ROME_KEY = _ec_key(REAL["logs"]["filippo_rome2024h1"]["key"])
ENTRY = TimestampedEntry.precert_entry(5, b"\x11" * 32, b"TBS", leaf_index_extensions(3))
TILE_LEAF = TileLeaf(ENTRY, b"PRECERT", (b"\x22" * 32,))
TILE = (
    TILE_LEAF.encode()
    + TileLeaf(TimestampedEntry.x509_entry(1, b"C", leaf_index_extensions(4)), None, ()).encode()
)
EXT_VALUE = next(
    e.value for e in der.tbs_extensions(der.certificate_tbs(CERT)) if e.oid == der.OID_SCT_LIST
)

# (decoder, a valid input) -- every decoder of the package that takes bytes.
BYTE_DECODERS: dict[str, tuple[Callable[[bytes], object], bytes]] = {
    "DigitallySigned": (DigitallySigned.decode, SCT.signature.encode()),
    "SignedCertificateTimestamp": (SignedCertificateTimestamp.decode, SCT.encode()),
    "SctList": (SctList.decode, SCTS.encode()),
    "sct_list_from_extension_value": (sct_list_from_extension_value, EXT_VALUE),
    "TimestampedEntry": (TimestampedEntry.decode, ENTRY.encode()),
    "MerkleTreeLeaf": (MerkleTreeLeaf.decode, MerkleTreeLeaf(ENTRY).encode()),
    "CertificateChain": (CertificateChain.decode, CertificateChain((ISSUER, b"x")).encode()),
    "PrecertChainEntry": (PrecertChainEntry.decode, PrecertChainEntry(PRECERT, (ISSUER,)).encode()),
    "RFC6962NoteSignature": (
        RFC6962NoteSignature.decode,
        RFC6962NoteSignature(7, SCT.signature).encode(),
    ),
    "SignedNote": (SignedNote.decode, ROME_NOTE.encode()),
    "Checkpoint.from_bytes": (
        lambda b: Checkpoint.from_text(b.decode("utf-8", "surrogateescape")),
        SignedNote.decode(ROME_NOTE).text.encode(),
    ),
    "TileLeaf": (TileLeaf.decode, TILE_LEAF.encode()),
    "decode_data_tile": (lambda b: decode_data_tile(b, 2, first_index=3), TILE),
    "decode_hash_tile": (lambda b: decode_hash_tile(b, 2), b"\x01" * 64),
    "decode_ct_extensions": (decode_ct_extensions, leaf_index_extensions(9) + b"\x01\x00\x01z"),
    "leaf_index_from_extensions": (leaf_index_from_extensions, leaf_index_extensions(9)),
    "scts_from_certificate": (scts_from_certificate, CERT),
    "tbs_for_ct(final)": (tbs_for_ct, CERT),
    "tbs_for_ct(precert)": (tbs_for_ct, PRECERT),
    "issuer_key_hash": (issuer_key_hash, ISSUER),
    "certificate_tbs": (der.certificate_tbs, CERT),
}


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with one to four random edits, or sometimes plain random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=len(valid) + 16))
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[position : position + draw(st.integers(1, 8))]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(BYTE_DECODERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decoders_raise_only_decode_error(name: str, data: st.DataObject) -> None:
    decode, valid = BYTE_DECODERS[name]
    decode(valid)  # the sample itself decodes
    candidate = data.draw(mutated(valid))
    with contextlib.suppress(DecodeError):
        decode(candidate)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_text_decoders_raise_only_decode_error(text: str) -> None:
    for decode in (SignedNote.decode, Checkpoint.from_text, parse_tile_path):
        with contextlib.suppress(DecodeError):
            decode(text)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 70), 1 << 70)
    | st.floats(allow_nan=True)
    | st.text(max_size=60),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "sct_version",
                "id",
                "timestamp",
                "extensions",
                "signature",
                "tree_size",
                "sha256_root_hash",
                "tree_head_signature",
            ]
        ),
        json_values,
    ),
    st.data(),
)
def test_json_decoders_raise_only_decode_error(
    body: dict[str, object], data: st.DataObject
) -> None:
    base = {**SCT.to_json(), **REAL["sths"]["google_argon2024"]}
    for candidate in (body, {**base, **body}, data.draw(json_values)):
        for decode in (SignedCertificateTimestamp.from_json, SignedTreeHead.from_json):
            with contextlib.suppress(DecodeError):
                decode(candidate)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_checkpoint_verification_raises_only_documented_errors(data: st.DataObject) -> None:
    note = data.draw(mutated(ROME_NOTE.encode()))
    with contextlib.suppress(DecodeError, CheckpointVerificationError):
        verify_checkpoint(note, "rome.ct.filippo.io/2024h1", ROME_KEY)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_sct_verification_on_mutated_certificates_raises_only_sct_errors(
    data: st.DataObject,
) -> None:
    certificate = data.draw(mutated(CERT))
    issuer = data.draw(st.sampled_from([ISSUER, data.draw(mutated(ISSUER))]))
    with contextlib.suppress(SctVerificationError):
        verify_sct(SCT, SCT_KEY, certificate=certificate, issuer=issuer, now_ms=1 << 62)
