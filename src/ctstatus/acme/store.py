"""ACME state in the ledger database (``ledger/acme_tables.py``): one method, one transaction.

Nothing lives in the server process, so any number of ACME servers can share one PostgreSQL.
Status changes are compare-and-set (``UPDATE ... WHERE status = <expected>``): two servers
racing to validate one challenge or finalize one order cannot both win.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ctstatus.clock import Clock, system_clock
from ctstatus.ledger.acme_tables import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_nonces,
    acme_order_authorizations,
    acme_orders,
    acme_rate_events,
)
from ctstatus.ledger.engine import reading, writing


def new_id() -> str:
    """A random object id (128 bits, URL-safe): ids are capabilities, never counters."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Account:
    id: str
    thumbprint: str
    jwk: dict[str, Any]
    status: str
    contact: list[str]
    eab_kid: str | None
    created_at: datetime


@dataclass(frozen=True)
class Challenge:
    id: str
    authz_id: str
    type: str
    token: str
    status: str
    validated_at: datetime | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class Authorization:
    id: str
    account_id: str
    identifier_type: str
    identifier_value: str
    wildcard: bool
    status: str
    expires: datetime
    challenges: tuple[Challenge, ...]

    @property
    def name(self) -> str:
        """The name as ordered (``*.`` back on for a wildcard)."""
        return ("*." if self.wildcard else "") + self.identifier_value


@dataclass(frozen=True)
class Order:
    id: str
    account_id: str
    status: str
    identifiers: list[dict[str, str]]
    profile: str
    replaces: str | None
    expires: datetime
    error: dict[str, Any] | None
    serial: str | None
    authz_ids: tuple[str, ...]
    created_at: datetime

    @property
    def names(self) -> list[str]:
        return [identifier["value"] for identifier in self.identifiers]


class AcmeConflict(Exception):
    """A compare-and-set lost (another request changed the object first) or a key is taken."""


class AcmeStore:
    """Accounts, orders, authorizations, challenges, nonces and rate-limit events."""

    def __init__(self, engine: Engine, clock: Clock = system_clock) -> None:
        self._engine = engine
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    def _write(self) -> AbstractContextManager[Connection]:
        return writing(self._engine)

    def _read(self) -> AbstractContextManager[Connection]:
        return reading(self._engine)

    # ---------------------------------------------------------------------------- nonces

    def new_nonce(self, lifetime: timedelta) -> str:
        nonce = secrets.token_urlsafe(16)
        with self._write() as conn:
            conn.execute(insert(acme_nonces).values(nonce=nonce, expires=self.now() + lifetime))
        return nonce

    def use_nonce(self, nonce: str) -> bool:
        """True exactly once per nonce we issued and that has not expired."""
        if not nonce or len(nonce) > 64:
            return False
        now = self.now()
        with self._write() as conn:
            used = conn.execute(
                delete(acme_nonces).where(acme_nonces.c.nonce == nonce, acme_nonces.c.expires > now)
            ).rowcount
            conn.execute(delete(acme_nonces).where(acme_nonces.c.expires <= now))
        return used == 1

    # -------------------------------------------------------------------------- accounts

    def create_account(
        self, thumbprint: str, jwk: dict[str, Any], contact: Sequence[str], eab_kid: str | None
    ) -> tuple[Account, bool]:
        """The account for this key: (new account, True), or (the existing one, False)."""
        existing = self.account_by_thumbprint(thumbprint)
        if existing is not None:
            return existing, False
        now = self.now()
        account_id = new_id()
        try:
            with self._write() as conn:
                conn.execute(
                    insert(acme_accounts).values(
                        id=account_id,
                        thumbprint=thumbprint,
                        jwk=json.dumps(jwk, sort_keys=True),
                        status="valid",
                        contact=json.dumps(list(contact)),
                        eab_kid=eab_kid,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            existing = self.account_by_thumbprint(thumbprint)
            if existing is None:
                raise
            return existing, False
        account = self.account(account_id)
        assert account is not None
        return account, True

    def account(self, account_id: str) -> Account | None:
        return self._account_where(acme_accounts.c.id == account_id)

    def account_by_thumbprint(self, thumbprint: str) -> Account | None:
        return self._account_where(acme_accounts.c.thumbprint == thumbprint)

    def _account_where(self, condition: Any) -> Account | None:
        with self._read() as conn:
            row = conn.execute(select(acme_accounts).where(condition)).mappings().first()
        if row is None:
            return None
        return Account(
            id=row["id"],
            thumbprint=row["thumbprint"],
            jwk=json.loads(row["jwk"]),
            status=row["status"],
            contact=json.loads(row["contact"]),
            eab_kid=row["eab_kid"],
            created_at=row["created_at"],
        )

    def update_account(
        self, account_id: str, *, contact: Sequence[str] | None = None, status: str | None = None
    ) -> None:
        values: dict[str, Any] = {"updated_at": self.now()}
        if contact is not None:
            values["contact"] = json.dumps(list(contact))
        if status is not None:
            values["status"] = status
        with self._write() as conn:
            conn.execute(
                update(acme_accounts)
                .where(acme_accounts.c.id == account_id, acme_accounts.c.status == "valid")
                .values(**values)
            )
            if status == "deactivated":
                # RFC 8555 §7.3.6: its pending authorizations go with it.
                conn.execute(
                    update(acme_authorizations)
                    .where(
                        acme_authorizations.c.account_id == account_id,
                        acme_authorizations.c.status.in_(("pending", "valid")),
                    )
                    .values(status="deactivated", updated_at=values["updated_at"])
                )

    def change_key(
        self, account_id: str, old_thumbprint: str, thumbprint: str, jwk: dict[str, Any]
    ) -> None:
        """Roll the account key; AcmeConflict if the new key has an account already."""
        try:
            with self._write() as conn:
                changed = conn.execute(
                    update(acme_accounts)
                    .where(
                        acme_accounts.c.id == account_id,
                        acme_accounts.c.thumbprint == old_thumbprint,
                        acme_accounts.c.status == "valid",
                    )
                    .values(
                        thumbprint=thumbprint,
                        jwk=json.dumps(jwk, sort_keys=True),
                        updated_at=self.now(),
                    )
                ).rowcount
        except IntegrityError:
            raise AcmeConflict("another account uses the new key") from None
        if changed != 1:
            raise AcmeConflict("the account key changed meanwhile")

    # ---------------------------------------------------------------------------- orders

    def create_order(
        self,
        account_id: str,
        identifiers: Sequence[dict[str, str]],
        challenge_types: Sequence[Sequence[str]],
        *,
        profile: str,
        replaces: str | None,
        order_lifetime: timedelta,
        authz_lifetime: timedelta,
    ) -> Order:
        """A pending order with one authorization per identifier, reusing valid ones."""
        now = self.now()
        order_id = new_id()
        with self._write() as conn:
            authz_ids: list[str] = []
            for identifier, types in zip(identifiers, challenge_types, strict=True):
                value = identifier["value"]
                wildcard = value.startswith("*.")
                base = value[2:] if wildcard else value
                reusable = conn.scalar(
                    select(acme_authorizations.c.id)
                    .where(
                        acme_authorizations.c.account_id == account_id,
                        acme_authorizations.c.identifier_value == base,
                        acme_authorizations.c.wildcard == wildcard,
                        acme_authorizations.c.status == "valid",
                        acme_authorizations.c.expires > now + timedelta(days=1),
                    )
                    .order_by(acme_authorizations.c.expires.desc())
                    .limit(1)
                )
                if reusable is not None and reusable not in authz_ids:
                    authz_ids.append(reusable)
                    continue
                authz_id = new_id()
                conn.execute(
                    insert(acme_authorizations).values(
                        id=authz_id,
                        account_id=account_id,
                        identifier_type="dns",
                        identifier_value=base,
                        wildcard=wildcard,
                        status="pending",
                        expires=now + authz_lifetime,
                        created_at=now,
                        updated_at=now,
                    )
                )
                for challenge_type in types:
                    conn.execute(
                        insert(acme_challenges).values(
                            id=new_id(),
                            authz_id=authz_id,
                            type=challenge_type,
                            token=secrets.token_urlsafe(32),
                            status="pending",
                        )
                    )
                authz_ids.append(authz_id)
            conn.execute(
                insert(acme_orders).values(
                    id=order_id,
                    account_id=account_id,
                    status="pending",
                    identifiers=json.dumps(list(identifiers)),
                    profile=profile,
                    replaces=replaces,
                    expires=now + order_lifetime,
                    created_at=now,
                    updated_at=now,
                )
            )
            for position, authz_id in enumerate(authz_ids):
                conn.execute(
                    insert(acme_order_authorizations).values(
                        order_id=order_id, authz_id=authz_id, position=position
                    )
                )
        order = self.order(order_id)
        assert order is not None
        return order

    def order(self, order_id: str) -> Order | None:
        """The order, its status brought up to date with its authorizations and the clock."""
        with self._read() as conn:
            row = (
                conn.execute(select(acme_orders).where(acme_orders.c.id == order_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            authz_ids = tuple(
                conn.scalars(
                    select(acme_order_authorizations.c.authz_id)
                    .where(acme_order_authorizations.c.order_id == order_id)
                    .order_by(acme_order_authorizations.c.position)
                )
            )
        order = _order(row, authz_ids)
        if order.status in ("pending", "ready"):
            status, error = self._order_status(order)
            if status != order.status:
                self._set_order(order.id, order.status, status, error=error)
                return self.order(order_id)
        return order

    def _order_status(self, order: Order) -> tuple[str, dict[str, Any] | None]:
        now = self.now()
        if order.expires <= now:
            return "invalid", {
                "type": "urn:ietf:params:acme:error:malformed",
                "detail": "the order expired",
            }
        statuses = [self.authorization(a).status for a in order.authz_ids]  # type: ignore[union-attr]
        if all(s == "valid" for s in statuses):
            return "ready", None
        bad = [s for s in statuses if s not in ("pending", "valid")]
        if bad:
            return "invalid", {
                "type": "urn:ietf:params:acme:error:unauthorized",
                "detail": f"an authorization of the order is {bad[0]}",
            }
        return "pending", None

    def _set_order(
        self,
        order_id: str,
        expected: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        serial: str | None = None,
    ) -> bool:
        values: dict[str, Any] = {"status": status, "updated_at": self.now()}
        if error is not None:
            values["error"] = json.dumps(error)
        if serial is not None:
            values["serial"] = serial
        with self._write() as conn:
            return (
                conn.execute(
                    update(acme_orders)
                    .where(acme_orders.c.id == order_id, acme_orders.c.status == expected)
                    .values(**values)
                ).rowcount
                == 1
            )

    def start_processing(self, order_id: str) -> bool:
        """ready -> processing; False if another request got there first."""
        return self._set_order(order_id, "ready", "processing")

    def order_valid(self, order_id: str, serial_hex: str) -> None:
        self._set_order(order_id, "processing", "valid", serial=serial_hex)

    def order_invalid(self, order_id: str, expected: str, error: dict[str, Any]) -> None:
        self._set_order(order_id, expected, "invalid", error=error)

    def orders_of(self, account_id: str, limit: int = 1000) -> list[str]:
        with self._read() as conn:
            return list(
                conn.scalars(
                    select(acme_orders.c.id)
                    .where(acme_orders.c.account_id == account_id)
                    .order_by(acme_orders.c.created_at, acme_orders.c.id)
                    .limit(limit)
                )
            )

    def order_for_serial(self, serial_hex: str) -> Order | None:
        with self._read() as conn:
            order_id = conn.scalar(
                select(acme_orders.c.id).where(acme_orders.c.serial == serial_hex)
            )
        return None if order_id is None else self.order(order_id)

    def replaced(self, cert_id: str) -> bool:
        """Whether a valid or in-flight order already replaces this certificate (ARI)."""
        with self._read() as conn:
            return (
                conn.scalar(
                    select(func.count()).where(
                        acme_orders.c.replaces == cert_id,
                        acme_orders.c.status.in_(("pending", "ready", "processing", "valid")),
                    )
                )
                or 0
            ) > 0

    # -------------------------------------------------------------------- authorizations

    def authorization(self, authz_id: str) -> Authorization | None:
        with self._read() as conn:
            row = (
                conn.execute(
                    select(acme_authorizations).where(acme_authorizations.c.id == authz_id)
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            challenges = tuple(
                _challenge(c)
                for c in conn.execute(
                    select(acme_challenges)
                    .where(acme_challenges.c.authz_id == authz_id)
                    .order_by(acme_challenges.c.type)
                ).mappings()
            )
        status = row["status"]
        if status in ("pending", "valid") and row["expires"] <= self.now():
            status = "expired"
        return Authorization(
            id=row["id"],
            account_id=row["account_id"],
            identifier_type=row["identifier_type"],
            identifier_value=row["identifier_value"],
            wildcard=bool(row["wildcard"]),
            status=status,
            expires=row["expires"],
            challenges=challenges,
        )

    def challenge(self, challenge_id: str) -> Challenge | None:
        with self._read() as conn:
            row = (
                conn.execute(select(acme_challenges).where(acme_challenges.c.id == challenge_id))
                .mappings()
                .first()
            )
        return None if row is None else _challenge(row)

    def start_challenge(self, challenge_id: str) -> bool:
        """pending -> processing; False if it was not pending (already being validated)."""
        with self._write() as conn:
            return (
                conn.execute(
                    update(acme_challenges)
                    .where(
                        acme_challenges.c.id == challenge_id, acme_challenges.c.status == "pending"
                    )
                    .values(status="processing")
                ).rowcount
                == 1
            )

    def finish_challenge(self, challenge: Challenge, error: dict[str, Any] | None) -> None:
        """The challenge's outcome, and its authorization's (valid, or invalid on failure)."""
        now = self.now()
        with self._write() as conn:
            conn.execute(
                update(acme_challenges)
                .where(
                    acme_challenges.c.id == challenge.id, acme_challenges.c.status == "processing"
                )
                .values(
                    status="invalid" if error else "valid",
                    validated_at=None if error else now,
                    error=None if error is None else json.dumps(error),
                )
            )
            conn.execute(
                update(acme_authorizations)
                .where(
                    acme_authorizations.c.id == challenge.authz_id,
                    acme_authorizations.c.status == "pending",
                )
                .values(status="invalid" if error else "valid", updated_at=now)
            )

    def deactivate_authorization(self, authz_id: str) -> bool:
        with self._write() as conn:
            return (
                conn.execute(
                    update(acme_authorizations)
                    .where(
                        acme_authorizations.c.id == authz_id,
                        acme_authorizations.c.status.in_(("pending", "valid")),
                    )
                    .values(status="deactivated", updated_at=self.now())
                ).rowcount
                == 1
            )

    def authorized_names(self, account_id: str) -> set[str]:
        """Names (``*.`` for wildcards) this account holds valid, unexpired authorizations for."""
        with self._read() as conn:
            rows = conn.execute(
                select(
                    acme_authorizations.c.identifier_value, acme_authorizations.c.wildcard
                ).where(
                    acme_authorizations.c.account_id == account_id,
                    acme_authorizations.c.status == "valid",
                    acme_authorizations.c.expires > self.now(),
                )
            )
            return {("*." if wildcard else "") + value for value, wildcard in rows}

    # ------------------------------------------------------------------------ rate limits

    def count_events(self, kind: str, subject: str, window: timedelta) -> int:
        with self._read() as conn:
            return int(
                conn.scalar(
                    select(func.count()).where(
                        acme_rate_events.c.kind == kind,
                        acme_rate_events.c.subject == subject,
                        acme_rate_events.c.at > self.now() - window,
                    )
                )
                or 0
            )

    def add_event(self, kind: str, subject: str) -> None:
        with self._write() as conn:
            conn.execute(
                insert(acme_rate_events).values(kind=kind, subject=subject[:255], at=self.now())
            )


def _order(row: Any, authz_ids: tuple[str, ...]) -> Order:
    return Order(
        id=row["id"],
        account_id=row["account_id"],
        status=row["status"],
        identifiers=json.loads(row["identifiers"]),
        profile=row["profile"],
        replaces=row["replaces"],
        expires=row["expires"],
        error=None if row["error"] is None else json.loads(row["error"]),
        serial=row["serial"],
        authz_ids=authz_ids,
        created_at=row["created_at"],
    )


def _challenge(row: Any) -> Challenge:
    return Challenge(
        id=row["id"],
        authz_id=row["authz_id"],
        type=row["type"],
        token=row["token"],
        status=row["status"],
        validated_at=row["validated_at"],
        error=None if row["error"] is None else json.loads(row["error"]),
    )
