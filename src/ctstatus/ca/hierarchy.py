"""What the CA hierarchy of an instance is, as plain data for `ca show` and its JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from ctstatus.instance import Instance
from ctstatus.keys.signer import KeyAlgorithm


@dataclass(frozen=True)
class CaSummary:
    role: str
    name: str
    subject: str
    issuer: str
    key_algorithm: str
    key: str
    serial: str
    not_before: str
    not_after: str
    sha256: str
    certificate: str
    signature_ok: bool
    serials_by_state: dict[str, int] | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def describe_hierarchy(instance: Instance, *, with_ledger: bool = True) -> list[CaSummary]:
    """Root first. Checks each certificate's signature against its issuer in the hierarchy."""
    root_ca, issuing_ca = instance.cas
    root = instance.certificate(root_ca)
    issuing = instance.certificate(issuing_ca)
    counts: dict[str, dict[str, int]] = {}  # CA name -> state -> serials
    if with_ledger:
        ledger = instance.open_ledger()
        try:
            for ca in (root_ca, issuing_ca):
                issuer = ledger.issuer_by_name(ca.name)
                by_state = {} if issuer is None else ledger.count_by_state(issuer.id)
                counts[ca.name] = {state.value: count for state, count in by_state.items()}
        finally:
            ledger.close()
    result = []
    for role, ca, certificate, parent in (
        ("root", root_ca, root, root),
        ("issuing", issuing_ca, issuing, root),
    ):
        result.append(
            CaSummary(
                role=role,
                name=ca.name,
                subject=certificate.subject.rfc4514_string(),
                issuer=certificate.issuer.rfc4514_string(),
                key_algorithm=KeyAlgorithm.of(certificate.public_key()).value,  # type: ignore[arg-type]
                key=ca.key,
                serial=f"{certificate.serial_number:x}",
                not_before=certificate.not_valid_before_utc.isoformat(),
                not_after=certificate.not_valid_after_utc.isoformat(),
                sha256=certificate.fingerprint(hashes.SHA256()).hex(),
                certificate=str(instance.path(ca.certificate)),
                signature_ok=_issued_by(certificate, parent),
                serials_by_state=counts.get(ca.name) if with_ledger else None,
            )
        )
    return result


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
