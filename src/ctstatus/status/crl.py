"""Build one CRL (RFC 5280 §5, BR §7.2): a full CRL of an issuer, or one of its shards.

v2; issuer byte-identical to the CA's subject; AKI; CRLNumber; for a shard a *critical*
IssuingDistributionPoint whose fullName is exactly the shard's URL (the URI in its certificates'
CRLDP, as CCADB and MRSP §6.1.2 require) with onlyContainsUserCerts, since the shards of an issuing
CA only hold subscriber certificates; a full CRL carries no IDP (BR §7.2.2: NOT RECOMMENDED).
Entries carry a reasonCode unless the reason is unspecified (BR §7.2.2), never certificateHold
(the ledger cannot hold it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.keys.assemble import sign_crl
from ctstatus.keys.signer import Signer
from ctstatus.ledger import RevocationReason
from ctstatus.status.db import RevokedEntry
from ctstatus.status.ocsp_response import reason_flag

MAX_VALIDITY: Final = timedelta(days=10)
CRL_NUMBER_LIMIT: Final = 2**159


def entries_digest(entries: Sequence[RevokedEntry]) -> bytes:
    """A fingerprint of an entry list, stored with each CRL (serial, time, reason)."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(
            b"%x,%d,%d;" % (entry.serial, int(entry.revoked_at.timestamp()), entry.reason)
        )
    return digest.digest()


def build_crl(
    issuer: x509.Certificate,
    signer: Signer,
    entries: Sequence[RevokedEntry],
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    shard_url: str | None,
) -> bytes:
    """The DER of a signed CRL; ``shard_url`` None for a full CRL, else the shard's URL."""
    if not 0 <= number < CRL_NUMBER_LIMIT:
        raise ValueError(f"CRLNumber {number} is outside 0..2^159 (BR §7.2.2)")
    if not this_update < next_update <= this_update + MAX_VALIDITY:
        raise ValueError("a subscriber CRL's nextUpdate must be within 10 days (BR §7.2)")
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    if shard_url is not None:
        builder = builder.add_extension(
            x509.IssuingDistributionPoint(
                full_name=[x509.UniformResourceIdentifier(shard_url)],
                relative_name=None,
                only_contains_user_certs=True,
                only_contains_ca_certs=False,
                only_some_reasons=None,
                indirect_crl=False,
                only_contains_attribute_certs=False,
            ),
            critical=True,
        )
    for entry in entries:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        flag = reason_flag(RevocationReason(entry.reason))
        if flag is not None:
            revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return sign_crl(builder, signer).public_bytes(Encoding.DER)
