"""The ledger's tables (SQLAlchemy Core), the current shape of what the migrations build.

CHECK constraints carry what a single row must satisfy; the triggers in ``triggers.py`` carry what
depends on the previous row (transitions, immutability, no deletes). The state-dependent CHECKs are
derived from ``states.py``. Migrations are snapshots: a test compares the migrated database with
this metadata, so a change here without a migration fails the suite.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from ctstatus.ledger.reasons import RevocationReason
from ctstatus.ledger.states import (
    DIRECT_KIND_STATES,
    HAS_PRECERT,
    HOLDS_REQUEST,
    MAY_HAVE_CERT,
    CertificateKind,
    SerialState,
)
from ctstatus.ledger.timestamps import UTCDateTime

VERSION_TABLE: Final = "ledger_alembic_version"
"""Alembic's version table, named so the ledger can share a database with other components."""

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def sql_in(column: str, values: Iterable[str | int], *, negate: bool = False) -> str:
    """``column [NOT] IN (...)`` as literal SQL (values are our own enum members, never input)."""
    rendered = [str(v) if isinstance(v, int) else f"'{v}'" for v in values]
    return f"{column} {'NOT IN' if negate else 'IN'} ({', '.join(rendered)})"


def _states(states: Iterable[SerialState]) -> list[str]:
    """States in declaration order, so generated SQL is stable."""
    wanted = set(states)
    return [s.value for s in SerialState if s in wanted]


ALL_STATES = _states(SerialState)
STATE_CHECK = sql_in("state", ALL_STATES)
_SUBSCRIBER = CertificateKind.SUBSCRIBER.value
KIND_CHECK = sql_in("kind", [k.value for k in CertificateKind])
PRECERT_CHECK = (
    f"(kind = '{_SUBSCRIBER}' AND ("
    f"({sql_in('state', _states(HAS_PRECERT))} AND precert_der IS NOT NULL)"
    f" OR ({sql_in('state', _states(HAS_PRECERT), negate=True)} AND precert_der IS NULL)))"
    f" OR (kind <> '{_SUBSCRIBER}' AND precert_der IS NULL"
    f" AND {sql_in('state', _states(DIRECT_KIND_STATES))})"
)
"""Subscriber serials carry a precertificate exactly from ``precert_signed`` on; CA and
responder certificates never have one (they are not logged to CT)."""
CERT_ALLOWED_CHECK = f"cert_der IS NULL OR {sql_in('state', _states(MAY_HAVE_CERT))}"
CERT_REQUIRED_CHECK = "state <> 'issued' OR cert_der IS NOT NULL"
REVOKED_CHECK = (
    "(state = 'revoked' AND revoked_at IS NOT NULL AND revocation_reason IS NOT NULL)"
    " OR (state <> 'revoked' AND revoked_at IS NULL AND revocation_reason IS NULL)"
)
_REASONS = [int(r) for r in RevocationReason]
REASON_CHECK = f"revocation_reason IS NULL OR {sql_in('revocation_reason', _REASONS)}"
SERIAL_HEX_CHECK = (
    "length(serial) BETWEEN 1 AND 40 AND substr(serial, 1, 1) <> '0'"
    " AND ltrim(serial, '0123456789abcdef') = ''"
)
REQUEST_HELD_WHERE = f"request_id IS NOT NULL AND {sql_in('state', _states(HOLDS_REQUEST))}"


def _event_state_check(column: str) -> str:
    return f"{column} IS NULL OR {sql_in(column, ALL_STATES)}"


metadata = MetaData(naming_convention=NAMING_CONVENTION)

issuers = Table(
    "issuers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("certificate_der", LargeBinary, nullable=False),
    Column("cert_sha256", LargeBinary, nullable=False),
    Column("spki_sha256", LargeBinary, nullable=False),
    Column("subject_key_id", LargeBinary, nullable=False),
    Column("name_hash_sha1", LargeBinary, nullable=False),
    Column("key_hash_sha1", LargeBinary, nullable=False),
    Column("name_hash_sha256", LargeBinary, nullable=False),
    Column("key_hash_sha256", LargeBinary, nullable=False),
    Column("not_after", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("name"),
    UniqueConstraint("cert_sha256"),
    CheckConstraint("length(name) BETWEEN 1 AND 64", name="name"),
    CheckConstraint("length(cert_sha256) = 32", name="cert_sha256"),
    CheckConstraint("length(spki_sha256) = 32", name="spki_sha256"),
    CheckConstraint("length(name_hash_sha1) = 20 AND length(key_hash_sha1) = 20", name="sha1"),
    CheckConstraint(
        "length(name_hash_sha256) = 32 AND length(key_hash_sha256) = 32", name="sha256"
    ),
    # One issuer per (subject, key): an OCSP CertID must resolve to exactly one issuer row.
    Index(None, "name_hash_sha1", "key_hash_sha1", unique=True),
    Index(None, "name_hash_sha256", "key_hash_sha256", unique=True),
    Index(None, "spki_sha256"),
)

serials = Table(
    "serials",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("issuer_id", Integer, ForeignKey("issuers.id"), nullable=False),
    Column("serial", String(40), nullable=False),
    Column("state", String(16), nullable=False),
    Column("request_id", String(255), nullable=True),
    Column("tbs_der", LargeBinary, nullable=True),
    Column("precert_der", LargeBinary, nullable=True),
    Column("cert_der", LargeBinary, nullable=True),
    Column("not_before", UTCDateTime, nullable=False),
    Column("not_after", UTCDateTime, nullable=False),
    Column("crl_shard", Integer, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revocation_reason", SmallInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False, server_default=CertificateKind.SUBSCRIBER.value),
    UniqueConstraint("issuer_id", "serial"),
    CheckConstraint(SERIAL_HEX_CHECK, name="serial_hex"),
    CheckConstraint(STATE_CHECK, name="state"),
    CheckConstraint(KIND_CHECK, name="kind"),
    CheckConstraint(PRECERT_CHECK, name="precert"),
    CheckConstraint(CERT_ALLOWED_CHECK, name="cert_allowed"),
    CheckConstraint(CERT_REQUIRED_CHECK, name="cert_required"),
    CheckConstraint(REVOKED_CHECK, name="revoked"),
    CheckConstraint(REASON_CHECK, name="reason"),
    CheckConstraint("crl_shard >= 0", name="crl_shard"),
    CheckConstraint("not_before < not_after", name="validity"),
    Index(None, "state", "updated_at"),
    Index(None, "issuer_id", "crl_shard", "state"),
    Index(
        "ix_serials_request_held",
        "request_id",
        unique=True,
        sqlite_where=text(REQUEST_HELD_WHERE),
        postgresql_where=text(REQUEST_HELD_WHERE),
    ),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("issuer_id", Integer, ForeignKey("issuers.id"), nullable=False),
    Column("serial_id", BigId, ForeignKey("serials.id"), nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(32), nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=True),
    Column("detail", Text, nullable=False),
    CheckConstraint(_event_state_check("from_state"), name="from_state"),
    CheckConstraint(_event_state_check("to_state"), name="to_state"),
    Index(None, "serial_id", "id"),
    Index(None, "issuer_id", "id"),
)

LEDGER_TABLES: Final = (issuers, serials, events)
"""The append-only truth: the triggers in ``triggers.py`` guard exactly these tables."""

# ------------------------------------------------------------------------- derived outputs
# The tables below are caches and outputs of the status services, never the truth: a row may be
# replaced or go stale, and every reader checks it against ``serials`` before relying on it.

OCSP_HASH_ALGORITHMS: Final = ("sha1", "sha256", "sha384", "sha512")
"""CertID hash algorithms a pre-signed OCSP response may be stored for."""

ocsp_responses = Table(
    "ocsp_responses",
    metadata,
    Column("serial_id", BigId, ForeignKey("serials.id"), nullable=False),
    Column("hash_algorithm", String(8), nullable=False),
    Column("issuer_id", Integer, ForeignKey("issuers.id"), nullable=False),
    Column("serial_state", String(16), nullable=False),
    Column("this_update", UTCDateTime, nullable=False),
    Column("next_update", UTCDateTime, nullable=False),
    Column("refresh_at", UTCDateTime, nullable=False),
    Column("responder", String(64), nullable=False),
    Column("response_der", LargeBinary, nullable=False),
    PrimaryKeyConstraint("serial_id", "hash_algorithm"),
    CheckConstraint(sql_in("hash_algorithm", OCSP_HASH_ALGORITHMS), name="hash_algorithm"),
    CheckConstraint(sql_in("serial_state", ALL_STATES), name="serial_state"),
    CheckConstraint("this_update <= refresh_at AND refresh_at < next_update", name="times"),
    Index(None, "refresh_at"),
    Index(None, "issuer_id", "serial_id"),
)
"""Pre-signed OCSP responses, one per serial and CertID hash, with the state each answers for."""

crls = Table(
    "crls",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("issuer_id", Integer, ForeignKey("issuers.id"), nullable=False),
    Column("shard", Integer, nullable=False),
    Column("partitioned", Boolean, nullable=False),
    Column("url", String(2048), nullable=False),
    Column("crl_number", BigInteger, nullable=False),
    Column("this_update", UTCDateTime, nullable=False),
    Column("next_update", UTCDateTime, nullable=False),
    Column("entries", Integer, nullable=False),
    Column("entries_sha256", LargeBinary, nullable=False),
    Column("crl_der", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("issuer_id", "shard", "crl_number"),
    CheckConstraint("shard >= 0", name="shard"),
    CheckConstraint("crl_number >= 0", name="crl_number"),
    CheckConstraint("entries >= 0", name="entries"),
    CheckConstraint("this_update < next_update", name="times"),
    Index(None, "issuer_id", "shard", "id"),
)
"""Every CRL published, newest last per (issuer, shard); the newest is what is served."""
