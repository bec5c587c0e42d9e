"""PKCS#11 signer: URIs, errors, and real signing in a throwaway SoftHSM2 checked by openssl.

SoftHSM reads ``SOFTHSM2_CONF`` (and its list of tokens) once, at ``C_Initialize``, and a module
is initialised once per process; so the SoftHSM fixture is session-scoped, points the variable at
a temporary config before anything loads the module, and creates every token up front.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pkcs11 import exceptions as p11err

from ctstatus.errors import SigningKeyError
from ctstatus.keys import pkcs11 as p11
from ctstatus.keys.assemble import sign_certificate, sign_crl
from ctstatus.keys.pkcs11 import (
    Pkcs11KeyRef,
    Pkcs11Signer,
    Pkcs11UriError,
    destroy_pkcs11_key,
    generate_pkcs11_key,
    map_pkcs11_error,
    parse_pkcs11_uri,
)
from ctstatus.keys.signer import KeyAlgorithm, Signer, verify_signature
from ctstatus.secrets import Secret

softhsm_test = pytest.mark.softhsm
WRONG_PIN = "wrong-pin-731"  # distinctive, so a leak into a message is easy to spot
ALGORITHMS = [KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ECDSA_P384, KeyAlgorithm.RSA_2048]


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoftHsm:
    module: str
    token: str
    other_token: str
    pin: str
    so_pin: str


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CTSTATUS_REQUIRE_SOFTHSM") == "1":
        pytest.fail(f"SoftHSM2 is required (CTSTATUS_REQUIRE_SOFTHSM=1) but {reason}")
    pytest.skip(f"SoftHSM2 not available: {reason}")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    util = shutil.which("softhsm2-util")
    if util is None:
        _unavailable("softhsm2-util is not installed (Debian package softhsm2)")
    if not os.path.exists(p11.SOFTHSM_MODULE):
        _unavailable(f"{p11.SOFTHSM_MODULE} is missing")
    if p11._modules:
        pytest.fail("a PKCS#11 module was initialised before SOFTHSM2_CONF could be set")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    hsm = SoftHsm(p11.SOFTHSM_MODULE, "ctstatus-test", "ctstatus-other", "1234", "5678")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))  # before the first pkcs11.lib() load
        pins = ["--pin", hsm.pin, "--so-pin", hsm.so_pin]
        for label in (hsm.token, hsm.other_token):
            subprocess.run(
                [util, "--init-token", "--free", "--label", label, *pins],
                check=True,
                capture_output=True,
            )
        yield hsm


def _label(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module", params=ALGORITHMS, ids=[a.value for a in ALGORITHMS])
def token_key(request: pytest.FixtureRequest, softhsm: SoftHsm) -> Iterator[Pkcs11KeyRef]:
    """A key generated in the token (once per module: RSA keygen is slow), closed after."""
    algorithm: KeyAlgorithm = request.param
    with generate_pkcs11_key(
        softhsm.module, softhsm.token, _label(algorithm.value), algorithm, softhsm.pin
    ) as signer:
        ref = signer.key_ref
    yield ref
    destroy_pkcs11_key(softhsm.module, ref, softhsm.pin)


@pytest.fixture
def signer(softhsm: SoftHsm, token_key: Pkcs11KeyRef) -> Iterator[Pkcs11Signer]:
    with Pkcs11Signer(softhsm.module, token_key, softhsm.pin) as opened:
        yield opened


def _pkcs11_tool(softhsm: SoftHsm, *args: str) -> str:
    tool = shutil.which("pkcs11-tool")
    if tool is None:
        _unavailable("pkcs11-tool (Debian opensc) is not installed")
    login = ["--login", "--pin", softhsm.pin]
    result = subprocess.run(
        [tool, "--module", softhsm.module, "--token-label", softhsm.token, *login, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("openssl") is None:
        _unavailable("openssl is not installed")
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def _assert_no_pin(error: BaseException, *pins: str) -> None:
    texts = [str(error), repr(error), getattr(error, "hint", None) or ""]
    for pin in pins:
        for text in texts:
            assert pin not in text


# --------------------------------------------------------------------------------------------
# URIs (no token needed)
# --------------------------------------------------------------------------------------------


def test_parse_basic_uri() -> None:
    ref = parse_pkcs11_uri("pkcs11:token=ctstatus;object=issuing-ca-2026")
    assert ref == Pkcs11KeyRef(token="ctstatus", label="issuing-ca-2026")
    assert ref.uri == "pkcs11:token=ctstatus;object=issuing-ca-2026"
    assert str(ref) == ref.uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "pkcs11:token=Software%20PKCS%2311%20softtoken;object=my%20key",
            Pkcs11KeyRef("Software PKCS#11 softtoken", "my key"),
        ),
        ("pkcs11:token=t;id=%01%ff%A0", Pkcs11KeyRef("t", key_id=b"\x01\xff\xa0")),
        ("pkcs11:object=k;token=t;type=private", Pkcs11KeyRef("t", "k")),
        ("PKCS11:token=t;object=k", Pkcs11KeyRef("t", "k")),
        ("pkcs11:token=t;object=a:b@c,d&e=f+g", Pkcs11KeyRef("t", "a:b@c,d&e=f+g")),
        ("pkcs11:token=%C3%A9t%C3%A9;object=cl%C3%A9", Pkcs11KeyRef("été", "clé")),
        ("pkcs11:token=t;object=k;id=%00", Pkcs11KeyRef("t", "k", b"\x00")),
    ],
)
def test_parse_percent_encoding(uri: str, expected: Pkcs11KeyRef) -> None:
    assert parse_pkcs11_uri(uri) == expected


@pytest.mark.parametrize(
    "ref",
    [
        Pkcs11KeyRef("ctstatus", "issuing-ca-2026"),
        Pkcs11KeyRef("with space", "semi;colon?query%percent/slash#hash"),
        Pkcs11KeyRef("ünïcødé", "键", bytes(range(256))),
        Pkcs11KeyRef("t", key_id=b"\x00\x01;=%"),
        Pkcs11KeyRef("a" * 32, "=&,:@"),
    ],
)
def test_uri_round_trip(ref: Pkcs11KeyRef) -> None:
    uri = ref.uri
    assert uri.isascii()
    assert parse_pkcs11_uri(uri) == ref
    assert parse_pkcs11_uri(uri).uri == uri


def test_uri_rendering_is_canonical() -> None:
    ref = Pkcs11KeyRef("my token", "key:1", b"\xab\x01")
    assert ref.uri == "pkcs11:token=my%20token;object=key%3A1;id=%AB%01"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("", "not a PKCS#11 URI"),
        ("token=t;object=k", "not a PKCS#11 URI"),
        ("https://example.com/key", "not a PKCS#11 URI"),
        ("pkcs11:", "names no token or key"),
        ("pkcs11:object=k", "names no token"),
        ("pkcs11:token=t", "names no key"),
        ("pkcs11:token=;object=k", "needs a token label"),
        ("pkcs11:token=t;object=", "must not be empty"),
        ("pkcs11:token=t;id=", "must not be empty"),
        ("pkcs11:token=t;object=k;object=j", "appears twice"),
        ("pkcs11:token=t;;object=k", "empty attribute"),
        ("pkcs11:token=t;object=k;", "empty attribute"),
        ("pkcs11:token=t;object", "has no '=value'"),
        ("pkcs11:token=t;object=a%2", "bad percent-encoding"),
        ("pkcs11:token=t;object=a%zz", "bad percent-encoding"),
        ("pkcs11:token=t;object=a%", "bad percent-encoding"),
        ("pkcs11:token=t;object=a b", "must be percent-encoded"),
        ("pkcs11:token=t;object=a/b", "must be percent-encoded"),
        ("pkcs11:token=t;object=clé", "must be percent-encoded"),
        ("pkcs11:token=t;object=%ff", "not UTF-8"),
        ("pkcs11:token=t;object=k;serial=1234", "not supported"),
        ("pkcs11:token=t;slot-id=0;object=k", "not supported"),
        ("pkcs11:token=t;Object=k", "unknown PKCS#11 URI attribute"),
        ("pkcs11:token=t;x-vendor=1;object=k", "unknown PKCS#11 URI attribute"),
        ("pkcs11:token=t;object=k;type=cert", "only a private key can sign"),
        ("pkcs11:token=t;object=k;type=public", "only a private key can sign"),
        ("pkcs11:token=t;object=k?module-path=/usr/lib/x.so", "query attributes"),
        ("pkcs11:token=t;object=k#frag", "fragment"),
        (f"pkcs11:token={'a' * 33};object=k", "longer than 32 bytes"),
    ],
)
def test_malformed_uri(uri: str, fragment: str) -> None:
    with pytest.raises(Pkcs11UriError) as caught:
        parse_pkcs11_uri(uri)
    assert fragment in caught.value.message
    assert caught.value.hint
    assert isinstance(caught.value, SigningKeyError)


def test_uri_with_pin_value_is_refused_without_echoing_the_pin() -> None:
    with pytest.raises(Pkcs11UriError) as caught:
        parse_pkcs11_uri(f"pkcs11:token=t;object=k?pin-value={WRONG_PIN}")
    assert "pin-value" in caught.value.message
    _assert_no_pin(caught.value, WRONG_PIN)


# --------------------------------------------------------------------------------------------
# Error mapping (no token needed)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (p11err.PinIncorrect(), "the PIN for token 'tok' is wrong"),
        (p11err.PinLocked(), "the user PIN of token 'tok' is locked"),
        (p11err.PinLenRange(), "not a valid PIN"),
        (p11err.PinExpired(), "has expired"),
        (p11err.UserPinNotInitialized(), "has no user PIN set"),
        (p11err.TokenNotPresent(), "went away"),
        (p11err.DeviceError(), "failed to sign (DeviceError)"),
        (p11err.PKCS11Error("Unmapped error 0x1234"), "failed to sign (PKCS11Error: Unmapped"),
    ],
)
def test_map_pkcs11_error(exc: p11err.PKCS11Error, fragment: str) -> None:
    error = map_pkcs11_error(exc, token="tok", action="sign")
    assert isinstance(error, SigningKeyError)
    assert fragment in error.message
    assert error.hint


def test_pin_must_be_text() -> None:
    with pytest.raises(SigningKeyError, match="must be text"):
        Pkcs11Signer("/nonexistent.so", "pkcs11:token=t;object=k", 1234)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Signing in SoftHSM
# --------------------------------------------------------------------------------------------


@softhsm_test
def test_signer_reads_the_key_from_the_token(signer: Pkcs11Signer, token_key: Pkcs11KeyRef) -> None:
    assert isinstance(signer, Signer)
    assert signer.private_key() is None
    assert signer.description == token_key.uri
    assert parse_pkcs11_uri(signer.description) == token_key
    public = signer.public_key()
    assert KeyAlgorithm.of(public) is signer.algorithm
    assert token_key.label is not None
    assert token_key.label.startswith(signer.algorithm.value)
    if signer.algorithm.is_ec:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.name == signer.algorithm.curve.name
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == signer.algorithm.rsa_bits


@softhsm_test
def test_sign_verifies(signer: Pkcs11Signer) -> None:
    data = b"tbs bytes" * 1000  # longer than python-pkcs11's 8 KiB buffer
    signature = signer.sign(data)
    assert verify_signature(signer.public_key(), signature, data)
    assert not verify_signature(signer.public_key(), signature, data + b"x")
    if signer.algorithm.is_ec:  # DER Ecdsa-Sig-Value, randomised
        assert signature[0] == 0x30
        assert signer.sign(data) != signature
    else:  # PKCS#1 v1.5 is deterministic
        assert signer.sign(data) == signature


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@softhsm_test
def test_certificates_signed_in_the_token_verify_with_openssl(
    signer: Pkcs11Signer, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca_public = signer.public_key()
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_public)
    root = sign_certificate(
        x509.CertificateBuilder()
        .subject_name(_name(f"ctstatus test root {signer.algorithm.value}"))
        .issuer_name(_name(f"ctstatus test root {signer.algorithm.value}"))
        .public_key(ca_public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        ),
        signer,
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = sign_certificate(
        x509.CertificateBuilder()
        .subject_name(_name("example.com"))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("example.com")]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        ),
        signer,
    )
    crl = sign_crl(
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        ),
        signer,
    )
    expected_hash = signer.algorithm.hash_algorithm
    assert isinstance(root.signature_hash_algorithm, type(expected_hash))
    assert isinstance(leaf.signature_hash_algorithm, type(expected_hash))

    root_pem, leaf_pem, crl_pem = tmp_path / "root.pem", tmp_path / "leaf.pem", tmp_path / "crl.pem"
    root_pem.write_bytes(root.public_bytes(Encoding.PEM))
    leaf_pem.write_bytes(leaf.public_bytes(Encoding.PEM))
    crl_pem.write_bytes(crl.public_bytes(Encoding.PEM))

    verified = _openssl("verify", "-x509_strict", "-CAfile", str(root_pem), str(leaf_pem))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip() == f"{leaf_pem}: OK"
    root_ok = _openssl("verify", "-x509_strict", "-CAfile", str(root_pem), str(root_pem))
    assert root_ok.returncode == 0, root_ok.stdout + root_ok.stderr

    text = _openssl("x509", "-noout", "-text", "-in", str(root_pem))
    assert text.returncode == 0, text.stderr
    assert "CA:TRUE" in text.stdout
    assert "Certificate Sign" in text.stdout
    crl_check = _openssl("crl", "-noout", "-in", str(crl_pem), "-CAfile", str(root_pem))
    assert crl_check.returncode == 0, crl_check.stderr
    assert "verify OK" in crl_check.stdout + crl_check.stderr


@softhsm_test
def test_generated_key_is_sensitive_non_extractable_and_sign_only(
    softhsm: SoftHsm, signer: Pkcs11Signer
) -> None:
    assert signer.key_ref.label is not None
    assert signer.key_ref.key_id is not None
    listing = _pkcs11_tool(softhsm, "--list-objects", "--label", signer.key_ref.label)
    private = listing.split("Private Key Object")[1].split("Public Key Object")[0]
    assert "never extractable" in private
    assert "always sensitive" in private
    usage = next(line for line in private.splitlines() if "Usage:" in line)
    assert usage.split(":", 1)[1].strip() == "sign"
    assert signer.key_ref.key_id.hex() in listing
    assert listing.count("Key Object") == 2


@softhsm_test
def test_signer_is_thread_safe_and_shares_the_token_login(
    softhsm: SoftHsm, signer: Pkcs11Signer
) -> None:
    other = Pkcs11Signer(softhsm.module, signer.key_ref.uri, softhsm.pin)
    failures: list[BaseException] = []

    def work(s: Pkcs11Signer, n: int) -> None:
        try:
            for i in range(n):
                data = f"message {i}".encode()
                assert verify_signature(s.public_key(), s.sign(data), data)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(s, 50)) for s in [signer, other] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    # Closing one signer must not log the token out from under the other.
    other.close()
    assert verify_signature(
        signer.public_key(), signer.sign(b"still logged in"), b"still logged in"
    )


# --------------------------------------------------------------------------------------------
# Lifetime, generation and rollback
# --------------------------------------------------------------------------------------------


@softhsm_test
def test_close_is_idempotent_and_closed_signer_refuses(softhsm: SoftHsm) -> None:
    label = _label("closing")
    with generate_pkcs11_key(
        softhsm.module, softhsm.token, label, KeyAlgorithm.ECDSA_P256, softhsm.pin
    ) as signer:
        assert not signer.closed
        assert softhsm.pin not in repr(signer)
    assert signer.closed
    signer.close()
    with pytest.raises(SigningKeyError, match="is closed"):
        signer.sign(b"x")
    assert destroy_pkcs11_key(softhsm.module, signer.key_ref, softhsm.pin) == 2


@softhsm_test
def test_generate_then_destroy_leaves_nothing(softhsm: SoftHsm) -> None:
    label = _label("rollback")
    signer = generate_pkcs11_key(
        softhsm.module, softhsm.token, label, KeyAlgorithm.ECDSA_P256, softhsm.pin
    )
    ref = signer.key_ref
    assert ref == Pkcs11KeyRef(softhsm.token, label, ref.key_id)
    signer.close()
    assert destroy_pkcs11_key(softhsm.module, ref, softhsm.pin) == 2
    with pytest.raises(SigningKeyError, match="no private key"):
        Pkcs11Signer(softhsm.module, ref, softhsm.pin)
    assert f"label:      {label}" not in _pkcs11_tool(softhsm, "--list-objects")
    assert destroy_pkcs11_key(softhsm.module, ref, softhsm.pin) == 0  # rollback may run twice


@softhsm_test
def test_generate_refuses_an_existing_label(softhsm: SoftHsm) -> None:
    label = _label("dup")
    with generate_pkcs11_key(
        softhsm.module, softhsm.token, label, KeyAlgorithm.ECDSA_P256, softhsm.pin
    ) as first:
        pass
    with pytest.raises(SigningKeyError, match=f"already holds an object labelled '{label}'"):
        generate_pkcs11_key(
            softhsm.module, softhsm.token, label, KeyAlgorithm.ECDSA_P384, softhsm.pin
        )
    # Nothing was added, and the first key is intact.
    assert (
        destroy_pkcs11_key(
            softhsm.module, f"pkcs11:token={softhsm.token};object={label}", softhsm.pin
        )
        == 2
    )
    with pytest.raises(SigningKeyError, match="no private key"):
        Pkcs11Signer(softhsm.module, first.key_ref, softhsm.pin)


@softhsm_test
def test_label_alone_is_enough_to_open_a_generated_key(softhsm: SoftHsm) -> None:
    label = _label("by-label")
    with generate_pkcs11_key(
        softhsm.module, softhsm.token, label, KeyAlgorithm.ECDSA_P256, softhsm.pin
    ) as generated:
        uri = f"pkcs11:token={softhsm.token};object={label}"
        with Pkcs11Signer(Path(softhsm.module), uri, Secret(softhsm.pin)) as by_label:
            assert by_label.public_key() == generated.public_key()
            assert by_label.description == uri
    destroy_pkcs11_key(softhsm.module, generated.key_ref, softhsm.pin)


# --------------------------------------------------------------------------------------------
# Failure paths
# --------------------------------------------------------------------------------------------


@softhsm_test
def test_wrong_pin(softhsm: SoftHsm, token_key: Pkcs11KeyRef) -> None:
    assert not p11._logins  # nothing logged in: this goes through the token's C_Login
    with pytest.raises(SigningKeyError) as caught:
        Pkcs11Signer(softhsm.module, token_key, WRONG_PIN)
    assert caught.value.message == f"the PIN for token '{softhsm.token}' is wrong"
    assert caught.value.__cause__ is None  # no raw pkcs11 traceback attached
    _assert_no_pin(caught.value, WRONG_PIN, softhsm.pin)


@softhsm_test
def test_wrong_pin_while_the_token_is_logged_in(softhsm: SoftHsm, signer: Pkcs11Signer) -> None:
    with pytest.raises(SigningKeyError, match="is wrong") as caught:
        Pkcs11Signer(softhsm.module, signer.key_ref, WRONG_PIN)
    _assert_no_pin(caught.value, WRONG_PIN, softhsm.pin)
    assert verify_signature(signer.public_key(), signer.sign(b"ok"), b"ok")


@softhsm_test
def test_wrong_pin_on_generate(softhsm: SoftHsm) -> None:
    with pytest.raises(SigningKeyError, match="is wrong") as caught:
        generate_pkcs11_key(
            softhsm.module, softhsm.token, _label("x"), KeyAlgorithm.ECDSA_P256, WRONG_PIN
        )
    _assert_no_pin(caught.value, WRONG_PIN)


@softhsm_test
def test_locked_pin(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    """SoftHSM never locks a PIN (it only counts failures), so the token's answer is simulated."""

    def locked(token: object, pin: Secret) -> NoReturn:
        raise p11err.PinLocked()

    monkeypatch.setattr(p11, "_open_login_session", locked)
    with pytest.raises(SigningKeyError) as caught:
        Pkcs11Signer(softhsm.module, f"pkcs11:token={softhsm.token};object=any", softhsm.pin)
    assert caught.value.message == f"the user PIN of token '{softhsm.token}' is locked"
    assert "SO PIN" in (caught.value.hint or "")
    _assert_no_pin(caught.value, softhsm.pin)


@softhsm_test
def test_absent_token_lists_the_tokens_present(softhsm: SoftHsm) -> None:
    with pytest.raises(SigningKeyError) as caught:
        Pkcs11Signer(softhsm.module, "pkcs11:token=nope;object=k", softhsm.pin)
    assert caught.value.message == (
        f"no token labelled 'nope' in {softhsm.module}; "
        f"tokens present: {softhsm.other_token}, {softhsm.token}"
    )


@softhsm_test
def test_missing_module(softhsm: SoftHsm, tmp_path: Path) -> None:
    missing = tmp_path / "libnothere.so"
    with pytest.raises(SigningKeyError, match="does not exist") as caught:
        Pkcs11Signer(missing, "pkcs11:token=t;object=k", softhsm.pin)
    assert str(missing) in caught.value.message
    assert p11.SOFTHSM_MODULE in (caught.value.hint or "")


@softhsm_test
def test_module_that_is_not_a_pkcs11_library(softhsm: SoftHsm, tmp_path: Path) -> None:
    text_file = tmp_path / "libfake.so"
    text_file.write_text("not a library\n")
    with pytest.raises(SigningKeyError, match="is not a usable PKCS#11 library"):
        Pkcs11Signer(text_file, "pkcs11:token=t;object=k", softhsm.pin)
    with pytest.raises(SigningKeyError, match="is not a file"):
        Pkcs11Signer(tmp_path, "pkcs11:token=t;object=k", softhsm.pin)
    libz = sorted(glob.glob("/usr/lib/x86_64-linux-gnu/libz.so*") + glob.glob("/lib/*/libz.so*"))
    if libz:  # a real shared library without C_GetFunctionList
        with pytest.raises(SigningKeyError, match="C_GetFunctionList"):
            Pkcs11Signer(libz[0], "pkcs11:token=t;object=k", softhsm.pin)


@softhsm_test
def test_symlinked_module_path_shares_the_loaded_module(
    softhsm: SoftHsm, signer: Pkcs11Signer
) -> None:
    real = os.path.realpath(softhsm.module)
    assert real != softhsm.module  # Debian: /usr/lib/softhsm/... -> /usr/lib/x86_64-linux-gnu/...
    with Pkcs11Signer(real, signer.key_ref, softhsm.pin) as again:
        assert again.public_key() == signer.public_key()


@softhsm_test
def test_missing_key(softhsm: SoftHsm) -> None:
    with pytest.raises(SigningKeyError) as caught:
        Pkcs11Signer(softhsm.module, f"pkcs11:token={softhsm.token};object=absent", softhsm.pin)
    assert caught.value.message == (
        f"no private key pkcs11:token={softhsm.token};object=absent in token '{softhsm.token}'"
    )


@softhsm_test
def test_more_than_one_matching_key(softhsm: SoftHsm) -> None:
    label = _label("twice")
    for key_id in ("a1", "a2"):  # pkcs11-tool does not refuse a duplicate label
        _pkcs11_tool(
            softhsm, "--keypairgen", "--key-type", "EC:prime256v1", "--label", label, "--id", key_id
        )
    uri = f"pkcs11:token={softhsm.token};object={label}"
    with pytest.raises(SigningKeyError, match="2 private keys match"):
        Pkcs11Signer(softhsm.module, uri, softhsm.pin)
    with Pkcs11Signer(softhsm.module, f"{uri};id=%A2", softhsm.pin) as one:
        assert one.algorithm is KeyAlgorithm.ECDSA_P256
    assert destroy_pkcs11_key(softhsm.module, uri, softhsm.pin) == 4


@softhsm_test
def test_unsupported_key_type_or_curve(softhsm: SoftHsm) -> None:
    for label, key_type, fragment in [
        (_label("p521"), "EC:secp521r1", "unsupported curve"),
        (_label("rsa1024"), "rsa:1024", "unsupported RSA key size 1024"),
    ]:
        _pkcs11_tool(softhsm, "--keypairgen", "--key-type", key_type, "--label", label)
        uri = f"pkcs11:token={softhsm.token};object={label}"
        with pytest.raises(SigningKeyError, match=fragment):
            Pkcs11Signer(softhsm.module, uri, softhsm.pin)
        assert destroy_pkcs11_key(softhsm.module, uri, softhsm.pin) == 2


@softhsm_test
def test_malformed_uri_given_to_the_signer(softhsm: SoftHsm) -> None:
    with pytest.raises(Pkcs11UriError, match="must be percent-encoded"):
        Pkcs11Signer(softhsm.module, f"pkcs11:token={softhsm.token};object=a b", softhsm.pin)
