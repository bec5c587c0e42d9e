"""Signing keys: one :class:`Signer` abstraction over key files and PKCS#11 tokens."""

from __future__ import annotations

from pathlib import Path

from ctstatus.keys.signer import InProcessSigner, KeyAlgorithm, PublicKey, Signer

__all__ = ["InProcessSigner", "KeyAlgorithm", "PublicKey", "Signer", "is_pkcs11_uri", "key_path"]


def is_pkcs11_uri(key: str) -> bool:
    """A key reference is a PKCS#11 URI (RFC 7512) or else a file path."""
    return key.startswith("pkcs11:")


def key_path(key: str, base_dir: Path) -> Path:
    """The absolute path of a file key reference, relative ones taken from ``base_dir``."""
    path = Path(key)
    return path if path.is_absolute() else base_dir / path
