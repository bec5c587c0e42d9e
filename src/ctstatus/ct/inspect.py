"""Checking the SCTs embedded in a certificate: each signature, then the browser policy.

The two questions are kept apart on purpose. "Does this SCT verify?" depends only on the log's
key, the certificate and its issuer, and stays true forever. "Does the certificate meet the
policy?" depends on the log list's current states: a real certificate from 2018 has SCTs that
verify perfectly from logs that have since been retired or rejected. Reporting both lets a
person see which one failed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from ctstatus.ct.errors import SctVerificationError
from ctstatus.ct.loglist import Log, LogList
from ctstatus.ct.policy import CtPolicy, LoggedSct, PolicyVerdict, evaluate
from ctstatus.ct.reader import CertificateSummary, describe_certificate
from ctstatus.ct.sct import verify_sct
from ctstatus.ct.structures import SignedCertificateTimestamp, scts_from_certificate


def iso_ms(when: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as SCT timestamps have them."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SctCheck:
    """One embedded SCT: its log (if the list knows it) and whether its signature verifies.

    ``valid`` is ``None`` when the log is unknown: without a key nothing can be said.
    """

    sct: SignedCertificateTimestamp
    log: Log | None
    valid: bool | None
    error: str | None = None

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.sct.timestamp_ms / 1000, UTC)

    @property
    def log_id_b64(self) -> str:
        return base64.b64encode(self.sct.log_id).decode()

    @property
    def log_name(self) -> str:
        return self.log.description if self.log else f"unknown log {self.log_id_b64}"

    @property
    def verdict(self) -> str:
        if self.valid is None:
            return "unverified (log not in the list)"
        return "valid" if self.valid else f"INVALID: {self.error}"

    def to_json(self) -> dict[str, object]:
        return {
            "log_id": self.log_id_b64,
            "log": self.log.description if self.log else None,
            "operator": self.log.operator if self.log else None,
            "log_state": self.log.state.value if self.log else None,
            "timestamp": iso_ms(self.timestamp),
            "signature": "unverified"
            if self.valid is None
            else "valid"
            if self.valid
            else "invalid",
            "error": self.error,
        }


@dataclass(frozen=True)
class EmbeddedSctReport:
    """Everything ``ctstatus ct verify-scts`` says about one certificate."""

    certificate: CertificateSummary
    issuer_matches: bool
    checks: tuple[SctCheck, ...]
    verdict: PolicyVerdict

    @property
    def signatures_ok(self) -> bool:
        """Every SCT whose log is known verifies (and there is at least one SCT)."""
        return bool(self.checks) and not any(c.valid is False for c in self.checks)

    @property
    def ok(self) -> bool:
        return self.signatures_ok and self.verdict.compliant

    def to_json(self) -> dict[str, object]:
        return {
            "certificate": {**self.certificate.to_json(), "issuer_matches": self.issuer_matches},
            "scts": [check.to_json() for check in self.checks],
            "signatures_ok": self.signatures_ok,
            "policy": {
                "name": self.verdict.policy.value,
                "compliant": self.verdict.compliant,
                "required": self.verdict.required,
                "counted": [s.log.description for s in self.verdict.counted],
                "problems": list(self.verdict.problems),
            },
            "ok": self.ok,
        }


def check_embedded_scts(
    certificate_der: bytes,
    issuer_der: bytes,
    log_list: LogList,
    policy: CtPolicy,
    *,
    now: datetime,
) -> EmbeddedSctReport:
    """Verify every SCT embedded in a final certificate, then judge them under ``policy``.

    Only SCTs that verify count for the policy. A malformed certificate or SCT list raises
    :class:`~ctstatus.ct.errors.DecodeError`; a bad SCT is a verdict, not an exception.
    """
    certificate = x509.load_der_x509_certificate(certificate_der)
    issuer = x509.load_der_x509_certificate(issuer_der)
    sct_list = scts_from_certificate(certificate_der)
    scts = sct_list.scts if sct_list is not None else ()
    now_ms = int(now.timestamp() * 1000)
    checks: list[SctCheck] = []
    for sct in scts:
        log = log_list.by_id(sct.log_id)
        if log is None:
            checks.append(SctCheck(sct, None, None))
            continue
        try:
            verify_sct(
                sct, log.public_key(), certificate=certificate_der, issuer=issuer_der, now_ms=now_ms
            )
        except SctVerificationError as exc:
            checks.append(SctCheck(sct, log, False, str(exc)))
        else:
            checks.append(SctCheck(sct, log, True))
    counted = [LoggedSct(c.log, c.timestamp) for c in checks if c.valid and c.log is not None]
    verdict = evaluate(
        policy,
        counted,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )
    return EmbeddedSctReport(
        describe_certificate(certificate_der),
        certificate.issuer == issuer.subject,
        tuple(checks),
        verdict,
    )
