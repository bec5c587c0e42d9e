"""Strict standard base64 (RFC 4648 §4), as CT's JSON and signed notes use it.

Python's decoder is lenient by default (it skips junk, accepts non-zero padding bits). Here only
the canonical encoding of some bytes is accepted, so one value has exactly one text form and
nothing malleable slips through.
"""

from __future__ import annotations

import base64
import binascii

from ctstatus.ct.errors import DecodeError


def b64encode(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def b64decode(
    value: object,
    field: str,
    *,
    length: int | None = None,
    max_len: int | None = None,
) -> bytes:
    """Decode canonical standard base64 from a JSON value or note field.

    ``length`` demands an exact decoded size, ``max_len`` bounds it (checked on the text length
    first, so a huge value is refused before it is decoded).
    """
    if not isinstance(value, str):
        raise DecodeError(f"{field}: expected a base64 string, got {type(value).__name__}")
    bound = length if length is not None else max_len
    if bound is not None and len(value) > 4 * ((bound + 2) // 3):
        raise DecodeError(f"{field}: base64 text too long for {bound} bytes")
    if not value.isascii():
        raise DecodeError(f"{field}: base64 text is not ASCII")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"{field}: invalid base64 ({exc})") from None
    if b64encode(data) != value:
        raise DecodeError(f"{field}: non-canonical base64")
    if length is not None and len(data) != length:
        raise DecodeError(f"{field}: expected {length} bytes, got {len(data)}")
    if max_len is not None and len(data) > max_len:
        raise DecodeError(f"{field}: {len(data)} bytes exceeds {max_len}")
    return data
