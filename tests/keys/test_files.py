"""Encrypted key files: 0600, never overwritten; every failure to open is one clear error."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ctstatus.errors import SigningKeyError
from ctstatus.keys import KeyAlgorithm
from ctstatus.keys.files import generate_key_file, load_key_file
from ctstatus.keys.signer import verify_signature
from ctstatus.secrets import Secret

PASS = Secret("correct horse")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.key.pem"
    generate_key_file(path, KeyAlgorithm.ECDSA_P256, PASS)
    return path


@pytest.mark.parametrize(
    "algorithm", [KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ECDSA_P384, KeyAlgorithm.RSA_2048]
)
def test_generated_key_round_trips_and_signs(tmp_path: Path, algorithm: KeyAlgorithm) -> None:
    path = tmp_path / "k.pem"
    created = generate_key_file(path, algorithm, PASS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in path.read_bytes()
    loaded = load_key_file(path, PASS)
    assert loaded.algorithm is algorithm
    assert loaded.public_key() == created.public_key()
    assert verify_signature(created.public_key(), loaded.sign(b"tbs"), b"tbs")
    assert not verify_signature(created.public_key(), loaded.sign(b"tbs"), b"other")


def test_existing_file_is_never_overwritten(key_file: Path) -> None:
    before = key_file.read_bytes()
    with pytest.raises(FileExistsError):
        generate_key_file(key_file, KeyAlgorithm.ECDSA_P256, PASS)
    assert key_file.read_bytes() == before


def test_wrong_passphrase(key_file: Path) -> None:
    with pytest.raises(SigningKeyError, match="wrong passphrase") as error:
        load_key_file(key_file, Secret("nope"))
    assert "nope" not in str(error.value)
    assert "correct horse" not in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="does not exist"):
        load_key_file(tmp_path / "absent.pem", PASS)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_file(key_file: Path, damage: str) -> None:
    data = bytearray(key_file.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[120] ^= 0x01
    elif damage == "garbage":
        data = bytearray(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n!!!!\n")
    else:
        data = bytearray()
    key_file.write_bytes(bytes(data))
    with pytest.raises(SigningKeyError):
        load_key_file(key_file, PASS)


def test_unencrypted_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.pem"
    path.write_bytes(
        KeyAlgorithm.ECDSA_P256.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SigningKeyError, match="not an encrypted PKCS#8"):
        load_key_file(path, PASS)


def test_unsupported_curve_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "k1.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256K1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASS.reveal().encode()),
        )
    )
    with pytest.raises(SigningKeyError, match="unsupported curve"):
        load_key_file(path, PASS)
