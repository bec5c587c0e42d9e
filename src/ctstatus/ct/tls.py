"""A tiny, strict codec for the TLS presentation language (RFC 8446 §3) that CT is written in.

Every read names its field, so a :class:`DecodeError` says which field failed and why (truncated,
too short, too long, trailing bytes, bad enum value). Every variable-length read is bounded: by
its length prefix at least, and by tighter limits when the caller knows them. Nothing here raises
anything but :class:`DecodeError` on bad input, whatever the bytes.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from ctstatus.ct.errors import DecodeError, EncodeError

__all__ = ["DecodeError", "EncodeError", "Reader", "Writer", "enum_value"]

E = TypeVar("E", bound=enum.IntEnum)

_PREFIX_WIDTHS = (1, 2, 3)


def _max_for(length_bytes: int) -> int:
    if length_bytes not in _PREFIX_WIDTHS:
        raise ValueError(f"length prefix must be 1, 2 or 3 bytes, not {length_bytes}")
    return (1 << (8 * length_bytes)) - 1


def enum_value(cls: type[E], value: int, field: str) -> E:
    """``cls(value)``, or a :class:`DecodeError` naming the field if it is not a member."""
    try:
        return cls(value)
    except ValueError:
        raise DecodeError(f"{field}: bad enum value {value} for {cls.__name__}") from None


class Reader:
    """Reads TLS-encoded fields from ``data``, front to back; call :meth:`done` at the end."""

    def __init__(self, data: bytes, what: str = "structure") -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    @property
    def remaining(self) -> int:
        """How many bytes are left unread."""
        return len(self._data) - self._pos

    def _take(self, n: int, field: str) -> bytes:
        if n > self.remaining:
            raise DecodeError(
                f"{self._what}.{field}: truncated (need {n} bytes, {self.remaining} left)"
            )
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def _uint(self, n: int, field: str) -> int:
        return int.from_bytes(self._take(n, field), "big")

    def uint8(self, field: str = "uint8") -> int:
        return self._uint(1, field)

    def uint16(self, field: str = "uint16") -> int:
        return self._uint(2, field)

    def uint24(self, field: str = "uint24") -> int:
        return self._uint(3, field)

    def uint40(self, field: str = "uint40") -> int:
        return self._uint(5, field)

    def uint64(self, field: str = "uint64") -> int:
        return self._uint(8, field)

    def fixed(self, n: int, field: str = "fixed") -> bytes:
        """Exactly ``n`` bytes (an ``opaque x[n]``)."""
        return self._take(n, field)

    def opaque(
        self,
        length_bytes: int,
        min_len: int = 0,
        max_len: int | None = None,
        *,
        field: str = "opaque",
    ) -> bytes:
        """An ``opaque x<min_len..max_len>`` with a ``length_bytes``-wide length prefix.

        ``max_len`` defaults to what the prefix can express; pass a tighter bound when the
        caller knows one (a 32-byte hash, a certificate size limit).
        """
        limit = _max_for(length_bytes)
        upper = limit if max_len is None else min(max_len, limit)
        length = self._uint(length_bytes, f"{field}.length")
        if length < min_len:
            raise DecodeError(f"{self._what}.{field}: too short ({length} < {min_len} bytes)")
        if length > upper:
            raise DecodeError(f"{self._what}.{field}: too long ({length} > {upper} bytes)")
        return self._take(length, field)

    def sub(
        self,
        length_bytes: int,
        min_len: int = 0,
        max_len: int | None = None,
        *,
        field: str = "vector",
    ) -> Reader:
        """A reader over a length-prefixed vector of structures, for reading its elements."""
        body = self.opaque(length_bytes, min_len, max_len, field=field)
        return Reader(body, f"{self._what}.{field}")

    def done(self) -> None:
        """Raise unless every byte was read: trailing bytes are an error, never ignored."""
        if self.remaining:
            raise DecodeError(f"{self._what}: {self.remaining} trailing bytes")


class Writer:
    """Builds a TLS encoding; every write checks its value fits, raising :class:`EncodeError`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def _uint(self, value: int, n: int, field: str) -> Writer:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << (8 * n):
            raise EncodeError(f"{field}: {value!r} does not fit in uint{8 * n}")
        self._parts.append(value.to_bytes(n, "big"))
        return self

    def uint8(self, value: int, field: str = "uint8") -> Writer:
        return self._uint(value, 1, field)

    def uint16(self, value: int, field: str = "uint16") -> Writer:
        return self._uint(value, 2, field)

    def uint24(self, value: int, field: str = "uint24") -> Writer:
        return self._uint(value, 3, field)

    def uint40(self, value: int, field: str = "uint40") -> Writer:
        return self._uint(value, 5, field)

    def uint64(self, value: int, field: str = "uint64") -> Writer:
        return self._uint(value, 8, field)

    def fixed(self, data: bytes, n: int, field: str = "fixed") -> Writer:
        """Exactly ``n`` bytes; a different length is an error, not padding."""
        if len(data) != n:
            raise EncodeError(f"{field}: must be {n} bytes, got {len(data)}")
        self._parts.append(bytes(data))
        return self

    def opaque(
        self,
        length_bytes: int,
        data: bytes,
        min_len: int = 0,
        max_len: int | None = None,
        *,
        field: str = "opaque",
    ) -> Writer:
        """``data`` with a ``length_bytes``-wide length prefix, within ``min_len..max_len``."""
        limit = _max_for(length_bytes)
        upper = limit if max_len is None else min(max_len, limit)
        if not min_len <= len(data) <= upper:
            raise EncodeError(f"{field}: length {len(data)} outside {min_len}..{upper}")
        self._parts.append(len(data).to_bytes(length_bytes, "big"))
        self._parts.append(bytes(data))
        return self

    def to_bytes(self) -> bytes:
        """The encoding so far."""
        return b"".join(self._parts)
