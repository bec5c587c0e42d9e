"""Find the issuer an OCSP CertID names, for every hash a client may use.

The ledger indexes SHA-1 and SHA-256 CertID hashes; SHA-384 and SHA-512 are computed here from the
issuer certificate, so a client gets an answer with whichever of the four it chose (RFC 6960
§4.1.1; echoing the client's algorithm, spec-digest §3.1). The index is an in-memory dict: the
responder's hot path must not touch the database to learn who an issuer is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ctstatus.ledger import Issuer
from ctstatus.ledger.hashes import raw_public_key
from ctstatus.status.ocsp_request import HASH_NAMES, CertIdQuery


@dataclass(frozen=True)
class CertIdHashes:
    """issuerNameHash and issuerKeyHash of one issuer under one hash algorithm."""

    name_hash: bytes
    key_hash: bytes


def cert_id_hashes(issuer: Issuer, hash_name: str) -> CertIdHashes:
    """The CertID hashes of ``issuer`` with ``hash_name`` (SHA-1/256 as the ledger stored them)."""
    if hash_name == "sha1":
        return CertIdHashes(issuer.name_hash_sha1, issuer.key_hash_sha1)
    if hash_name == "sha256":
        return CertIdHashes(issuer.name_hash_sha256, issuer.key_hash_sha256)
    certificate = issuer.certificate
    return CertIdHashes(
        hashlib.new(hash_name, certificate.subject.public_bytes()).digest(),
        hashlib.new(hash_name, raw_public_key(certificate)).digest(),
    )


class IssuerIndex:
    """(hash, issuerNameHash, issuerKeyHash) -> issuer, for every issuer and supported hash."""

    def __init__(self, issuers: Iterable[Issuer] = ()) -> None:
        self._by_hashes: dict[tuple[str, bytes, bytes], Issuer] = {}
        self._by_id: dict[int, Issuer] = {}
        for issuer in issuers:
            self.add(issuer)

    def add(self, issuer: Issuer) -> None:
        """Index ``issuer`` under each supported CertID hash."""
        self._by_id[issuer.id] = issuer
        for hash_name in HASH_NAMES:
            hashes = cert_id_hashes(issuer, hash_name)
            self._by_hashes[(hash_name, hashes.name_hash, hashes.key_hash)] = issuer

    def find(self, query: CertIdQuery) -> Issuer | None:
        """The issuer ``query`` names, or None (an issuer we do not serve: ``unauthorized``)."""
        return self._by_hashes.get((query.hash_name, query.name_hash, query.key_hash))

    def by_id(self, issuer_id: int) -> Issuer | None:
        return self._by_id.get(issuer_id)

    def __iter__(self) -> Iterator[Issuer]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
