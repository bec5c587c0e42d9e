"""Fixtures that run every ledger test on SQLite and on PostgreSQL.

``ledger_url`` is parametrized ["sqlite", "postgresql"]. The PostgreSQL case creates a database
``ctstatus_test_<hex>`` per test module (a fresh one per test for ``fresh_ledger_url``) and drops it
``WITH (FORCE)`` afterwards. Tests share the module's database and keep out of each other's way with
their own issuer (``issuer`` fixture) and random serials -- rows cannot be deleted, by design.

The databases come from ``database_factory`` in ``tests/conftest.py`` (which also says how
PostgreSQL is found, and when its absence is a failure rather than a skip).

Helpers are reached through fixtures (``issuer``, ``make_ca``) rather than imports, because the
suite runs with ``--import-mode=importlib``, where test directories are not on ``sys.path``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ctstatus.clock import FrozenClock
from ctstatus.ledger import (
    Issuer,
    Ledger,
    RevocationReason,
    SerialRecord,
    SerialState,
    create_ledger_engine,
    migrate,
)
from ctstatus.ledger.states import path_to

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
NOT_BEFORE = T0 - timedelta(hours=1)
NOT_AFTER = T0 + timedelta(days=90)


# ---------------------------------------------------------------------------------- databases


@pytest.fixture(scope="module", params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, database_factory: Any) -> Iterator[str]:
    """URL of an empty database shared by the tests of one module, per backend."""
    with database_factory(request.param) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def fresh_ledger_url(request: pytest.FixtureRequest, database_factory: Any) -> Iterator[str]:
    """URL of a brand-new empty database for this test alone (migration tests)."""
    with database_factory(request.param) as url:
        yield url


@pytest.fixture(scope="module")
def ledger_engine(ledger_url: str) -> Iterator[sa.Engine]:
    """The module's engine, migrated to head."""
    engine = create_ledger_engine(ledger_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def ledger(ledger_engine: sa.Engine, clock: FrozenClock) -> Ledger:
    return Ledger(ledger_engine, clock)


# ------------------------------------------------------------------------------- certificates

_LEAF_KEY = ec.generate_private_key(ec.SECP256R1())


@dataclass
class TestCA:
    """A throwaway self-signed CA that signs precertificates and certificates for any serial."""

    __test__ = False
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate: x509.Certificate

    def _leaf(self, serial: int, *, precert: bool) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.test")]))
            .issuer_name(self.certificate.subject)
            .public_key(_LEAF_KEY.public_key())
            .serial_number(serial)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_AFTER)
        )
        if precert:
            builder = builder.add_extension(x509.PrecertPoison(), critical=True)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(Encoding.DER)

    def precert(self, serial: int) -> bytes:
        return self._leaf(serial, precert=True)

    def cert(self, serial: int) -> bytes:
        return self._leaf(serial, precert=False)


def make_test_ca(common_name: str | None = None, *, rsa_key: bool = False) -> TestCA:
    """A self-signed CA (P-256, or RSA-2048 on request) with a SubjectKeyIdentifier."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ctstatus tests"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, common_name or f"Test CA {secrets.token_hex(4)}"
            ),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - timedelta(days=30))
        .not_valid_after(T0 + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return TestCA(key, certificate)


@pytest.fixture(scope="session")
def make_ca() -> Callable[..., TestCA]:
    """Factory for throwaway CAs: ``make_ca(common_name=None, *, rsa_key=False)``."""
    return make_test_ca


# -------------------------------------------------------------------------- issuer + driver


def new_serial() -> int:
    """A random serial with 64 significant bits, as issuance allocates them."""
    return secrets.randbits(63) | (1 << 63)


@dataclass
class IssuerDriver:
    """A registered issuer with its CA, and shortcuts that drive its serials through the API."""

    ledger: Ledger
    issuer: Issuer
    ca: TestCA
    not_before: datetime = NOT_BEFORE
    not_after: datetime = NOT_AFTER
    new_serial: Callable[[], int] = field(default=new_serial)

    @property
    def id(self) -> int:
        return self.issuer.id

    def reserve(self, serial: int | None = None, **kw: Any) -> SerialRecord:
        """Reserve ``serial`` (a fresh random one by default) with test defaults."""
        args: dict[str, Any] = {
            "not_before": self.not_before,
            "not_after": self.not_after,
            "crl_shard": 0,
            "actor": "test",
        }
        args.update(kw)
        return self.ledger.reserve(self.id, self.new_serial() if serial is None else serial, **args)

    def step(self, serial: int, target: SerialState) -> SerialRecord:
        """Ask the API to move ``serial`` to ``target`` (reserve it, for the initial state)."""
        lg, i = self.ledger, self.id
        if target is SerialState.RESERVED:
            return self.reserve(serial)
        if target is SerialState.PRECERT_SIGNED:
            return lg.mark_precert_signed(i, serial, self.ca.precert(serial), actor="test")
        if target is SerialState.ISSUED:
            return lg.mark_issued(i, serial, self.ca.cert(serial), actor="test")
        if target is SerialState.ABANDONED:
            return lg.mark_abandoned(i, serial, "ct quorum not met", actor="test")
        if target is SerialState.NEVER_SIGNED:
            return lg.mark_never_signed(i, serial, "lint failed", actor="test")
        return lg.revoke(i, serial, RevocationReason.SUPERSEDED, actor="test")

    def drive_to(self, target: SerialState) -> SerialRecord:
        """A new serial, taken along the shortest path of the state machine to ``target``."""
        serial = self.new_serial()
        record = None
        for state in path_to(target):
            record = self.step(serial, state)
        assert record is not None
        assert record.state is target
        return record


@pytest.fixture
def issuer(ledger: Ledger) -> IssuerDriver:
    """A fresh issuer per test, so per-issuer counts and listings are the test's own."""
    ca = make_test_ca()
    registered = ledger.add_issuer(f"ca-{secrets.token_hex(6)}", ca.certificate, actor="test")
    return IssuerDriver(ledger, registered, ca)
