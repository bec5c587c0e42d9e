"""The fast poison cut agrees byte for byte with the strict :mod:`ctstatus.ct.der` one."""

from __future__ import annotations

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctstatus.ct import der
from ctstatus.ct.errors import DecodeError
from ctstatus.ctlog.tbs import tbs_without_poison

from .conftest import CtCa


@pytest.fixture(scope="module")
def precerts(test_ca: CtCa) -> list[bytes]:
    return [test_ca.precert().precert for _ in range(3)]


def strict(certificate: bytes) -> bytes:
    return der.tbs_without_extension(der.certificate_tbs(certificate), der.OID_CT_POISON)


def test_same_bytes_as_the_strict_cut(precerts: list[bytes]) -> None:
    for precert in precerts:
        assert tbs_without_poison(precert) == strict(precert)


def test_no_poison_is_an_error(test_ca: CtCa) -> None:
    with pytest.raises(ValueError, match="poison"):
        tbs_without_poison(test_ca.plain())


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


def test_issuer_name_is_the_raw_issuer_field(test_ca: CtCa, precerts: list[bytes]) -> None:
    from ctstatus.ctlog.tbs import issuer_name_der

    for certificate in [*precerts, test_ca.plain(), test_ca.issuing_der, test_ca.root_der]:
        parsed = x509.load_der_x509_certificate(certificate)
        assert issuer_name_der(certificate) == parsed.issuer.public_bytes()
