"""SCT ``CtExtensions`` as static-ct-api defines them, and its one extension, ``leaf_index``.

RFC 6962 leaves ``CtExtensions`` opaque (and classic logs send it empty). static-ct-api gives it
a structure -- a list of ``{uint8 extension_type; opaque extension_data<0..2^16-1>}`` in any order,
no duplicates -- and requires ``leaf_index(0)``: the entry's 0-based index as a big-endian uint40.
A ``leaf_index``-only field is always 8 bytes: ``00 | 00 05 | index``.

The extension bytes are signed over exactly as received, so the SCT and the Merkle leaf keep the
raw bytes; these helpers only interpret them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctstatus.ct.errors import DecodeError, EncodeError
from ctstatus.ct.tls import Reader, Writer

LEAF_INDEX = 0
MAX_LEAF_INDEX = (1 << 40) - 1


@dataclass(frozen=True)
class CtExtension:
    """One static-ct-api SCT extension."""

    extension_type: int
    data: bytes


def decode_ct_extensions(data: bytes) -> tuple[CtExtension, ...]:
    """Parse a ``CtExtensions`` field; duplicates and trailing bytes are errors."""
    reader = Reader(data, "CtExtensions")
    items: list[CtExtension] = []
    seen: set[int] = set()
    while reader.remaining:
        kind = reader.uint8(f"extensions[{len(items)}].extension_type")
        body = reader.opaque(2, field=f"extensions[{len(items)}].extension_data")
        if kind in seen:
            raise DecodeError(f"CtExtensions: duplicate extension type {kind}")
        seen.add(kind)
        items.append(CtExtension(kind, body))
    return tuple(items)


def encode_ct_extensions(extensions: tuple[CtExtension, ...] | list[CtExtension]) -> bytes:
    """Encode a ``CtExtensions`` field, in the given order."""
    kinds = [e.extension_type for e in extensions]
    if len(set(kinds)) != len(kinds):
        raise EncodeError("CtExtensions: duplicate extension types")
    writer = Writer()
    for index, extension in enumerate(extensions):
        writer.uint8(extension.extension_type, f"extensions[{index}].extension_type")
        writer.opaque(2, extension.data, field=f"extensions[{index}].extension_data")
    encoded = writer.to_bytes()
    if len(encoded) > 0xFFFF:
        raise EncodeError("CtExtensions: longer than 65535 bytes")
    return encoded


def leaf_index_extensions(index: int) -> bytes:
    """The 8-byte ``CtExtensions`` a static-ct-api log puts in the SCT for entry ``index``."""
    if isinstance(index, bool) or not 0 <= index <= MAX_LEAF_INDEX:
        raise EncodeError(f"leaf_index {index!r} outside 0..2^40-1")
    data = Writer().uint40(index).to_bytes()
    return encode_ct_extensions([CtExtension(LEAF_INDEX, data)])


def leaf_index_from_extensions(data: bytes) -> int | None:
    """The ``leaf_index`` in a ``CtExtensions`` field, or ``None`` if there is none.

    A malformed field, or a ``leaf_index`` whose data is not exactly 5 bytes, is a
    :class:`DecodeError`.
    """
    for extension in decode_ct_extensions(data):
        if extension.extension_type == LEAF_INDEX:
            reader = Reader(extension.data, "leaf_index")
            index = reader.uint40("index")
            reader.done()
            return index
    return None
