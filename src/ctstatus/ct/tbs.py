"""Cutting the poison out of a precertificate's TBS, fast: the hot path of the log's
add-pre-chain (:mod:`ctstatus.ctlog.validate`) and of the watcher's indexing
(:mod:`ctstatus.watch.entries`), which both sit above this module.

:func:`ctstatus.ct.der.tbs_without_extension` does the same with full strict checks, at about a
third of a single-core submission budget. Here the certificate has already been parsed by
``cryptography`` (strict DER), so the walk only has to find element boundaries: the elements it
keeps are copied byte for byte, and only the lengths of the enclosing SEQUENCE, ``[3]`` and
TBSCertificate are re-encoded. The tests check it against :mod:`ctstatus.ct.der` on fuzzed
certificates.
"""

from __future__ import annotations

from ctstatus.ct.der import OID_CT_POISON, TAG_EXTENSIONS, TAG_SEQUENCE, encode_tlv

_POISON_OID_TLV = bytes([0x06, len(OID_CT_POISON)]) + OID_CT_POISON


def _element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at ``pos``."""
    first = data[pos + 1]
    if first < 0x80:
        return data[pos], pos + 2, pos + 2 + first
    count = first & 0x7F
    body = pos + 2 + count
    return data[pos], body, body + int.from_bytes(data[pos + 2 : body], "big")


def tbs_without_poison(certificate_der: bytes) -> bytes:
    """The TBSCertificate of a parsed precertificate with its poison extension removed.

    Raises ``ValueError`` if there is no extensions field or no poison extension in it. The
    element walks are written out in the loops (a function call per element was most of the
    cost: the watcher cuts every precertificate entry of every log it follows).
    """
    data = certificate_der
    try:
        _, tbs_start, _ = _element(data, 0)
        _, tbs_body, tbs_end = _element(data, tbs_start)
        pos = tbs_body
        while pos < tbs_end:
            first = data[pos + 1]
            if first < 0x80:
                body, end = pos + 2, pos + 2 + first
            else:
                body = pos + 2 + (first & 0x7F)
                end = body + int.from_bytes(data[pos + 2 : body], "big")
            if data[pos] == TAG_EXTENSIONS:
                break
            pos = end
        else:
            raise ValueError("the TBSCertificate has no extensions")
        wrapper_start, wrapper_end = pos, end
        tag, sequence_body, sequence_end = _element(data, body)
        if tag != TAG_SEQUENCE:
            raise ValueError("the extensions field is not a SEQUENCE")
        kept: list[bytes] = []
        keep_from = pos = sequence_body
        while pos < sequence_end:
            first = data[pos + 1]
            if first < 0x80:
                body, end = pos + 2, pos + 2 + first
            else:
                body = pos + 2 + (first & 0x7F)
                end = body + int.from_bytes(data[pos + 2 : body], "big")
            if data.startswith(_POISON_OID_TLV, body):
                kept.append(data[keep_from:pos])
                keep_from = end
            pos = end
    except IndexError:
        raise ValueError("the certificate is truncated") from None
    if not kept:
        raise ValueError("the TBSCertificate has no poison extension")
    kept.append(data[keep_from:sequence_end])
    remaining = b"".join(kept)
    extensions = (
        encode_tlv(TAG_EXTENSIONS, encode_tlv(TAG_SEQUENCE, remaining)) if remaining else b""
    )
    content = data[tbs_body:wrapper_start] + extensions + data[wrapper_end:tbs_end]
    return encode_tlv(TAG_SEQUENCE, content)


def issuer_name_der(certificate_der: bytes) -> bytes:
    """The issuer Name of a parsed certificate, as the DER bytes in its TBSCertificate."""
    data = certificate_der
    try:
        _, tbs_start, _ = _element(data, 0)
        _, pos, _ = _element(data, tbs_start)
        fields: list[tuple[int, int]] = []
        while len(fields) < 4:
            _, _, end = _element(data, pos)
            fields.append((pos, end))
            pos = end
    except IndexError:
        raise ValueError("the certificate is truncated") from None
    # [0] version (optional), serialNumber, signature, issuer
    first_tag = data[fields[0][0]]
    start, end = fields[3] if first_tag == 0xA0 else fields[2]
    return data[start:end]
