"""Certificate profiles of BR §7.1.2: root CA, TLS subordinate CA and TLS server (subscriber).

Each profile is a pure function from inputs to a ``CertificateBuilder``: nothing here signs or
touches storage, so the exact same TBS can be linted on a throwaway key and then signed for real.
Extensions are added in one fixed order per profile; the precertificate and the final certificate
of issue #4 must keep that order (RFC 6962 §3.2).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from ctstatus.keys.signer import PublicKey

#: CA/Browser Forum reserved policy: domain validated (BR §7.1.6.1).
DOMAIN_VALIDATED = x509.ObjectIdentifier("2.23.140.1.2.1")

#: Serial numbers: at least 64 CSPRNG bits (BR §7.1), positive, below 2^159 (20 DER octets).
SERIAL_BITS = 128

SubjectAltName = x509.DNSName | x509.IPAddress


def new_serial() -> int:
    """A fresh positive serial with ``SERIAL_BITS`` bits of CSPRNG output."""
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial > 0:
            return serial


def validity(not_before: datetime, days: int) -> tuple[datetime, datetime]:
    """``days`` of validity counted the BR way: notAfter is inclusive (BR §1.6.1 'Validity')."""
    return not_before, not_before + timedelta(days=days) - timedelta(seconds=1)


def ca_subject(country: str, organization: str, common_name: str) -> x509.Name:
    """CA subject in the BR §7.1.4.2 attribute order: C, O, CN."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def root_ca(
    subject: x509.Name, public_key: PublicKey, serial: int, not_before: datetime, days: int
) -> x509.CertificateBuilder:
    """BR §7.1.2.1 root CA: CA:TRUE without pathLen, SKI and AKI.

    keyUsage has digitalSignature besides keyCertSign and cRLSign so the root can sign OCSP
    responses for its subordinate CAs itself.
    """
    start, end = validity(not_before, days)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    return (
        x509.CertificateBuilder()
        .serial_number(serial)
        .issuer_name(subject)
        .subject_name(subject)
        .public_key(public_key)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, digital_signature=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(ski.digest, None, None),
            critical=False,
        )
    )


def subordinate_ca(
    subject: x509.Name,
    public_key: PublicKey,
    issuer: x509.Certificate,
    serial: int,
    not_before: datetime,
    days: int,
    *,
    ca_issuers_url: str,
    crl_url: str,
) -> x509.CertificateBuilder:
    """BR §7.1.2.6 TLS subordinate CA that signs subscriber certificates, OCSP and CRLs.

    pathLen 0 (it issues only end-entity certificates); EKU serverAuth only; the DV policy;
    digitalSignature in KU because it signs OCSP responses itself.
    """
    return (
        _issued(issuer, subject, public_key, serial, not_before, days)
        .add_extension(_authority_key_id(issuer), critical=False)
        .add_extension(_aia(None, ca_issuers_url), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(DOMAIN_VALIDATED, None)]),
            critical=False,
        )
        .add_extension(_crl_distribution_point(crl_url), critical=False)
        .add_extension(_key_usage(key_cert_sign=True, digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def tls_server(
    public_key: PublicKey,
    names: Sequence[SubjectAltName],
    issuer: x509.Certificate,
    serial: int,
    not_before: datetime,
    days: int,
    *,
    ocsp_url: str | None,
    ca_issuers_url: str,
    crl_url: str,
) -> x509.CertificateBuilder:
    """BR §7.1.2.7 domain-validated TLS server certificate (the final certificate's TBS).

    ``ocsp_url`` is None for short-lived certificates (BR §7.1.2.7.7: the OCSP URL is a MAY).

    The subject is empty and the SAN extension critical (BR §7.1.2.7.2: a commonName is NOT
    RECOMMENDED for DV; RFC 5280 §4.2.1.6: an empty subject makes the SAN critical). The CRL
    distribution point is the serial's fixed shard (CCADB's partitioned CRLs).
    """
    if not names:
        raise ValueError("a TLS server certificate needs at least one DNS name or IP address")
    return (
        _issued(issuer, x509.Name([]), public_key, serial, not_before, days)
        .add_extension(_authority_key_id(issuer), critical=False)
        .add_extension(_aia(ocsp_url, ca_issuers_url), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(DOMAIN_VALIDATED, None)]),
            critical=False,
        )
        .add_extension(_crl_distribution_point(crl_url), critical=False)
        .add_extension(_key_usage(key_cert_sign=False, digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=True)
    )


def parse_names(values: Sequence[str]) -> list[SubjectAltName]:
    """SANs from user input: IP addresses where they parse as such, DNS names otherwise."""
    result: list[SubjectAltName] = []
    for value in values:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            result.append(x509.DNSName(value.lower().rstrip(".")))
    return result


def _issued(
    issuer: x509.Certificate,
    subject: x509.Name,
    public_key: PublicKey,
    serial: int,
    not_before: datetime,
    days: int,
) -> x509.CertificateBuilder:
    """The fields every certificate issued by ``issuer`` starts with (extensions come next)."""
    start, end = validity(not_before, days)
    return (
        x509.CertificateBuilder()
        .serial_number(serial)
        .issuer_name(issuer.subject)
        .subject_name(subject)
        .public_key(public_key)
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _aia(ocsp_url: str | None, ca_issuers_url: str) -> x509.AuthorityInformationAccess:
    """AIA: the OCSP responder (subscriber certificates) and where the issuer is published."""
    locations = [] if ocsp_url is None else [(AuthorityInformationAccessOID.OCSP, ocsp_url)]
    locations.append((AuthorityInformationAccessOID.CA_ISSUERS, ca_issuers_url))
    return x509.AuthorityInformationAccess(
        [x509.AccessDescription(oid, x509.UniformResourceIdentifier(url)) for oid, url in locations]
    )


def _key_usage(*, key_cert_sign: bool, digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _crl_distribution_point(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )
