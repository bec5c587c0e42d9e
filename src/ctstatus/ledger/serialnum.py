"""Serial numbers as the ledger stores them: lowercase minimal hex text.

Serials go up to 2^159 (BR §7.1), beyond any SQL integer type, so they are stored as text. One
canonical spelling (no ``0x``, no leading zeros, lowercase) keeps ``UNIQUE (issuer_id, serial)``
meaningful; the database CHECKs the same shape.
"""

from __future__ import annotations

import re
from typing import Final

SERIAL_LIMIT: Final = 2**159
"""Serials must be ``0 < serial < SERIAL_LIMIT`` (RFC 5280 §4.1.2.2 positive, BR: < 2^159)."""

MAX_HEX_DIGITS: Final = 40
_HEX = re.compile(r"[1-9a-f][0-9a-f]{0,39}")


class InvalidSerial(ValueError):
    """A serial number outside ``0 < serial < 2**159`` or not in canonical hex."""


def is_valid_serial(serial: object) -> bool:
    """Whether ``serial`` is an int (not a bool) the ledger can hold."""
    return isinstance(serial, int) and not isinstance(serial, bool) and 0 < serial < SERIAL_LIMIT


def check_serial(serial: int) -> int:
    """Return ``serial`` unchanged, or raise :class:`InvalidSerial`."""
    if not is_valid_serial(serial):
        raise InvalidSerial(
            f"serial number must be an int with 0 < serial < 2**159, got {serial!r}"
        )
    return serial


def serial_to_hex(serial: int) -> str:
    """Canonical text form of a valid serial."""
    return format(check_serial(serial), "x")


def serial_from_hex(text: str) -> int:
    """Parse the canonical text form; anything else (``0x``, upper case, leading 0) is refused."""
    if _HEX.fullmatch(text) is None:
        raise InvalidSerial(f"not a canonical ledger serial: {text!r}")
    return check_serial(int(text, 16))
