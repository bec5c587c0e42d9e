"""``ctstatus check``: open everything an instance needs and say what works.

Each check runs on its own so that one failure does not hide the others; a failing check keeps
the one-line message of the :class:`UserError` that caused it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ctstatus.ca.lint import lint_certificate
from ctstatus.config import CaKeyConfig
from ctstatus.errors import UserError
from ctstatus.instance import Instance
from ctstatus.keys.signer import verify_signature
from ctstatus.ledger import SerialState


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def run_checks(instance: Instance) -> list[CheckResult]:
    """The ledger, then each CA's certificate and key; every check runs whatever came before."""
    checks: list[tuple[str, Callable[[], str]]] = [("ledger", functools.partial(_ledger, instance))]
    for ca in instance.cas:
        checks.append((f"{ca.name} certificate", functools.partial(_certificate, instance, ca)))
        checks.append((f"{ca.name} key", functools.partial(_key, instance, ca)))
    results = []
    for name, check in checks:
        try:
            results.append(CheckResult(name, True, check()))
        except UserError as error:
            results.append(CheckResult(name, False, str(error)))
    return results


def _ledger(instance: Instance) -> str:
    root_ca, issuing_ca = instance.cas
    ledger = instance.open_ledger()
    try:
        names = [issuer.name for issuer in ledger.issuers()]
        missing = [ca.name for ca in instance.cas if ca.name not in names]
        if missing:
            raise UserError(f"issuer(s) {', '.join(missing)} not in the ledger")
        # The issuing CA is a serial of the root (init and ledger revision 0003 record it); only
        # checked here, never written: `check` changes nothing.
        root = ledger.issuer_by_name(root_ca.name)
        assert root is not None
        serial = instance.certificate(issuing_ca).serial_number
        record = ledger.get(root.id, serial)
    finally:
        ledger.close()
    if record is None:
        raise UserError(
            f"the {issuing_ca.name} certificate (serial {serial:x}) is not a serial of "
            f"{root_ca.name} in the ledger, so the root's CRL cannot answer for it",
            "run `ctstatus ledger migrate` (revision 0003 records it)",
        )
    if record.state is SerialState.REVOKED:
        raise UserError(
            f"the {issuing_ca.name} certificate (serial {serial:x}) is revoked by "
            f"{root_ca.name}: certificates it issues will not be trusted",
            "configure a new issuing CA",
        )
    return f"reachable, schema current, issuers: {', '.join(names)}"


def _certificate(instance: Instance, ca: CaKeyConfig) -> str:
    root_ca = instance.cas[0]
    certificate = instance.certificate(ca)
    try:
        certificate.verify_directly_issued_by(instance.certificate(root_ca))
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise UserError(f"{ca.name} is not validly signed by {root_ca.name}: {exc}") from None
    _, findings = lint_certificate(certificate.public_bytes(Encoding.DER))
    errors = [str(finding) for finding in findings if finding.is_error]
    if errors:
        raise UserError(f"pkilint: {'; '.join(errors)}")
    return f"signed by {root_ca.name}; pkilint: no errors, {len(findings)} other findings"


def _key(instance: Instance, ca: CaKeyConfig) -> str:
    certificate = instance.certificate(ca)
    signer = instance.signer(ca)
    try:
        spki = PublicFormat.SubjectPublicKeyInfo
        certified = certificate.public_key().public_bytes(Encoding.DER, spki)
        if signer.public_key().public_bytes(Encoding.DER, spki) != certified:
            raise UserError(
                f"the key at {signer.description} does not match the certificate of {ca.name}",
                "the config points at the wrong key or certificate",
            )
        probe = b"ctstatus check"
        if not verify_signature(signer.public_key(), signer.sign(probe), probe):
            raise UserError(f"the key at {signer.description} makes signatures that do not verify")
        return f"opened {signer.description}; matches the certificate; signs"
    finally:
        signer.close()
