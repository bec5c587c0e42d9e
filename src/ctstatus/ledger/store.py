"""The ledger's API: every method is one transaction, and every state change writes its event.

State changes are compare-and-set in SQL (``UPDATE ... WHERE state IN (allowed predecessors)``),
so two workers racing on one serial cannot both win; the database triggers refuse anything that
slips past this code. The row is read first with ``SELECT ... FOR UPDATE`` (on SQLite the
``BEGIN IMMEDIATE`` write lock does the same), so the journal records the true previous state.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ctstatus.clock import Clock, system_clock
from ctstatus.errors import LedgerError
from ctstatus.ledger.engine import reading, writing
from ctstatus.ledger.errors import (
    DuplicateSerial,
    InvalidTransition,
    IssuerConflict,
    RequestHasSerial,
    UnknownIssuer,
    UnknownSerial,
)
from ctstatus.ledger.hashes import IssuerHashes
from ctstatus.ledger.migrate import ensure_current
from ctstatus.ledger.reasons import RevocationReason
from ctstatus.ledger.records import Event, Issuer, SerialRecord
from ctstatus.ledger.schema import events, issuers, serials
from ctstatus.ledger.serialnum import check_serial, is_valid_serial, serial_to_hex
from ctstatus.ledger.states import (
    ACTIONS,
    DIRECT_ISSUE,
    HOLDS_REQUEST,
    INITIAL_STATE,
    ISSUER_ADDED,
    CertificateKind,
    SerialState,
    predecessors,
)
from ctstatus.ledger.timestamps import as_utc

DEFAULT_LIMIT: Final = 1000
_ISSUER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62})")


def _values(states: Collection[SerialState]) -> list[str]:
    return [s.value for s in SerialState if s in states]


class Ledger:
    """The status database: issuers, serials and their states, and the event journal."""

    def __init__(self, engine: Engine, clock: Clock = system_clock, *, check: bool = True) -> None:
        """Wrap ``engine``; with ``check`` (the default) refuse a schema other than head."""
        if check:
            ensure_current(engine)
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> Engine:
        """The engine, for status services that run their own read queries."""
        return self._engine

    def close(self) -> None:
        """Release the engine's connections (the Ledger owns its engine once handed one)."""
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------- plumbing

    def _now(self) -> datetime:
        return as_utc(self._clock(), "the clock's time")

    def _write(self) -> AbstractContextManager[Connection]:
        return writing(self._engine)

    def _read(self) -> AbstractContextManager[Connection]:
        return reading(self._engine)

    @staticmethod
    def _journal(
        conn: Connection,
        *,
        issuer_id: int,
        serial_id: int | None,
        at: datetime,
        actor: str,
        action: str,
        from_state: SerialState | None,
        to_state: SerialState | None,
        detail: Mapping[str, Any],
    ) -> None:
        if not actor:
            raise ValueError("every ledger change needs an actor")
        conn.execute(
            insert(events).values(
                issuer_id=issuer_id,
                serial_id=serial_id,
                at=at,
                actor=actor,
                action=action,
                from_state=None if from_state is None else from_state.value,
                to_state=None if to_state is None else to_state.value,
                detail=json.dumps(dict(detail), sort_keys=True),
            )
        )

    # -------------------------------------------------------------------------------- issuers

    def add_issuer(self, name: str, certificate: x509.Certificate, *, actor: str) -> Issuer:
        """Register an issuing CA certificate under a short name; idempotent for the same pair.

        Refused (IssuerConflict) if the name, the certificate, or its subject and key (what an
        OCSP CertID names) are already registered otherwise.
        """
        if _ISSUER_NAME.fullmatch(name) is None:
            raise LedgerError(
                f"invalid issuer name {name!r}",
                "use 1-64 lowercase letters, digits and hyphens, e.g. issuing-ca-2026",
            )
        hashes = IssuerHashes.from_certificate(certificate)
        now = self._now()
        try:
            with self._write() as conn:
                existing = self._same_issuer(conn, name, hashes)
                if existing is not None:
                    return existing
                row = (
                    conn.execute(
                        insert(issuers)
                        .values(
                            name=name,
                            certificate_der=certificate.public_bytes(Encoding.DER),
                            created_at=now,
                            **vars(hashes),
                        )
                        .returning(*issuers.c)
                    )
                    .mappings()
                    .one()
                )
                self._journal(
                    conn,
                    issuer_id=row["id"],
                    serial_id=None,
                    at=now,
                    actor=actor,
                    action=ISSUER_ADDED,
                    from_state=None,
                    to_state=None,
                    detail={
                        "name": name,
                        "subject": certificate.subject.rfc4514_string(),
                        "cert_sha256": hashes.cert_sha256.hex(),
                    },
                )
                return Issuer.from_row(row)
        except IntegrityError:
            # Lost a race with a concurrent add: fine if it added the same thing.
            with self._read() as conn:
                existing = self._same_issuer(conn, name, hashes)
            if existing is not None:
                return existing
            raise

    @staticmethod
    def _same_issuer(conn: Connection, name: str, hashes: IssuerHashes) -> Issuer | None:
        """The issuer if exactly this (name, certificate) exists; raise if anything clashes."""
        rows = conn.execute(
            select(issuers).where(
                or_(
                    issuers.c.name == name,
                    issuers.c.cert_sha256 == hashes.cert_sha256,
                    and_(
                        issuers.c.name_hash_sha256 == hashes.name_hash_sha256,
                        issuers.c.key_hash_sha256 == hashes.key_hash_sha256,
                    ),
                )
            )
        ).mappings()
        for row in rows:
            if row["name"] == name and row["cert_sha256"] == hashes.cert_sha256:
                return Issuer.from_row(row)
            if row["name"] == name:
                raise IssuerConflict(f"issuer name {name!r} is already used by another certificate")
            if row["cert_sha256"] == hashes.cert_sha256:
                raise IssuerConflict(
                    f"this certificate is already registered as issuer {row['name']!r}"
                )
            raise IssuerConflict(
                f"issuer {row['name']!r} has the same subject and key; OCSP cannot tell them apart",
                "register one issuer per CA subject and key",
            )
        return None

    def issuers(self) -> list[Issuer]:
        """All issuers, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(issuers).order_by(issuers.c.id)).mappings()
            return [Issuer.from_row(r) for r in rows]

    def issuer(self, issuer_id: int) -> Issuer | None:
        """The issuer with this id."""
        return self._issuer_where(issuers.c.id == issuer_id)

    def issuer_by_name(self, name: str) -> Issuer | None:
        """The issuer registered under ``name``."""
        return self._issuer_where(issuers.c.name == name)

    def issuer_by_key_hash(
        self, algorithm: Literal["sha1", "sha256"], name_hash: bytes, key_hash: bytes
    ) -> Issuer | None:
        """The issuer an OCSP CertID names (issuerNameHash, issuerKeyHash with ``algorithm``)."""
        if algorithm == "sha1":
            cols = (issuers.c.name_hash_sha1, issuers.c.key_hash_sha1)
        elif algorithm == "sha256":
            cols = (issuers.c.name_hash_sha256, issuers.c.key_hash_sha256)
        else:
            raise ValueError(f"unsupported CertID hash algorithm {algorithm!r}")
        return self._issuer_where(and_(cols[0] == name_hash, cols[1] == key_hash))

    def _issuer_where(self, condition: Any) -> Issuer | None:
        with self._read() as conn:
            row = conn.execute(select(issuers).where(condition)).mappings().first()
            return None if row is None else Issuer.from_row(row)

    # -------------------------------------------------------------------------------- serials

    def reserve(
        self,
        issuer_id: int,
        serial: int,
        *,
        not_before: datetime,
        not_after: datetime,
        crl_shard: int,
        tbs_der: bytes | None = None,
        request_id: str | None = None,
        actor: str,
    ) -> SerialRecord:
        """Record a serial as ``reserved`` before anything is signed with it (invariant 1).

        Raises DuplicateSerial if the issuer already has this serial (allocate another one), and
        RequestHasSerial if ``request_id`` still holds a live serial (a retry must reuse it).
        """
        serial_hex = serial_to_hex(serial)
        not_before = as_utc(not_before, "not_before")
        not_after = as_utc(not_after, "not_after")
        if not_before >= not_after:
            raise ValueError(f"not_before {not_before} must be before not_after {not_after}")
        if isinstance(crl_shard, bool) or not isinstance(crl_shard, int) or crl_shard < 0:
            raise ValueError(f"crl_shard must be an int >= 0, got {crl_shard!r}")
        if request_id is not None and not request_id:
            raise ValueError("request_id must be None or a non-empty string")
        now = self._now()
        try:
            with self._write() as conn:
                if conn.scalar(select(issuers.c.id).where(issuers.c.id == issuer_id)) is None:
                    raise UnknownIssuer(issuer_id)
                self._refuse_taken(conn, issuer_id, serial, request_id)
                row = (
                    conn.execute(
                        insert(serials)
                        .values(
                            issuer_id=issuer_id,
                            serial=serial_hex,
                            state=INITIAL_STATE.value,
                            request_id=request_id,
                            tbs_der=tbs_der,
                            not_before=not_before,
                            not_after=not_after,
                            crl_shard=crl_shard,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(*serials.c)
                    )
                    .mappings()
                    .one()
                )
                detail: dict[str, Any] = {"crl_shard": crl_shard}
                if request_id is not None:
                    detail["request_id"] = request_id
                self._journal(
                    conn,
                    issuer_id=issuer_id,
                    serial_id=row["id"],
                    at=now,
                    actor=actor,
                    action=ACTIONS[INITIAL_STATE],
                    from_state=None,
                    to_state=INITIAL_STATE,
                    detail=detail,
                )
        except IntegrityError:
            # A concurrent reservation won between our check and our insert (PostgreSQL).
            with self._read() as conn:
                self._refuse_taken(conn, issuer_id, serial, request_id)
            raise
        return SerialRecord.from_row(row)

    @staticmethod
    def _refuse_taken(
        conn: Connection, issuer_id: int, serial: int, request_id: str | None
    ) -> None:
        taken = conn.scalar(
            select(serials.c.id).where(
                serials.c.issuer_id == issuer_id, serials.c.serial == serial_to_hex(serial)
            )
        )
        if taken is not None:
            raise DuplicateSerial(issuer_id, serial)
        if request_id is None:
            return
        held = (
            conn.execute(
                select(serials).where(
                    serials.c.request_id == request_id,
                    serials.c.state.in_(_values(HOLDS_REQUEST)),
                )
            )
            .mappings()
            .first()
        )
        if held is not None:
            raise RequestHasSerial(request_id, SerialRecord.from_row(held))

    def record_certificate(
        self,
        issuer_id: int,
        certificate: x509.Certificate,
        kind: CertificateKind,
        *,
        crl_shard: int = 0,
        actor: str,
    ) -> SerialRecord:
        """Record a certificate ``issuer_id`` signed that has no precertificate (a CA or OCSP
        responder certificate) as ``issued``, so its issuer's OCSP and CRL answer for it.

        One transaction: the ``reserved`` row and its ``issued`` update, both journaled.
        Idempotent: recording the same certificate again returns the existing row; another
        certificate with the same serial is refused (DuplicateSerial).
        """
        kind = CertificateKind(kind)
        if kind is CertificateKind.SUBSCRIBER:
            raise ValueError("subscriber certificates are issued through a precertificate")
        der = certificate.public_bytes(Encoding.DER)
        serial = certificate.serial_number
        serial_hex = serial_to_hex(serial)
        _check_certificate(der, serial, precert=False)
        now = self._now()
        with self._write() as conn:
            issuer_der = conn.scalar(
                select(issuers.c.certificate_der).where(issuers.c.id == issuer_id)
            )
            if issuer_der is None:
                raise UnknownIssuer(issuer_id)
            try:
                certificate.verify_directly_issued_by(x509.load_der_x509_certificate(issuer_der))
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise ValueError(
                    f"certificate {serial_hex} ({certificate.subject.rfc4514_string()}) was not "
                    f"signed by issuer {issuer_id}: {exc or type(exc).__name__}"
                ) from exc
            existing = (
                conn.execute(
                    select(serials).where(
                        serials.c.issuer_id == issuer_id, serials.c.serial == serial_hex
                    )
                )
                .mappings()
                .first()
            )
            if existing is not None:
                if existing["cert_der"] == der and existing["kind"] == kind.value:
                    return SerialRecord.from_row(existing)
                raise DuplicateSerial(issuer_id, serial)
            not_before = as_utc(certificate.not_valid_before_utc, "not_before")
            not_after = as_utc(certificate.not_valid_after_utc, "not_after")
            serial_id = conn.execute(
                insert(serials)
                .values(
                    issuer_id=issuer_id,
                    serial=serial_hex,
                    state=INITIAL_STATE.value,
                    kind=kind.value,
                    tbs_der=certificate.tbs_certificate_bytes,
                    not_before=not_before,
                    not_after=not_after,
                    crl_shard=crl_shard,
                    created_at=now,
                    updated_at=now,
                )
                .returning(serials.c.id)
            ).scalar_one()
            detail = {"kind": kind.value, "subject": certificate.subject.rfc4514_string()}
            self._journal(
                conn,
                issuer_id=issuer_id,
                serial_id=serial_id,
                at=now,
                actor=actor,
                action=ACTIONS[INITIAL_STATE],
                from_state=None,
                to_state=INITIAL_STATE,
                detail={**detail, "crl_shard": crl_shard},
            )
            source, target = DIRECT_ISSUE
            row = (
                conn.execute(
                    update(serials)
                    .where(serials.c.id == serial_id, serials.c.state == source.value)
                    .values(state=target.value, cert_der=der, updated_at=now)
                    .returning(*serials.c)
                )
                .mappings()
                .one()
            )
            self._journal(
                conn,
                issuer_id=issuer_id,
                serial_id=serial_id,
                at=now,
                actor=actor,
                action=ACTIONS[target],
                from_state=source,
                to_state=target,
                detail={**detail, "cert_sha256": hashlib.sha256(der).hexdigest()},
            )
            return SerialRecord.from_row(row)

    def mark_precert_signed(
        self, issuer_id: int, serial: int, precert_der: bytes, *, actor: str
    ) -> SerialRecord:
        """Store the precertificate and mark it signed; commit before it leaves the process."""
        name_hash = _check_certificate(precert_der, serial, precert=True)
        return self._transition(
            issuer_id,
            serial,
            SerialState.PRECERT_SIGNED,
            actor=actor,
            values={"precert_der": precert_der},
            detail={"precert_sha256": hashlib.sha256(precert_der).hexdigest()},
            issuer_name_hash=name_hash,
        )

    def mark_issued(
        self, issuer_id: int, serial: int, cert_der: bytes, *, actor: str
    ) -> SerialRecord:
        """Store the final certificate and mark the serial issued."""
        name_hash = _check_certificate(cert_der, serial, precert=False)
        return self._transition(
            issuer_id,
            serial,
            SerialState.ISSUED,
            actor=actor,
            values={"cert_der": cert_der},
            detail={"cert_sha256": hashlib.sha256(cert_der).hexdigest()},
            issuer_name_hash=name_hash,
        )

    def mark_abandoned(
        self, issuer_id: int, serial: int, cause: str, *, actor: str
    ) -> SerialRecord:
        """Issuance failed after the precertificate was signed: the serial stays answerable."""
        return self._transition(
            issuer_id, serial, SerialState.ABANDONED, actor=actor, detail={"cause": cause}
        )

    def mark_never_signed(
        self, issuer_id: int, serial: int, cause: str, *, actor: str
    ) -> SerialRecord:
        """Issuance stopped before any precertificate was signed (e.g. a lint failure)."""
        return self._transition(
            issuer_id, serial, SerialState.NEVER_SIGNED, actor=actor, detail={"cause": cause}
        )

    def revoke(
        self,
        issuer_id: int,
        serial: int,
        reason: RevocationReason,
        *,
        revoked_at: datetime | None = None,
        actor: str,
    ) -> SerialRecord:
        """Revoke; ``revoked_at`` defaults to now and may be backdated, never in the future."""
        reason = RevocationReason(reason)
        now = self._now()
        when = now if revoked_at is None else as_utc(revoked_at, "revoked_at")
        if when > now:
            raise ValueError(f"revoked_at {when} is in the future (now {now})")
        return self._transition(
            issuer_id,
            serial,
            SerialState.REVOKED,
            actor=actor,
            values={"revoked_at": when, "revocation_reason": int(reason)},
            detail={"reason": reason.rfc5280_name, "revoked_at": when.isoformat()},
            now=now,
        )

    def _transition(
        self,
        issuer_id: int,
        serial: int,
        target: SerialState,
        *,
        actor: str,
        detail: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        issuer_name_hash: bytes | None = None,
        now: datetime | None = None,
    ) -> SerialRecord:
        """Move one serial to ``target`` with a compare-and-set UPDATE and journal it."""
        serial_hex = serial_to_hex(serial)
        now = self._now() if now is None else now
        with self._write() as conn:
            current = (
                conn.execute(
                    select(serials.c.id, serials.c.state, issuers.c.name_hash_sha256)
                    .join(issuers, issuers.c.id == serials.c.issuer_id)
                    .where(serials.c.issuer_id == issuer_id, serials.c.serial == serial_hex)
                    .with_for_update(of=serials)
                )
                .mappings()
                .first()
            )
            if current is None:
                raise UnknownSerial(issuer_id, serial)
            if issuer_name_hash is not None and issuer_name_hash != current["name_hash_sha256"]:
                raise ValueError(f"the certificate for serial {serial_hex} names another issuer")
            row = (
                conn.execute(
                    update(serials)
                    .where(
                        serials.c.id == current["id"],
                        serials.c.state.in_(_values(predecessors(target))),
                    )
                    .values(state=target.value, updated_at=now, **(values or {}))
                    .returning(*serials.c)
                )
                .mappings()
                .first()
            )
            if row is None:
                raise InvalidTransition(issuer_id, serial, SerialState(current["state"]), target)
            self._journal(
                conn,
                issuer_id=issuer_id,
                serial_id=current["id"],
                at=now,
                actor=actor,
                action=ACTIONS[target],
                from_state=SerialState(current["state"]),
                to_state=target,
                detail=detail,
            )
            return SerialRecord.from_row(row)

    # ---------------------------------------------------------------------------------- reads

    def get(self, issuer_id: int, serial: int) -> SerialRecord | None:
        """The serial's record, or None (also for numbers no serial can have, e.g. from OCSP)."""
        if not is_valid_serial(serial):
            return None
        with self._read() as conn:
            row = (
                conn.execute(
                    select(serials).where(
                        serials.c.issuer_id == issuer_id,
                        serials.c.serial == serial_to_hex(serial),
                    )
                )
                .mappings()
                .first()
            )
            return None if row is None else SerialRecord.from_row(row)

    def by_request(self, request_id: str) -> list[SerialRecord]:
        """Every serial ever reserved for ``request_id``, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(serials).where(serials.c.request_id == request_id).order_by(serials.c.id)
            ).mappings()
            return [SerialRecord.from_row(r) for r in rows]

    def serials(
        self,
        *,
        state: SerialState | Collection[SerialState] | None = None,
        issuer_id: int | None = None,
        updated_before: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[SerialRecord]:
        """Serials matching all given filters, least recently updated first (sweeper order)."""
        query = select(serials)
        if state is not None:
            wanted = [SerialState(state)] if isinstance(state, str) else list(state)
            query = query.where(serials.c.state.in_(_values(wanted)))
        if issuer_id is not None:
            query = query.where(serials.c.issuer_id == issuer_id)
        if updated_before is not None:
            query = query.where(serials.c.updated_at < as_utc(updated_before, "updated_before"))
        query = query.order_by(serials.c.updated_at, serials.c.id).limit(limit)
        with self._read() as conn:
            return [SerialRecord.from_row(r) for r in conn.execute(query).mappings()]

    def count_by_state(self, issuer_id: int | None = None) -> dict[SerialState, int]:
        """Number of serials in every state (zeros included)."""
        query = select(serials.c.state, func.count()).group_by(serials.c.state)
        if issuer_id is not None:
            query = query.where(serials.c.issuer_id == issuer_id)
        counts = dict.fromkeys(SerialState, 0)
        with self._read() as conn:
            for state, count in conn.execute(query):
                counts[SerialState(state)] = int(count)
        return counts

    def events(
        self,
        *,
        issuer_id: int | None = None,
        serial: int | None = None,
        after_id: int = 0,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Event]:
        """Journal entries in order; ``serial`` needs ``issuer_id``; ``after_id`` pages/tails."""
        query = (
            select(*events.c, serials.c.serial)
            .select_from(events.outerjoin(serials, serials.c.id == events.c.serial_id))
            .where(events.c.id > after_id)
        )
        if issuer_id is not None:
            query = query.where(events.c.issuer_id == issuer_id)
        if serial is not None:
            if issuer_id is None:
                raise ValueError("events(serial=...) needs issuer_id: serials are per issuer")
            if not is_valid_serial(serial):
                return []
            query = query.where(serials.c.serial == serial_to_hex(serial))
        query = query.order_by(events.c.id).limit(limit)
        with self._read() as conn:
            return [Event.from_row(r) for r in conn.execute(query).mappings()]


def _check_certificate(der: bytes, serial: int, *, precert: bool) -> bytes:
    """Refuse DER that is not the (pre)certificate for ``serial``; return its issuer name hash.

    Storing the wrong bytes against a serial would make the ledger answer for a certificate that
    does not exist, so the cheap checks happen here: parses, same serial, poison iff precert.
    """
    check_serial(serial)
    what = "precertificate" if precert else "certificate"
    try:
        cert = x509.load_der_x509_certificate(der)
        poisoned = any(isinstance(ext.value, x509.PrecertPoison) for ext in cert.extensions)
    except ValueError as exc:
        raise ValueError(f"the {what} for serial {serial:x} is not valid DER: {exc}") from exc
    if cert.serial_number != serial:
        raise ValueError(f"the {what} has serial {cert.serial_number:x}, expected {serial:x}")
    if poisoned != precert:
        raise ValueError(
            f"serial {serial:x}: a {what} must {'' if precert else 'not '}carry the CT poison"
        )
    return hashlib.sha256(cert.issuer.public_bytes()).digest()
