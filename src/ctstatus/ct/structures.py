"""RFC 6962 data structures as frozen dataclasses, each with a strict ``encode``/``decode``.

Byte layouts: spec digest §1.3-§1.7 (RFC 6962 §3). All timestamps are milliseconds since the Unix
epoch as uint64. Decoding checks every length, enum and bound and refuses trailing bytes; the only
exception it raises on bad input is :class:`DecodeError`. The JSON forms are those of the RFC 6962
HTTP API (§4.1 add-chain responses, §4.3 get-sth); unknown JSON members are ignored, as §4 asks.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

from ctstatus.ct import der
from ctstatus.ct.b64 import b64decode, b64encode
from ctstatus.ct.errors import DecodeError, EncodeError
from ctstatus.ct.merkle import leaf_hash
from ctstatus.ct.tls import Reader, Writer, enum_value

MAX_CERT_LENGTH = (1 << 24) - 1  # ASN.1Cert is opaque<1..2^24-1>
MAX_UINT64 = (1 << 64) - 1
LOG_ID_LENGTH = 32
HASH_LENGTH = 32

SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
OCSP_SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.5")
POISON_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.3")


class Version(enum.IntEnum):
    V1 = 0


class SignatureType(enum.IntEnum):
    CERTIFICATE_TIMESTAMP = 0
    TREE_HASH = 1


class LogEntryType(enum.IntEnum):
    X509_ENTRY = 0
    PRECERT_ENTRY = 1


class MerkleLeafType(enum.IntEnum):
    TIMESTAMPED_ENTRY = 0


class HashAlgorithm(enum.IntEnum):
    """TLS 1.2 HashAlgorithm (RFC 5246 §7.4.1.4.1); RFC 6962 logs use only SHA256."""

    NONE = 0
    MD5 = 1
    SHA1 = 2
    SHA224 = 3
    SHA256 = 4
    SHA384 = 5
    SHA512 = 6


class SignatureAlgorithm(enum.IntEnum):
    """TLS 1.2 SignatureAlgorithm; RFC 6962 logs use only ECDSA (P-256) or RSA."""

    ANONYMOUS = 0
    RSA = 1
    DSA = 2
    ECDSA = 3


def _check_uint(value: int, bits: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise EncodeError(f"{field}: {value!r} is not a uint{bits}")


def _coerce(instance: object, field: str, cls: type[enum.IntEnum]) -> None:
    """Turn a plain int field of a frozen dataclass into its enum member (``is`` checks work)."""
    value = getattr(instance, field)
    try:
        member = cls(value)
    except ValueError:
        raise EncodeError(f"{field}: {value!r} is not a {cls.__name__}") from None
    object.__setattr__(instance, field, member)


def _check_bytes(value: bytes, field: str, *, length: int | None = None) -> None:
    if not isinstance(value, bytes):
        raise EncodeError(f"{field}: expected bytes, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise EncodeError(f"{field}: must be {length} bytes, got {len(value)}")


def _json_uint(obj: Mapping[str, object], key: str, bits: int = 64) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{key}: expected an integer, got {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise DecodeError(f"{key}: {value} is not a uint{bits}")
    return value


def _json_object(obj: object, what: str) -> Mapping[str, object]:
    if not isinstance(obj, Mapping):
        raise DecodeError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


@dataclass(frozen=True)
class DigitallySigned:
    """A TLS ``DigitallySigned``: algorithms, then the signature (DER ECDSA or PKCS#1 v1.5)."""

    hash_alg: HashAlgorithm
    sig_alg: SignatureAlgorithm
    signature: bytes

    def __post_init__(self) -> None:
        _coerce(self, "hash_alg", HashAlgorithm)
        _coerce(self, "sig_alg", SignatureAlgorithm)
        _check_bytes(self.signature, "signature")

    def write(self, writer: Writer) -> None:
        writer.uint8(int(self.hash_alg), "hash_alg")
        writer.uint8(int(self.sig_alg), "sig_alg")
        writer.opaque(2, self.signature, field="signature")

    def encode(self) -> bytes:
        writer = Writer()
        self.write(writer)
        return writer.to_bytes()

    @classmethod
    def read(cls, reader: Reader) -> DigitallySigned:
        hash_alg = enum_value(HashAlgorithm, reader.uint8("hash_alg"), "hash_alg")
        sig_alg = enum_value(SignatureAlgorithm, reader.uint8("sig_alg"), "sig_alg")
        signature = reader.opaque(2, field="signature")
        return cls(hash_alg, sig_alg, signature)

    @classmethod
    def decode(cls, data: bytes) -> DigitallySigned:
        reader = Reader(data, "DigitallySigned")
        value = cls.read(reader)
        reader.done()
        return value


@dataclass(frozen=True)
class SignedCertificateTimestamp:
    """An SCT (RFC 6962 §3.2); ``extensions`` are kept as the raw bytes the log signed."""

    version: Version
    log_id: bytes
    timestamp_ms: int
    extensions: bytes
    signature: DigitallySigned

    def __post_init__(self) -> None:
        _coerce(self, "version", Version)
        _check_bytes(self.log_id, "log_id", length=LOG_ID_LENGTH)
        _check_uint(self.timestamp_ms, 64, "timestamp_ms")
        _check_bytes(self.extensions, "extensions")

    def encode(self) -> bytes:
        writer = Writer()
        writer.uint8(int(self.version), "sct_version")
        writer.fixed(self.log_id, LOG_ID_LENGTH, "log_id")
        writer.uint64(self.timestamp_ms, "timestamp")
        writer.opaque(2, self.extensions, field="extensions")
        self.signature.write(writer)
        return writer.to_bytes()

    @classmethod
    def decode(cls, data: bytes) -> SignedCertificateTimestamp:
        reader = Reader(data, "SignedCertificateTimestamp")
        version = enum_value(Version, reader.uint8("sct_version"), "sct_version")
        log_id = reader.fixed(LOG_ID_LENGTH, "log_id")
        timestamp = reader.uint64("timestamp")
        extensions = reader.opaque(2, field="extensions")
        signature = DigitallySigned.read(reader)
        reader.done()
        return cls(version, log_id, timestamp, extensions, signature)

    def to_json(self) -> dict[str, object]:
        """The add-chain / add-pre-chain response body (RFC 6962 §4.1)."""
        return {
            "sct_version": int(self.version),
            "id": b64encode(self.log_id),
            "timestamp": self.timestamp_ms,
            "extensions": b64encode(self.extensions),
            "signature": b64encode(self.signature.encode()),
        }

    @classmethod
    def from_json(cls, obj: object) -> SignedCertificateTimestamp:
        """Build the SCT from an add-chain / add-pre-chain response (parsed JSON)."""
        body = _json_object(obj, "add-chain response")
        version = enum_value(Version, _json_uint(body, "sct_version", 8), "sct_version")
        log_id = b64decode(body.get("id"), "id", length=LOG_ID_LENGTH)
        timestamp = _json_uint(body, "timestamp")
        extensions = b64decode(body.get("extensions"), "extensions", max_len=0xFFFF)
        signature = DigitallySigned.decode(
            b64decode(body.get("signature"), "signature", max_len=4 + 0xFFFF)
        )
        return cls(version, log_id, timestamp, extensions, signature)


@dataclass(frozen=True)
class SctList:
    """A ``SignedCertificateTimestampList`` (RFC 6962 §3.3): one or more serialized SCTs."""

    scts: tuple[SignedCertificateTimestamp, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.scts, tuple) or not self.scts:
            raise EncodeError("SctList: needs a non-empty tuple of SCTs")

    def encode(self) -> bytes:
        inner = Writer()
        for index, sct in enumerate(self.scts):
            inner.opaque(2, sct.encode(), 1, field=f"sct_list[{index}]")
        return Writer().opaque(2, inner.to_bytes(), 1, field="sct_list").to_bytes()

    @classmethod
    def decode(cls, data: bytes) -> SctList:
        """Parse the list and every SCT in it; any bad SCT fails the whole list."""
        return cls(tuple(SignedCertificateTimestamp.decode(item) for item in cls.split(data)))

    @staticmethod
    def split(data: bytes) -> tuple[bytes, ...]:
        """The serialized SCTs of a list, undecoded, for callers that judge them one by one.

        A relying party ignores an SCT it cannot parse and counts the others; a monitor wants to
        report it. Both need the list itself to be well-formed, which this checks.
        """
        reader = Reader(data, "SignedCertificateTimestampList")
        items = reader.sub(2, 1, field="sct_list")
        reader.done()
        serialized: list[bytes] = []
        while items.remaining:
            serialized.append(items.opaque(2, 1, field=f"sct_list[{len(serialized)}]"))
        return tuple(serialized)


def sct_list_to_extension_value(scts: Sequence[SignedCertificateTimestamp]) -> bytes:
    """The extnValue content for the SCT list extension: a DER OCTET STRING of the TLS list.

    (The certificate adds the outer OCTET STRING itself, hence the two layers.) The OCSP
    singleExtension 1.3.6.1.4.1.11129.2.4.5 carries the same value.
    """
    return der.encode_tlv(der.TAG_OCTET_STRING, SctList(tuple(scts)).encode())


def sct_list_from_extension_value(value: bytes) -> SctList:
    """Parse the extnValue content of an SCT list extension (certificate or OCSP)."""
    return SctList.decode(der.octet_string_content(value, "SCT list extnValue"))


def sct_list_extension(scts: Sequence[SignedCertificateTimestamp]) -> x509.UnrecognizedExtension:
    """The extension value to add (non-critical) to a final certificate's builder."""
    return x509.UnrecognizedExtension(SCT_LIST_OID, sct_list_to_extension_value(scts))


def _certificate_der(certificate: x509.Certificate | bytes) -> bytes:
    if isinstance(certificate, x509.Certificate):
        from cryptography.hazmat.primitives.serialization import Encoding

        return certificate.public_bytes(Encoding.DER)
    if isinstance(certificate, bytes):
        return certificate
    raise TypeError(f"expected a certificate or its DER, got {type(certificate).__name__}")


def scts_from_certificate(certificate: x509.Certificate | bytes) -> SctList | None:
    """The SCTs embedded in a certificate, or ``None`` if it has no SCT list extension.

    Reads the raw extension from the DER (not ``cryptography``'s parsed view), so a malformed
    SCT list is a :class:`DecodeError` here rather than an error on any extension access.
    """
    tbs = der.certificate_tbs(_certificate_der(certificate))
    for extension in der.tbs_extensions(tbs):
        if extension.oid == der.OID_SCT_LIST:
            return sct_list_from_extension_value(extension.value)
    return None


@dataclass(frozen=True)
class TimestampedEntry:
    """The ``TimestampedEntry`` of a Merkle leaf (RFC 6962 §3.4), also the SCT's signed body.

    ``certificate`` is the whole leaf certificate DER for ``X509_ENTRY`` and the TBSCertificate
    DER (poison removed) for ``PRECERT_ENTRY``; ``issuer_key_hash`` is set only for the latter.
    """

    timestamp: int
    entry_type: LogEntryType
    certificate: bytes
    issuer_key_hash: bytes | None = None
    extensions: bytes = b""

    def __post_init__(self) -> None:
        _coerce(self, "entry_type", LogEntryType)
        _check_uint(self.timestamp, 64, "timestamp")
        _check_bytes(self.certificate, "certificate")
        if not 1 <= len(self.certificate) <= MAX_CERT_LENGTH:
            raise EncodeError("certificate: length outside 1..2^24-1")
        _check_bytes(self.extensions, "extensions")
        if self.entry_type is LogEntryType.PRECERT_ENTRY:
            if self.issuer_key_hash is None:
                raise EncodeError("issuer_key_hash: required for a precert_entry")
            _check_bytes(self.issuer_key_hash, "issuer_key_hash", length=HASH_LENGTH)
        elif self.issuer_key_hash is not None:
            raise EncodeError("issuer_key_hash: only a precert_entry has one")

    @classmethod
    def x509_entry(
        cls, timestamp: int, certificate_der: bytes, extensions: bytes = b""
    ) -> TimestampedEntry:
        """The entry for a certificate logged as itself."""
        return cls(timestamp, LogEntryType.X509_ENTRY, certificate_der, None, extensions)

    @classmethod
    def precert_entry(
        cls, timestamp: int, issuer_key_hash: bytes, tbs_der: bytes, extensions: bytes = b""
    ) -> TimestampedEntry:
        """The entry for a precertificate: issuer key hash and the TBS without poison."""
        return cls(timestamp, LogEntryType.PRECERT_ENTRY, tbs_der, issuer_key_hash, extensions)

    def write(self, writer: Writer) -> None:
        writer.uint64(self.timestamp, "timestamp")
        writer.uint16(int(self.entry_type), "entry_type")
        if self.issuer_key_hash is not None:
            writer.fixed(self.issuer_key_hash, HASH_LENGTH, "issuer_key_hash")
        writer.opaque(3, self.certificate, 1, field="signed_entry")
        writer.opaque(2, self.extensions, field="extensions")

    def encode(self) -> bytes:
        writer = Writer()
        self.write(writer)
        return writer.to_bytes()

    @classmethod
    def read(cls, reader: Reader, max_cert_length: int = MAX_CERT_LENGTH) -> TimestampedEntry:
        """Read one entry; unknown entry types are a :class:`DecodeError` (they have no layout).

        RFC 6962 asks v1 clients to treat unknown entry types as opaque: a caller following a
        log should record the entry as undecodable rather than fail the whole batch.
        """
        timestamp = reader.uint64("timestamp")
        entry_type = enum_value(LogEntryType, reader.uint16("entry_type"), "entry_type")
        issuer_key_hash = None
        if entry_type is LogEntryType.PRECERT_ENTRY:
            issuer_key_hash = reader.fixed(HASH_LENGTH, "issuer_key_hash")
        certificate = reader.opaque(3, 1, max_cert_length, field="signed_entry")
        extensions = reader.opaque(2, field="extensions")
        return cls(timestamp, entry_type, certificate, issuer_key_hash, extensions)

    @classmethod
    def decode(cls, data: bytes) -> TimestampedEntry:
        reader = Reader(data, "TimestampedEntry")
        value = cls.read(reader)
        reader.done()
        return value


@dataclass(frozen=True)
class MerkleTreeLeaf:
    """A v1 ``MerkleTreeLeaf``: ``leaf_input`` in ``get-entries``, and what the tree hashes."""

    timestamped_entry: TimestampedEntry

    def encode(self) -> bytes:
        writer = Writer()
        writer.uint8(int(Version.V1), "version")
        writer.uint8(int(MerkleLeafType.TIMESTAMPED_ENTRY), "leaf_type")
        self.timestamped_entry.write(writer)
        return writer.to_bytes()

    @classmethod
    def decode(cls, data: bytes) -> MerkleTreeLeaf:
        reader = Reader(data, "MerkleTreeLeaf")
        enum_value(Version, reader.uint8("version"), "version")
        enum_value(MerkleLeafType, reader.uint8("leaf_type"), "leaf_type")
        entry = TimestampedEntry.read(reader)
        reader.done()
        return cls(entry)

    def leaf_hash(self) -> bytes:
        """SHA-256(0x00 || MerkleTreeLeaf): the leaf's hash in the tree."""
        return leaf_hash(self.encode())


def _write_cert_list(writer: Writer, certificates: Sequence[bytes], field: str) -> None:
    inner = Writer()
    for index, certificate in enumerate(certificates):
        inner.opaque(3, certificate, 1, field=f"{field}[{index}]")
    writer.opaque(3, inner.to_bytes(), field=field)


def _read_cert_list(reader: Reader, field: str) -> tuple[bytes, ...]:
    items = reader.sub(3, field=field)
    certificates: list[bytes] = []
    while items.remaining:
        certificates.append(items.opaque(3, 1, field=f"{field}[{len(certificates)}]"))
    return tuple(certificates)


@dataclass(frozen=True)
class CertificateChain:
    """``extra_data`` of an x509_entry: the ``certificate_chain`` (issuer first, root last)."""

    certificates: tuple[bytes, ...]

    def encode(self) -> bytes:
        writer = Writer()
        _write_cert_list(writer, self.certificates, "certificate_chain")
        return writer.to_bytes()

    @classmethod
    def decode(cls, data: bytes) -> CertificateChain:
        reader = Reader(data, "certificate_chain")
        certificates = _read_cert_list(reader, "certificate_chain")
        reader.done()
        return cls(certificates)


@dataclass(frozen=True)
class PrecertChainEntry:
    """``extra_data`` of a precert_entry: the submitted precertificate and its chain."""

    pre_certificate: bytes
    precertificate_chain: tuple[bytes, ...]

    def encode(self) -> bytes:
        writer = Writer()
        writer.opaque(3, self.pre_certificate, 1, field="pre_certificate")
        _write_cert_list(writer, self.precertificate_chain, "precertificate_chain")
        return writer.to_bytes()

    @classmethod
    def decode(cls, data: bytes) -> PrecertChainEntry:
        reader = Reader(data, "PrecertChainEntry")
        pre_certificate = reader.opaque(3, 1, field="pre_certificate")
        chain = _read_cert_list(reader, "precertificate_chain")
        reader.done()
        return cls(pre_certificate, chain)


def sct_signature_input(entry: TimestampedEntry, version: Version = Version.V1) -> bytes:
    """What a log signs for an SCT (RFC 6962 §3.2): version, certificate_timestamp, the entry.

    It differs from the encoded MerkleTreeLeaf only in what its second byte (also 0) means.
    """
    writer = Writer()
    writer.uint8(int(version), "sct_version")
    writer.uint8(int(SignatureType.CERTIFICATE_TIMESTAMP), "signature_type")
    entry.write(writer)
    return writer.to_bytes()


def tree_head_signature_input(timestamp: int, tree_size: int, root_hash: bytes) -> bytes:
    """The 50 bytes a log signs for an STH (RFC 6962 §3.5)."""
    writer = Writer()
    writer.uint8(int(Version.V1), "version")
    writer.uint8(int(SignatureType.TREE_HASH), "signature_type")
    writer.uint64(timestamp, "timestamp")
    writer.uint64(tree_size, "tree_size")
    writer.fixed(root_hash, HASH_LENGTH, "sha256_root_hash")
    return writer.to_bytes()


@dataclass(frozen=True)
class SignedTreeHead:
    """An RFC 6962 STH as ``get-sth`` returns it (§4.3)."""

    tree_size: int
    timestamp: int
    root_hash: bytes
    signature: DigitallySigned

    def __post_init__(self) -> None:
        _check_uint(self.tree_size, 64, "tree_size")
        _check_uint(self.timestamp, 64, "timestamp")
        _check_bytes(self.root_hash, "root_hash", length=HASH_LENGTH)

    def signature_input(self) -> bytes:
        return tree_head_signature_input(self.timestamp, self.tree_size, self.root_hash)

    def to_json(self) -> dict[str, object]:
        return {
            "tree_size": self.tree_size,
            "timestamp": self.timestamp,
            "sha256_root_hash": b64encode(self.root_hash),
            "tree_head_signature": b64encode(self.signature.encode()),
        }

    @classmethod
    def from_json(cls, obj: object) -> SignedTreeHead:
        body = _json_object(obj, "get-sth response")
        tree_size = _json_uint(body, "tree_size")
        timestamp = _json_uint(body, "timestamp")
        root_hash = b64decode(body.get("sha256_root_hash"), "sha256_root_hash", length=HASH_LENGTH)
        signature = DigitallySigned.decode(
            b64decode(body.get("tree_head_signature"), "tree_head_signature", max_len=4 + 0xFFFF)
        )
        return cls(tree_size, timestamp, root_hash, signature)
