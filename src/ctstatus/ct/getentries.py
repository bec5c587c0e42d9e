"""Lean decoding of get-entries items: the hot path of a monitor following a whole log.

:func:`ctstatus.ct.reader.decode_entry` and :func:`ctstatus.ct.b64.b64decode` are the strict
reference: a :class:`~ctstatus.ct.tls.Reader` per structure, a checked dataclass per field
group, a re-encoding to prove base64 canonical. Following a log calls them millions of times,
and that was half of the watcher's CPU per entry. Here the same checks are made by slicing (every
length prefix bounded by what is left, every vector consumed exactly, base64 strictly decoded by
``binascii`` and its one malleable spot, the last quantum, compared with its canonical form),
and the result objects are filled in without re-running checks just made.

Anything the lean path does not accept is handed to the strict decoder, so a malformed entry
fails with the strict :class:`~ctstatus.ct.errors.DecodeError` (same message) and a valid one
decodes to an equal :class:`~ctstatus.ct.reader.LogEntry`; ``tests/ct/test_getentries.py``
checks both on fuzzed input.
"""

from __future__ import annotations

import binascii
from typing import Any, TypeVar

from ctstatus.ct.b64 import b64decode
from ctstatus.ct.reader import LogEntry, decode_entry
from ctstatus.ct.structures import LogEntryType, MerkleTreeLeaf, TimestampedEntry

_X509 = LogEntryType.X509_ENTRY
_PRECERT = LogEntryType.PRECERT_ENTRY
_a2b = binascii.a2b_base64
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_LOW4_ZERO = frozenset(_ALPHABET[::16])  # last character before "==": 4 unused bits, all 0
_LOW2_ZERO = frozenset(_ALPHABET[::4])  # last character before "=": 2 unused bits, all 0
_Error = binascii.Error

T = TypeVar("T")


def b64decode_lean(value: object, field: str, max_len: int) -> bytes:
    """:func:`~ctstatus.ct.b64.b64decode` (``max_len`` bound) for the common, valid case.

    ``strict_mode`` refuses anything but the alphabet and correct padding; a quantum-aligned
    length and zero unused bits in the last character before the padding then leave one text
    per value (every full quantum decodes and re-encodes one to one), which is what the strict
    decoder checks by re-encoding the whole value.
    """
    if type(value) is str and len(value) <= 4 * ((max_len + 2) // 3):
        try:
            data = _a2b(value, strict_mode=True)
        except (_Error, ValueError):
            pass
        else:
            size = len(data)
            if size <= max_len and len(value) == 4 * ((size + 2) // 3):
                if not size or value[-1] != "=":
                    return data
                if value[-2] == "=":
                    if value[-3] in _LOW4_ZERO:
                        return data
                elif value[-2] in _LOW2_ZERO:
                    return data
    return b64decode(value, field, max_len=max_len)


def _built(cls: type[T], fields: dict[str, Any]) -> T:
    """An instance of a frozen dataclass from fields the caller has already checked."""
    instance = object.__new__(cls)
    instance.__dict__.update(fields)
    return instance


def _cert_list(data: bytes, pos: int) -> tuple[bytes, ...] | None:
    """A ``ASN.1Cert<1..2^24-1>`` vector (3-byte length) that must end ``data``; None if not."""
    end = len(data)
    if pos + 3 > end:
        return None
    stop = pos + 3 + int.from_bytes(data[pos : pos + 3], "big")
    if stop != end:
        return None
    pos += 3
    items: list[bytes] = []
    while pos < stop:
        if pos + 3 > stop:
            return None
        length = int.from_bytes(data[pos : pos + 3], "big")
        start = pos + 3
        pos = start + length
        if not length or pos > stop:
            return None
        items.append(data[start:pos])
    return tuple(items)


def decode_entry_lean(index: int, leaf_input: bytes, extra_data: bytes) -> LogEntry:
    """:func:`~ctstatus.ct.reader.decode_entry`, by slicing; the strict one on anything odd."""
    size = len(leaf_input)
    if size >= 17 and not leaf_input[0] and not leaf_input[1] and not leaf_input[10]:
        kind = leaf_input[11]
        pos = 12
        issuer_key_hash: bytes | None = None
        if kind == 1:
            issuer_key_hash = leaf_input[12:44]
            pos = 44
        if kind <= 1 and pos + 3 <= size:
            cert_end = pos + 3 + int.from_bytes(leaf_input[pos : pos + 3], "big")
            if cert_end > pos + 3 and cert_end + 2 <= size:
                extensions_end = (
                    cert_end + 2 + int.from_bytes(leaf_input[cert_end : cert_end + 2], "big")
                )
                if extensions_end == size:
                    entry = _entry(
                        index, leaf_input, extra_data, kind, issuer_key_hash, pos, cert_end
                    )
                    if entry is not None:
                        return entry
    return decode_entry(index, leaf_input, extra_data)


def _entry(
    index: int,
    leaf_input: bytes,
    extra_data: bytes,
    kind: int,
    issuer_key_hash: bytes | None,
    pos: int,
    cert_end: int,
) -> LogEntry | None:
    pre_certificate: bytes | None = None
    if kind:
        if len(extra_data) < 3:
            return None
        pre_end = 3 + int.from_bytes(extra_data[:3], "big")
        if pre_end == 3 or pre_end > len(extra_data):
            return None
        pre_certificate = extra_data[3:pre_end]
        chain = _cert_list(extra_data, pre_end)
    else:
        chain = _cert_list(extra_data, 0)
    if chain is None:
        return None
    timestamped = _built(
        TimestampedEntry,
        {
            "timestamp": int.from_bytes(leaf_input[2:10], "big"),
            "entry_type": _PRECERT if kind else _X509,
            "certificate": leaf_input[pos + 3 : cert_end],
            "issuer_key_hash": issuer_key_hash,
            "extensions": leaf_input[cert_end + 2 :],
        },
    )
    return _built(
        LogEntry,
        {
            "index": index,
            "leaf_input": leaf_input,
            "extra_data": extra_data,
            "leaf": _built(MerkleTreeLeaf, {"timestamped_entry": timestamped}),
            "chain": chain,
            "pre_certificate": pre_certificate,
        },
    )
