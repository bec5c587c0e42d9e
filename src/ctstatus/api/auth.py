"""Bearer tokens for the issuance API: generated once, stored only as a SHA-256 hash.

The token is 32 random bytes (URL-safe base64), so a plain SHA-256 is enough (no password
stretching needed); comparison is constant-time so response timing leaks nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from ctstatus.keys.files import write_private_file

TOKEN_HASH_FILE = "api-token.sha256"  # noqa: S105 (a file name)


def new_token() -> str:
    return "cts_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write_token_hash(path: Path, token: str) -> None:
    write_private_file(path, (token_hash(token) + "\n").encode())


def read_token_hash(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


def token_matches(expected_hash: str, authorization: str | None) -> bool:
    """Whether an ``Authorization: Bearer …`` header carries the token whose hash is given."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(token_hash(token.strip()), expected_hash)
