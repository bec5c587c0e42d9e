"""Just enough strict DER to cut certificates the way CT needs, byte for byte.

CT signs over re-encoded certificate parts: the TBSCertificate with one extension removed, the
issuer's SubjectPublicKeyInfo exactly as it appears in the issuer certificate, the SCT list's
extnValue. Going through a full ASN.1 library risks re-encoding what it should only copy, so this
module walks the DER itself: every element it does not change is copied as the original bytes.

Only what certificates use is supported (low tag numbers, definite minimal lengths); anything else
is a :class:`DecodeError`, never another exception.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctstatus.ct.errors import DecodeError

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_SEQUENCE = 0x30
TAG_TBS_VERSION = 0xA0
TAG_ISSUER_UID = 0x81
TAG_SUBJECT_UID = 0x82
TAG_EXTENSIONS = 0xA3

# OIDs as the content octets of their DER encoding (RFC 6962 §3.1, §3.3).
OID_CT_POISON = bytes.fromhex("2b06010401d679020403")  # 1.3.6.1.4.1.11129.2.4.3
OID_SCT_LIST = bytes.fromhex("2b06010401d679020402")  # 1.3.6.1.4.1.11129.2.4.2
OID_OCSP_SCT_LIST = bytes.fromhex("2b06010401d679020405")  # 1.3.6.1.4.1.11129.2.4.5

# ASN.1Cert is opaque<1..2^24-1> in RFC 6962, so nothing we handle can be longer.
MAX_DER_LENGTH = (1 << 24) - 1


@dataclass(frozen=True)
class Tlv:
    """One DER element inside some buffer: tag, and the offsets of its header and content."""

    tag: int
    start: int
    body: int
    end: int

    def raw(self, data: bytes) -> bytes:
        """The whole element (tag, length and content) as it appears in ``data``."""
        return data[self.start : self.end]

    def content(self, data: bytes) -> bytes:
        """The content octets."""
        return data[self.body : self.end]


def read_tlv(data: bytes, pos: int, what: str) -> Tlv:
    """The element starting at ``pos``; strict DER lengths (definite, minimal)."""
    if pos >= len(data):
        raise DecodeError(f"{what}: truncated (no tag)")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DecodeError(f"{what}: high tag numbers are not supported")
    if pos + 1 >= len(data):
        raise DecodeError(f"{what}: truncated (no length)")
    first = data[pos + 1]
    if first < 0x80:
        length, body = first, pos + 2
    elif first == 0x80:
        raise DecodeError(f"{what}: indefinite length is not DER")
    else:
        count = first & 0x7F
        if count > 3:
            raise DecodeError(f"{what}: length of {count} bytes is too long")
        if pos + 2 + count > len(data):
            raise DecodeError(f"{what}: truncated length")
        length_octets = data[pos + 2 : pos + 2 + count]
        if length_octets[0] == 0:
            raise DecodeError(f"{what}: length has a leading zero byte (not DER)")
        length = int.from_bytes(length_octets, "big")
        if length < 0x80:
            raise DecodeError(f"{what}: long-form length {length} should be short form (not DER)")
        body = pos + 2 + count
    if length > MAX_DER_LENGTH:
        raise DecodeError(f"{what}: length {length} exceeds {MAX_DER_LENGTH}")
    end = body + length
    if end > len(data):
        raise DecodeError(f"{what}: truncated (need {length} content bytes)")
    return Tlv(tag, pos, body, end)


def read_single(data: bytes, what: str, tag: int | None = None) -> Tlv:
    """``data`` as exactly one element (of ``tag`` if given), with nothing after it."""
    if not isinstance(data, bytes):
        raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    tlv = read_tlv(data, 0, what)
    if tag is not None and tlv.tag != tag:
        raise DecodeError(f"{what}: expected tag 0x{tag:02x}, got 0x{tlv.tag:02x}")
    if tlv.end != len(data):
        raise DecodeError(f"{what}: {len(data) - tlv.end} trailing bytes")
    return tlv


def children(data: bytes, parent: Tlv, what: str) -> list[Tlv]:
    """The elements that exactly fill ``parent``'s content."""
    items: list[Tlv] = []
    pos = parent.body
    while pos < parent.end:
        item = read_tlv(data[: parent.end], pos, f"{what}[{len(items)}]")
        items.append(item)
        pos = item.end
    return items


def encode_length(length: int) -> bytes:
    """The DER length octets for ``length``."""
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def encode_tlv(tag: int, content: bytes) -> bytes:
    """One DER element."""
    return bytes([tag]) + encode_length(len(content)) + content


def octet_string_content(der: bytes, what: str = "OCTET STRING") -> bytes:
    """The content of a DER OCTET STRING that makes up all of ``der``."""
    return read_single(der, what, TAG_OCTET_STRING).content(der)


@dataclass(frozen=True)
class Extension:
    """One X.509 extension as found in a TBSCertificate; ``raw`` is its exact DER."""

    oid: bytes
    critical: bool
    value: bytes
    raw: bytes


def certificate_tbs(cert_der: bytes) -> bytes:
    """The TBSCertificate DER of a certificate, exactly as signed."""
    cert = read_single(cert_der, "Certificate", TAG_SEQUENCE)
    parts = children(cert_der, cert, "Certificate")
    tags = [p.tag for p in parts]
    if tags != [TAG_SEQUENCE, TAG_SEQUENCE, TAG_BIT_STRING]:
        raise DecodeError(f"Certificate: unexpected structure (tags {tags})")
    return parts[0].raw(cert_der)


@dataclass(frozen=True)
class _TbsLayout:
    top: Tlv
    fields: list[Tlv]
    spki: Tlv
    extensions: Tlv | None


def _tbs_layout(tbs: bytes) -> _TbsLayout:
    top = read_single(tbs, "TBSCertificate", TAG_SEQUENCE)
    fields = children(tbs, top, "TBSCertificate")
    first = 1 if fields and fields[0].tag == TAG_TBS_VERSION else 0
    required = fields[first : first + 6]
    expected = [TAG_INTEGER] + [TAG_SEQUENCE] * 5
    if [f.tag for f in required] != expected:
        raise DecodeError("TBSCertificate: serial..subjectPublicKeyInfo are not as expected")
    optional = fields[first + 6 :]
    allowed = [TAG_ISSUER_UID, TAG_SUBJECT_UID, TAG_EXTENSIONS]
    tags = [f.tag for f in optional]
    if any(t not in allowed for t in tags) or tags != sorted(set(tags), key=allowed.index):
        raise DecodeError(f"TBSCertificate: unexpected trailing fields (tags {tags})")
    extensions = optional[-1] if tags and tags[-1] == TAG_EXTENSIONS else None
    return _TbsLayout(top, fields, required[5], extensions)


def tbs_spki(tbs: bytes) -> bytes:
    """The subjectPublicKeyInfo DER of a TBSCertificate, exactly as encoded there."""
    layout = _tbs_layout(tbs)
    return layout.spki.raw(tbs)


def certificate_spki(cert_der: bytes) -> bytes:
    """The subjectPublicKeyInfo DER of a certificate, exactly as encoded there."""
    return tbs_spki(certificate_tbs(cert_der))


def _parse_extensions(tbs: bytes, wrapper: Tlv) -> tuple[Extension, ...]:
    inner = children(tbs, wrapper, "extensions")
    if len(inner) != 1 or inner[0].tag != TAG_SEQUENCE:
        raise DecodeError("extensions: [3] must hold exactly one SEQUENCE")
    items = children(tbs, inner[0], "extensions")
    if not items:
        raise DecodeError("extensions: empty SEQUENCE (RFC 5280 requires at least one)")
    result: list[Extension] = []
    seen: set[bytes] = set()
    for index, item in enumerate(items):
        what = f"extensions[{index}]"
        if item.tag != TAG_SEQUENCE:
            raise DecodeError(f"{what}: not a SEQUENCE")
        parts = children(tbs, item, what)
        critical = False
        if len(parts) == 3 and parts[1].tag == TAG_BOOLEAN:
            flag = parts[1].content(tbs)
            if flag not in (b"\x00", b"\xff"):
                raise DecodeError(f"{what}: critical is not a DER BOOLEAN")
            critical = flag == b"\xff"
            parts = [parts[0], parts[2]]
        if len(parts) != 2 or parts[0].tag != TAG_OID or parts[1].tag != TAG_OCTET_STRING:
            raise DecodeError(f"{what}: not extnID, [critical,] extnValue")
        oid = parts[0].content(tbs)
        if not oid:
            raise DecodeError(f"{what}: empty OID")
        if oid in seen:
            raise DecodeError(f"{what}: duplicate extension {oid.hex()} (RFC 5280 §4.2)")
        seen.add(oid)
        result.append(Extension(oid, critical, parts[1].content(tbs), item.raw(tbs)))
    return tuple(result)


def tbs_extensions(tbs: bytes) -> tuple[Extension, ...]:
    """The extensions of a TBSCertificate in order (empty if it has none)."""
    layout = _tbs_layout(tbs)
    if layout.extensions is None:
        return ()
    return _parse_extensions(tbs, layout.extensions)


def tbs_without_extension(tbs: bytes, oid: bytes) -> bytes:
    """``tbs`` with the extension ``oid`` removed, all else byte-identical and in order.

    Only the lengths of the enclosing SEQUENCE, [3] and TBSCertificate change. If no extension
    is left, [3] goes too (RFC 5280 forbids an empty extensions SEQUENCE).
    """
    layout = _tbs_layout(tbs)
    if layout.extensions is None:
        raise ValueError(f"TBSCertificate has no extensions, so no {oid.hex()} to remove")
    extensions = _parse_extensions(tbs, layout.extensions)
    kept = [e.raw for e in extensions if e.oid != oid]
    if len(kept) == len(extensions):
        raise ValueError(f"TBSCertificate has no extension {oid.hex()} to remove")
    wrapper = layout.extensions
    replacement = (
        encode_tlv(TAG_EXTENSIONS, encode_tlv(TAG_SEQUENCE, b"".join(kept))) if kept else b""
    )
    content = tbs[layout.top.body : wrapper.start] + replacement + tbs[wrapper.end : layout.top.end]
    return encode_tlv(TAG_SEQUENCE, content)
