"""Who signs OCSP responses for an issuer: the issuing CA's own key (the default mode).

The delegated mode lives in :mod:`ctstatus.status.delegated`; both offer ``identity`` (the
signer to use now, or None), ``refresh`` (prepare or rotate) and ``close``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from ctstatus.errors import SigningKeyError
from ctstatus.keys.signer import Signer
from ctstatus.ledger import Issuer
from ctstatus.status.ocsp_response import ResponderIdentity, same_key


class IdentitySource(Protocol):
    def identity(self, issuer: Issuer, now: datetime) -> ResponderIdentity | None: ...

    def refresh(self, issuer: Issuer, now: datetime) -> Any: ...

    def close(self) -> None: ...


class CaIdentities:
    """Each issuer signs its own responses with its CA key (signers keyed by issuer name)."""

    def __init__(self, signers: Mapping[str, Signer]) -> None:
        self._signers = dict(signers)
        self._identities: dict[int, ResponderIdentity] = {}

    def identity(self, issuer: Issuer, now: datetime) -> ResponderIdentity | None:
        identity = self._identities.get(issuer.id)
        if identity is None:
            signer = self._signers.get(issuer.name)
            if signer is None:
                return None
            certificate = issuer.certificate
            if not same_key(signer, certificate):
                raise SigningKeyError(
                    f"the key {signer.description} is not the key of issuer {issuer.name}",
                    "check [ca.issuing] key and certificate",
                )
            identity = ResponderIdentity(signer, certificate, delegated=False)
            self._identities[issuer.id] = identity
        return identity

    def refresh(self, issuer: Issuer, now: datetime) -> None:
        """Nothing to rotate: the CA certificate is the responder."""

    def close(self) -> None:
        for signer in self._signers.values():
            signer.close()
        self._signers.clear()
        self._identities.clear()
