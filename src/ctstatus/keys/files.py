"""Private keys in encrypted PKCS#8 PEM files.

Files are created with mode 0600 atomically (``O_EXCL``: an existing key is never overwritten)
and always encrypted; the passphrase comes from the environment or a file
(:mod:`ctstatus.secrets`).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from ctstatus.errors import SigningKeyError
from ctstatus.keys.signer import InProcessSigner, KeyAlgorithm, PrivateKey
from ctstatus.secrets import Secret


def generate_key_file(path: Path, algorithm: KeyAlgorithm, passphrase: Secret) -> InProcessSigner:
    """Generate a key, write it encrypted to a new 0600 file at ``path`` and return its signer."""
    key = algorithm.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.reveal().encode()),
    )
    write_private_file(path, pem)
    return InProcessSigner(key, description=str(path))


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only; refuse to replace an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key_file(path: Path, passphrase: Secret) -> InProcessSigner:
    """Load an encrypted key file; every failure is one clear SigningKeyError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(
            f"key file {path} does not exist", "check [ca] key paths in the config"
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in data:
        raise SigningKeyError(
            f"key file {path} is not an encrypted PKCS#8 PEM key",
            "ctstatus only uses encrypted key files; re-encrypt it with "
            "`openssl pkcs8 -topk8 -v2 aes-256-cbc`",
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase.reveal().encode())
    except ValueError as exc:
        if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
            raise SigningKeyError(
                f"cannot decrypt key file {path}: wrong passphrase (or a corrupt file)",
                "check the passphrase source named by [keys] passphrase",
            ) from None
        raise SigningKeyError(f"key file {path} is corrupt: {exc}") from None
    except TypeError as exc:
        raise SigningKeyError(f"key file {path} cannot be loaded: {exc}") from None
    if not isinstance(key, PrivateKey):
        raise SigningKeyError(f"key file {path} holds a {type(key).__name__}, not an EC/RSA key")
    try:
        KeyAlgorithm.of(key)
    except ValueError as exc:
        raise SigningKeyError(f"key file {path}: {exc}") from None
    return InProcessSigner(key, description=str(path))
