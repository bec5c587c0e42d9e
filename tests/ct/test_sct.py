"""SCT and STH signing and verification, against real logs and our own precert/final pairs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ctstatus.ct import DecodeError, FailureReason, SctVerificationError, SthVerificationError
from ctstatus.ct.sct import (
    is_precertificate,
    issuer_key_hash,
    log_id,
    sign_sct,
    sign_timestamped_entry,
    sign_tree_head,
    tbs_for_ct,
    verify_sct,
    verify_sct_for_entry,
    verify_tree_head,
)
from ctstatus.ct.structures import (
    DigitallySigned,
    HashAlgorithm,
    LogEntryType,
    SignatureAlgorithm,
    SignedCertificateTimestamp,
    SignedTreeHead,
    TimestampedEntry,
    Version,
    scts_from_certificate,
)
from ctstatus.keys.signer import InProcessSigner

NOW = 1_800_000_000_000
FAR_FUTURE = (1 << 64) - 1


def flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(data)


def reason_of(check: Callable[[], None]) -> FailureReason:
    with pytest.raises(SctVerificationError) as caught:
        check()
    return caught.value.reason


# --- real SCTs from real logs -------------------------------------------------------------


@pytest.fixture(scope="module")
def real_scts(
    real: dict[str, Any], vector: Callable[[str], bytes], load_key: Callable[[str], Any]
) -> list[tuple[str, SignedCertificateTimestamp, Any]]:
    certificate = vector("x509/cryptography-scts.pem")
    found = scts_from_certificate(certificate)
    assert found is not None
    by_id = {
        entry["log_id"]: (name, entry) for name, entry in real["logs"].items() if "log_id" in entry
    }
    result = []
    for sct in found.scts:
        name, entry = by_id[base64.b64encode(sct.log_id).decode()]
        result.append((name, sct, load_key(entry["key"])))
    assert sorted(name for name, _, _ in result) == ["google_icarus", "sectigo_mammoth"]
    return result


def test_log_ids_of_real_keys_match_the_log_list(
    real: dict[str, Any], load_key: Callable[[str], Any]
) -> None:
    for entry in real["logs"].values():
        key = load_key(entry["key"])
        spki = base64.b64decode(entry["key"])
        assert log_id(key) == log_id(spki) == hashlib.sha256(spki).digest()
        if "log_id" in entry:
            assert base64.b64encode(log_id(key)).decode() == entry["log_id"]


def test_real_embedded_scts_verify(
    real_scts: list[tuple[str, SignedCertificateTimestamp, Any]],
    vector: Callable[[str], bytes],
) -> None:
    certificate = vector("x509/cryptography-scts.pem")
    issuer = vector("x509/letsencryptx3.pem")
    parsed = x509.load_der_x509_certificate(certificate)
    for _, sct, key in real_scts:
        verify_sct(sct, key, certificate=certificate, issuer=issuer, now_ms=NOW)
        verify_sct(
            sct,
            key,
            certificate=parsed,
            issuer=x509.load_der_x509_certificate(issuer),
            now_ms=sct.timestamp_ms,
        )


def test_real_tbs_matches_cryptography_and_the_vector_file(vector: Callable[[str], bytes]) -> None:
    certificate = vector("x509/cryptography-scts.pem")
    expected = vector("x509/cryptography-scts-tbs-precert.der")
    assert tbs_for_ct(certificate) == expected
    assert x509.load_der_x509_certificate(certificate).tbs_precertificate_bytes == expected
    assert not is_precertificate(certificate)


def test_real_issuer_key_hash_is_over_the_spki(vector: Callable[[str], bytes]) -> None:
    issuer = x509.load_der_x509_certificate(vector("x509/letsencryptx3.pem"))
    spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert issuer_key_hash(issuer) == hashlib.sha256(spki).digest()


def test_every_single_bit_flip_breaks_a_real_sct(
    real_scts: list[tuple[str, SignedCertificateTimestamp, Any]],
    vector: Callable[[str], bytes],
) -> None:
    """Any one bit of signature, timestamp, TBS, issuer key hash or extensions changed: refused."""
    tbs = vector("x509/cryptography-scts-tbs-precert.der")
    key_hash = issuer_key_hash(vector("x509/letsencryptx3.pem"))
    checked = 0
    for _, sct, key in real_scts:

        def check(
            candidate: SignedCertificateTimestamp,
            entry: bytes = tbs,
            ikh: bytes = key_hash,
            key: Any = key,
        ) -> None:
            verify_sct_for_entry(
                candidate,
                key,
                entry_type=LogEntryType.PRECERT_ENTRY,
                signed_entry=entry,
                issuer_key_hash=ikh,
                now_ms=FAR_FUTURE,
            )

        check(sct)
        signature = sct.signature.signature
        for bit in range(len(signature) * 8):
            forged = DigitallySigned(
                sct.signature.hash_alg, sct.signature.sig_alg, flip(signature, bit)
            )
            bad = SignedCertificateTimestamp(
                sct.version, sct.log_id, sct.timestamp_ms, sct.extensions, forged
            )
            assert reason_of(partial(check, bad)) is FailureReason.BAD_SIGNATURE
            checked += 1
        for bit in range(64):
            bad = SignedCertificateTimestamp(
                sct.version,
                sct.log_id,
                sct.timestamp_ms ^ (1 << bit),
                sct.extensions,
                sct.signature,
            )
            assert reason_of(partial(check, bad)) is FailureReason.BAD_SIGNATURE
            checked += 1
        for bit in range(len(tbs) * 8):
            assert reason_of(partial(check, sct, flip(tbs, bit))) is FailureReason.BAD_SIGNATURE
            checked += 1
        for bit in range(256):
            assert (
                reason_of(partial(check, sct, tbs, flip(key_hash, bit)))
                is FailureReason.BAD_SIGNATURE
            )
            checked += 1
        with_extension = SignedCertificateTimestamp(
            sct.version, sct.log_id, sct.timestamp_ms, b"\x00", sct.signature
        )
        assert reason_of(partial(check, with_extension)) is FailureReason.BAD_SIGNATURE
    assert checked > 2 * 8000


def test_real_sct_failure_reasons(
    real_scts: list[tuple[str, SignedCertificateTimestamp, Any]],
    vector: Callable[[str], bytes],
) -> None:
    certificate = vector("x509/cryptography-scts.pem")
    issuer = vector("x509/letsencryptx3.pem")
    (_, first, first_key), (_, second, _) = real_scts

    def check(sct: SignedCertificateTimestamp, key: Any = first_key, **kwargs: Any) -> None:
        arguments: dict[str, Any] = {"certificate": certificate, "issuer": issuer, "now_ms": NOW}
        arguments.update(kwargs)
        verify_sct(sct, key, **arguments)

    assert reason_of(lambda: check(second)) is FailureReason.WRONG_LOG_ID
    assert reason_of(lambda: check(first, now_ms=first.timestamp_ms - 1)) is (
        FailureReason.FUTURE_TIMESTAMP
    )
    # Checked as an x509_entry (no issuer) it is the wrong entry, so the signature fails.
    assert reason_of(lambda: check(first, issuer=None)) is FailureReason.BAD_SIGNATURE
    # The wrong issuer changes the issuer key hash.
    assert reason_of(lambda: check(first, issuer=certificate)) is FailureReason.BAD_SIGNATURE
    for hash_alg in (HashAlgorithm.SHA1, HashAlgorithm.SHA384, HashAlgorithm.NONE):
        bad = SignedCertificateTimestamp(
            first.version,
            first.log_id,
            first.timestamp_ms,
            first.extensions,
            DigitallySigned(hash_alg, first.signature.sig_alg, first.signature.signature),
        )
        assert reason_of(partial(check, bad)) is FailureReason.UNSUPPORTED_ALGORITHM
    for sig_alg, reason in [
        (SignatureAlgorithm.DSA, FailureReason.UNSUPPORTED_ALGORITHM),
        (SignatureAlgorithm.ANONYMOUS, FailureReason.UNSUPPORTED_ALGORITHM),
        (SignatureAlgorithm.RSA, FailureReason.ALGORITHM_MISMATCH),
    ]:
        bad = SignedCertificateTimestamp(
            first.version,
            first.log_id,
            first.timestamp_ms,
            first.extensions,
            DigitallySigned(first.signature.hash_alg, sig_alg, first.signature.signature),
        )
        assert reason_of(partial(check, bad)) is reason
    garbage = b"\x30\x03\x02\x01"
    assert reason_of(lambda: check(first, certificate=garbage)) is FailureReason.MALFORMED_INPUT


# --- signing, and our own precertificate / final certificate pairs ------------------------


@pytest.mark.parametrize("log_name", ["ec_log", "rsa_log"])
def test_sign_and_verify_both_entry_types(
    log_name: str, request: pytest.FixtureRequest, ca: Any
) -> None:
    log: InProcessSigner = request.getfixturevalue(log_name)
    key = log.public_key()
    precert, _ = ca.pair()
    tbs = tbs_for_ct(precert)
    ikh = issuer_key_hash(ca.der)

    sct = sign_sct(log, LogEntryType.PRECERT_ENTRY, NOW - 5, (ikh, tbs))
    assert sct.log_id == log_id(key)
    expected_alg = SignatureAlgorithm.RSA if log_name == "rsa_log" else SignatureAlgorithm.ECDSA
    assert sct.signature.sig_alg is expected_alg
    assert sct.signature.hash_alg is HashAlgorithm.SHA256
    verify_sct(sct, key, certificate=precert, issuer=ca.der, now_ms=NOW)
    verify_sct(sct, key, certificate=precert, issuer=ca.certificate, now_ms=NOW - 5)

    leaf = ca.certificate.public_bytes(serialization.Encoding.DER)
    x509_sct = sign_sct(
        log, LogEntryType.X509_ENTRY, NOW, leaf, b"\x00\x00\x05\x00\x00\x00\x00\x07"
    )
    assert x509_sct.extensions == b"\x00\x00\x05\x00\x00\x00\x00\x07"
    verify_sct(x509_sct, key, certificate=leaf, now_ms=NOW)
    assert reason_of(
        lambda: verify_sct(x509_sct, key, certificate=leaf, issuer=ca.der, now_ms=NOW)
    ) is (FailureReason.BAD_SIGNATURE)


def test_precert_sct_verifies_on_the_final_certificate(
    ca: Any, ec_log: InProcessSigner, rsa_log: InProcessSigner
) -> None:
    """The add-pre-chain SCT, embedded in the final certificate, still verifies there."""
    issuance = ca.issue()
    precert = issuance.precert()
    entry = TimestampedEntry.precert_entry(
        NOW, issuer_key_hash(ca.certificate), tbs_for_ct(precert)
    )
    scts = [sign_timestamped_entry(ec_log, entry), sign_timestamped_entry(rsa_log, entry)]
    final = issuance.final(scts)
    assert is_precertificate(precert)
    assert not is_precertificate(final)
    for sct, log in zip(scts, (ec_log, rsa_log), strict=True):
        verify_sct(sct, log.public_key(), certificate=precert, issuer=ca.der, now_ms=NOW)
        verify_sct(sct, log.public_key(), certificate=final, issuer=ca.der, now_ms=NOW)


@pytest.mark.parametrize(
    ("poison_position", "sct_position"),
    [(None, None), (0, 0), (2, None), (None, 1), (3, 5), (0, None)],
)
def test_precert_and_final_tbs_are_byte_identical(
    ca: Any, ec_log: InProcessSigner, poison_position: int | None, sct_position: int | None
) -> None:
    """Poison out of the precert == SCT list out of the final, wherever each one sat."""
    sct = sign_sct(ec_log, LogEntryType.PRECERT_ENTRY, NOW, (bytes(32), b"x"))
    precert, final = ca.pair([sct], poison_position=poison_position, sct_position=sct_position)
    from_precert = tbs_for_ct(precert)
    assert from_precert == tbs_for_ct(final)
    assert from_precert == x509.load_der_x509_certificate(final).tbs_precertificate_bytes
    assert len(from_precert) < len(x509.load_der_x509_certificate(precert).tbs_certificate_bytes)
    # An independent implementation (asn1crypto) removing the poison agrees byte for byte.
    assert from_precert == asn1_without_extension(precert, "1.3.6.1.4.1.11129.2.4.3")


def asn1_without_extension(certificate_der: bytes, oid: str) -> bytes:
    """Remove one extension with asn1crypto: a cross-check that shares no code with ours."""
    tbs = asn1_x509.Certificate.load(certificate_der)["tbs_certificate"]
    kept = [e for e in tbs["extensions"] if e["extn_id"].dotted != oid]
    tbs = tbs.copy()
    tbs["extensions"] = asn1_x509.Extensions(kept)
    dumped: bytes = tbs.dump(force=False)
    return dumped


def test_real_precertificate_tbs_matches_asn1crypto(vector: Callable[[str], bytes]) -> None:
    precert = vector("x509/cryptography.io.precert.pem")
    assert is_precertificate(precert)
    tbs = tbs_for_ct(precert)
    assert tbs == asn1_without_extension(precert, "1.3.6.1.4.1.11129.2.4.3")
    original = x509.load_der_x509_certificate(precert).tbs_certificate_bytes
    assert len(original) - len(tbs) == len(
        bytes.fromhex("3013060a2b06010401d679020403 0101ff 04020500".replace(" ", ""))
    )


def test_extension_order_mismatch_breaks_the_sct(ca: Any, ec_log: InProcessSigner) -> None:
    """Spec digest §1.5 pitfall: a final certificate whose extensions moved fails every SCT."""
    issuance = ca.issue(poison_position=0)
    precert = issuance.precert()
    sct = sign_sct(
        ec_log, LogEntryType.PRECERT_ENTRY, NOW, (issuer_key_hash(ca.der), tbs_for_ct(precert))
    )
    # The SCT list takes the poison's place, so nothing else moves: it verifies. Then the same
    # certificate with its first two extensions moved to the end: it must not.
    final = issuance.final([sct], sct_position=0)
    verify_sct(sct, ec_log.public_key(), certificate=final, issuer=ca.der, now_ms=NOW)
    reordered = reorder_first_extension_last(final, ca)
    assert (
        reason_of(
            lambda: verify_sct(
                sct, ec_log.public_key(), certificate=reordered, issuer=ca.der, now_ms=NOW
            )
        )
        is FailureReason.BAD_SIGNATURE
    )


def reorder_first_extension_last(certificate_der: bytes, ca: Any) -> bytes:
    certificate = x509.load_der_x509_certificate(certificate_der)
    extensions = list(certificate.extensions)
    builder = (
        x509.CertificateBuilder()
        .subject_name(certificate.subject)
        .issuer_name(certificate.issuer)
        .public_key(certificate.public_key())
        .serial_number(certificate.serial_number)
        .not_valid_before(certificate.not_valid_before_utc)
        .not_valid_after(certificate.not_valid_after_utc)
    )
    for extension in [*extensions[2:], *extensions[:2]]:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_poison_and_sct_list_together_are_malformed(ca: Any, ec_log: InProcessSigner) -> None:
    sct = sign_sct(ec_log, LogEntryType.PRECERT_ENTRY, NOW, (bytes(32), b"x"))
    precert, _ = ca.pair()
    both = x509.load_der_x509_certificate(precert)
    builder = (
        x509.CertificateBuilder()
        .subject_name(both.subject)
        .issuer_name(both.issuer)
        .public_key(both.public_key())
        .serial_number(both.serial_number)
        .not_valid_before(both.not_valid_before_utc)
        .not_valid_after(both.not_valid_after_utc)
        .add_extension(x509.PrecertPoison(), critical=True)
    )
    from ctstatus.ct.structures import sct_list_extension

    builder = builder.add_extension(sct_list_extension([sct]), critical=False)
    bad = builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    with pytest.raises(DecodeError, match="both"):
        tbs_for_ct(bad)
    assert (
        reason_of(
            lambda: verify_sct(sct, ec_log.public_key(), certificate=bad, issuer=ca.der, now_ms=NOW)
        )
        is FailureReason.MALFORMED_INPUT
    )


def test_poison_as_the_only_extension_drops_the_extensions_field(ca: Any) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    base = (
        x509.CertificateBuilder()
        .subject_name(ca.certificate.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(99)
        .not_valid_before(ca.certificate.not_valid_before_utc)
        .not_valid_after(ca.certificate.not_valid_after_utc)
    )
    plain = base.sign(ca.key, hashes.SHA256())
    precert = base.add_extension(x509.PrecertPoison(), critical=True).sign(ca.key, hashes.SHA256())
    assert tbs_for_ct(precert) == plain.tbs_certificate_bytes
    assert tbs_for_ct(plain) == plain.tbs_certificate_bytes


def test_unsupported_log_keys() -> None:
    weak_rsa = rsa.generate_private_key(65537, 1024)  # noqa: S505 (the point: it is refused)
    for private in (ec.generate_private_key(ec.SECP384R1()), weak_rsa):
        public = private.public_key()
        sct = SignedCertificateTimestamp(
            Version.V1,
            log_id(public),
            0,
            b"",
            DigitallySigned(
                HashAlgorithm.SHA256,
                SignatureAlgorithm.ECDSA
                if isinstance(public, ec.EllipticCurvePublicKey)
                else SignatureAlgorithm.RSA,
                b"",
            ),
        )
        assert (
            reason_of(
                partial(
                    verify_sct_for_entry,
                    sct,
                    public,
                    entry_type=LogEntryType.X509_ENTRY,
                    signed_entry=b"cert",
                    now_ms=NOW,
                )
            )
            is FailureReason.UNSUPPORTED_LOG_KEY
        )


def test_p384_signer_cannot_sign_for_a_log() -> None:
    signer = InProcessSigner(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="P-256 or RSA"):
        sign_sct(signer, LogEntryType.X509_ENTRY, 0, b"cert")
    with pytest.raises(ValueError, match="P-256 or RSA"):
        sign_tree_head(signer, 0, 0, bytes(32))


def test_sign_sct_argument_shapes(ec_log: InProcessSigner) -> None:
    with pytest.raises(TypeError):
        sign_sct(ec_log, LogEntryType.X509_ENTRY, 0, (bytes(32), b"tbs"))
    with pytest.raises(TypeError):
        sign_sct(ec_log, LogEntryType.PRECERT_ENTRY, 0, b"tbs")


# --- signed tree heads --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["digicert_yeti2018", "google_argon2024"])
def test_real_sths_verify_and_bit_flips_fail(
    name: str, real: dict[str, Any], load_key: Callable[[str], Any]
) -> None:
    key = load_key(real["logs"][name]["key"])
    sth = SignedTreeHead.from_json(real["sths"][name])
    verify_tree_head(sth, key)
    verify_tree_head(sth, key, now_ms=sth.timestamp)
    with pytest.raises(SthVerificationError) as caught:
        verify_tree_head(sth, key, now_ms=sth.timestamp - 1)
    assert caught.value.reason is FailureReason.FUTURE_TIMESTAMP
    variants = [
        SignedTreeHead(sth.tree_size ^ (1 << bit), sth.timestamp, sth.root_hash, sth.signature)
        for bit in range(64)
    ]
    variants += [
        SignedTreeHead(sth.tree_size, sth.timestamp ^ (1 << bit), sth.root_hash, sth.signature)
        for bit in range(64)
    ]
    variants += [
        SignedTreeHead(sth.tree_size, sth.timestamp, flip(sth.root_hash, bit), sth.signature)
        for bit in range(256)
    ]
    for variant in variants:
        with pytest.raises(SthVerificationError) as caught:
            verify_tree_head(variant, key)
        assert caught.value.reason is FailureReason.BAD_SIGNATURE


@pytest.mark.parametrize("log_name", ["ec_log", "rsa_log"])
def test_sign_tree_head_round_trip(log_name: str, request: pytest.FixtureRequest) -> None:
    log: InProcessSigner = request.getfixturevalue(log_name)
    sth = sign_tree_head(log, 10, NOW, b"\x07" * 32)
    verify_tree_head(sth, log.public_key(), now_ms=NOW)
    assert SignedTreeHead.from_json(sth.to_json()) == sth
    other = InProcessSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(SthVerificationError):
        verify_tree_head(sth, other.public_key())
