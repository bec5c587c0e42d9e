"""The fast poison cut agrees byte for byte with the strict :mod:`ctstatus.ct.der` one."""

from __future__ import annotations

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctstatus.ct import der
from ctstatus.ct.errors import DecodeError
from ctstatus.ct.tbs import tbs_without_poison

from .conftest import PairingCa


@pytest.fixture(scope="module")
def precerts(ca: PairingCa) -> list[bytes]:
    return [ca.issue(poison_position=position).precert() for position in (0, 2, None)]


def _plain(ca: PairingCa) -> bytes:
    """A certificate of the same shape with no poison (an unrelated extension in its place)."""
    return ca.issue()._build(x509.OCSPNoCheck(), False, None)


def strict(certificate: bytes) -> bytes:
    return der.tbs_without_extension(der.certificate_tbs(certificate), der.OID_CT_POISON)


def test_same_bytes_as_the_strict_cut(precerts: list[bytes]) -> None:
    for precert in precerts:
        assert tbs_without_poison(precert) == strict(precert)


def test_no_poison_is_an_error(ca: PairingCa) -> None:
    with pytest.raises(ValueError, match="poison"):
        tbs_without_poison(_plain(ca))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_certificates_cryptography_accepts(
    precerts: list[bytes], data: st.DataObject
) -> None:
    mutated = bytearray(precerts[data.draw(st.integers(0, len(precerts) - 1))])
    for _ in range(data.draw(st.integers(1, 3))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    candidate = bytes(mutated)
    try:
        x509.load_der_x509_certificate(candidate)
    except (ValueError, x509.InvalidVersion):
        return  # the log refuses it before cutting
    try:
        expected: bytes | None = strict(candidate)
    except (DecodeError, ValueError):
        expected = None
    try:
        got: bytes | None = tbs_without_poison(candidate)
    except ValueError:
        got = None
    if expected is not None:
        assert got == expected


def test_issuer_name_is_the_raw_issuer_field(ca: PairingCa, precerts: list[bytes]) -> None:
    from ctstatus.ct.tbs import issuer_name_der

    for certificate in [*precerts, _plain(ca), ca.der]:
        parsed = x509.load_der_x509_certificate(certificate)
        assert issuer_name_der(certificate) == parsed.issuer.public_bytes()
