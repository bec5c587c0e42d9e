"""From a log entry to what the watcher indexes: issuer, serial, TBS hash, and for watched
issuers the names, validity and status URLs.

The issuer is identified the way CT identifies it: the SHA-256 of its SubjectPublicKeyInfo (a
precert entry carries it; an x509 entry's chain[0] is the issuer). A precertificate and its
final certificate share the TBS hash (poison resp. SCT list removed, :func:`tbs_for_ct`), which
is how they are paired. Parsing never raises: an unparseable entry is indexed with what is
known and reported (certspotter's ``malformed_cert``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from ctstatus.ct import der
from ctstatus.ct.errors import DecodeError
from ctstatus.ct.reader import LogEntry
from ctstatus.ct.sct import tbs_for_ct
from ctstatus.ct.structures import LogEntryType
from ctstatus.ct.tbs import tbs_without_poison
from ctstatus.watch.store import EntryRow

ALL = "all"


class Parsed(NamedTuple):
    """An indexed entry, the issuer certificate if the entry carried one, and any parse error."""

    row: EntryRow
    issuer_der: bytes | None
    error: str | None = None


def issuer_key_of(certificate_der: bytes) -> str:
    """The CT issuer key hash (hex SHA-256 of the SPKI) of an issuer certificate."""
    return hashlib.sha256(der.certificate_spki(certificate_der)).hexdigest()


_issuer_key_cached = functools.lru_cache(maxsize=1024)(issuer_key_of)
"""x509 entries carry their issuer in every entry's chain; a log has a few hundred issuers."""

_load = x509.load_der_x509_certificate
_sha256 = hashlib.sha256
_PRECERT = LogEntryType.PRECERT_ENTRY


def parse_entry(entry: LogEntry, watched: Collection[str] | str) -> Parsed:
    """Index one entry; ``watched`` is a set of issuer keys or :data:`ALL`."""
    leaf = entry.leaf
    if leaf is None:
        return Parsed(_bare(entry, entry.timestamp_ms or 0), None, "unknown entry type")
    timestamped = leaf.timestamped_entry
    timestamp = timestamped.timestamp
    precert = timestamped.entry_type is _PRECERT
    chain = entry.chain
    issuer_der = chain[0] if chain else None
    issuer_key: str | None
    try:
        if precert:
            key_hash = timestamped.issuer_key_hash
            assert key_hash is not None
            issuer_key = key_hash.hex()
            tbs = timestamped.certificate
            cert_der = entry.pre_certificate
            if cert_der is None:
                raise DecodeError("no precertificate in extra_data")
            certificate = _load(cert_der)
            if _precert_tbs(cert_der) != tbs:
                raise DecodeError("the precertificate in extra_data does not match the leaf TBS")
        else:
            cert_der = timestamped.certificate
            certificate = _load(cert_der)
            tbs = _final_tbs(certificate, cert_der)
            issuer_key = _issuer_key_cached(issuer_der) if issuer_der is not None else None
        serial = format(certificate.serial_number, "x")
        is_watched = issuer_key is not None and (watched == ALL or issuer_key in watched)
        if is_watched:
            info: dict[str, Any] | None = describe(certificate)
        else:  # the common case: nothing more to keep
            row = EntryRow(
                entry.index,
                precert,
                timestamp,
                issuer_key,
                serial,
                _sha256(tbs).digest(),
                False,
                None,
                None,
            )
            return Parsed(row, None)
    except (DecodeError, ValueError) as exc:
        return Parsed(_bare(entry, timestamp, precert), issuer_der, str(exc)[:200])
    row = EntryRow(
        entry.index,
        precert,
        timestamp,
        issuer_key,
        serial,
        _sha256(tbs).digest(),
        True,
        info,
        cert_der,
    )
    return Parsed(row, issuer_der)


def _precert_tbs(der_bytes: bytes) -> bytes:
    """TBS minus poison: the fast walk over a certificate cryptography has already parsed,
    the strict one when the fast one cannot (e.g. no poison)."""
    try:
        return tbs_without_poison(der_bytes)
    except (ValueError, IndexError):
        return tbs_for_ct(der_bytes)


def _final_tbs(certificate: x509.Certificate, der_bytes: bytes) -> bytes:
    """TBS minus the SCT list, by cryptography (Rust), falling back to the strict walk."""
    try:
        return certificate.tbs_precertificate_bytes
    except ValueError:
        return tbs_for_ct(der_bytes)


def _bare(entry: LogEntry, timestamp: int, precert: bool = False) -> EntryRow:
    return EntryRow(entry.index, precert, timestamp, None, None, None, False, None, None)


def describe(certificate: x509.Certificate) -> dict[str, Any]:
    """What a status check and a report need: serial, issuer, names, validity, URLs."""
    info: dict[str, Any] = {
        "serial": format(certificate.serial_number, "x"),
        "issuer": certificate.issuer.rfc4514_string(),
        "not_before": certificate.not_valid_before_utc.timestamp(),
        "not_after": certificate.not_valid_after_utc.timestamp(),
        "names": [],
        "ocsp": [],
        "crl": [],
    }
    try:
        extensions = certificate.extensions
    except ValueError as exc:
        info["extensions_error"] = str(exc)[:200]
        return info
    for extension in extensions:
        value = extension.value
        if isinstance(value, x509.SubjectAlternativeName):
            info["names"] = [str(n) for n in value.get_values_for_type(x509.DNSName)]
        elif isinstance(value, x509.AuthorityInformationAccess):
            info["ocsp"] = [
                d.access_location.value
                for d in value
                if d.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(d.access_location, x509.UniformResourceIdentifier)
            ]
        elif isinstance(value, x509.CRLDistributionPoints):
            info["crl"] = [
                n.value
                for point in value
                for n in point.full_name or ()
                if isinstance(n, x509.UniformResourceIdentifier)
            ]
    return info
