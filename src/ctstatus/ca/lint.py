"""pkilint (CA/Browser Forum TLS BR lints) in process, with validators built once per type.

Building a validator takes a large part of pkilint's ~1 s CLI start-up; linting one certificate
with a cached validator takes milliseconds, which makes linting every TBS before signing cheap.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pkilint import finding_filter, loader
from pkilint.cabf import serverauth
from pkilint.pkix import certificate as pkix_certificate
from pkilint.validation import ValidationFindingSeverity

from ctstatus.ca.lint_dispatch import accelerate


@dataclass(frozen=True)
class Finding:
    """One lint finding: severity (FATAL, ERROR, WARNING, NOTICE, INFO), code and context."""

    severity: str
    code: str
    message: str | None
    path: str

    @property
    def is_error(self) -> bool:
        return self.severity in ("FATAL", "ERROR")

    def __str__(self) -> str:
        detail = f": {self.message}" if self.message else ""
        return f"{self.severity} {self.code} at {self.path}{detail}"


@functools.cache
def _validator(certificate_type: Any) -> Any:
    return accelerate(
        pkix_certificate.create_pkix_certificate_validator_container(
            serverauth.create_decoding_validators(),
            serverauth.create_validators(certificate_type),
        )
    )


@functools.cache
def _filters(certificate_type: Any) -> Any:
    return serverauth.create_serverauth_finding_filters(certificate_type)


def lint_certificate(der: bytes) -> tuple[str, list[Finding]]:
    """Lint a DER certificate the way ``lint_cabf_serverauth_cert lint -d`` does.

    Returns the detected certificate type (e.g. ``ROOT_CA``, ``PRECERTIFICATE_DV``) and every
    finding of severity NOTICE or worse.
    """
    document = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "certificate")
    certificate_type = serverauth.determine_certificate_type(document)
    results = _validator(certificate_type).validate(document.root)
    results, _ = finding_filter.filter_results(_filters(certificate_type), results)
    findings = [
        Finding(
            severity=description.finding.severity.name,
            code=description.finding.code,
            message=description.message,
            path=str(result.node.path),
        )
        for result in results
        for description in result.finding_descriptions
        if description.finding.severity <= ValidationFindingSeverity.NOTICE
    ]
    return str(certificate_type.name), findings
