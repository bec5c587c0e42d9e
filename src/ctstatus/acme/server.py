"""The ACME server (RFC 8555) as a Starlette app: every POST is a JWS, every error a problem.

Request handling is stateless: accounts, orders, authorizations, challenges and nonces live in
the ledger database (:mod:`ctstatus.acme.store`). Finalize goes through the CA's issuance
pipeline with the order id as the request id, so a retried finalize cannot take a second serial
(design invariant 4). Validation (http-01, dns-01, tls-alpn-01, CAA, public suffixes) is the
validation module's; this module decides when to call it and what the client sees.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ctstatus.acme import jws as jwslib
from ctstatus.acme.problems import AcmeProblem, malformed, not_found, unauthorized
from ctstatus.acme.profiles import DEFAULT_PROFILE, PROFILES
from ctstatus.acme.store import Account, AcmeConflict, AcmeStore, Authorization, Challenge, Order
from ctstatus.acme.validation import (
    ValidationError,
    Validator,
    allowed_challenges,
    check_identifier,
)
from ctstatus.ca.issuance import IssuanceError, IssuanceRequest, IssuanceResult
from ctstatus.ca.requests import BadRequest, request_from_csr
from ctstatus.ledger import (
    InvalidTransition,
    Ledger,
    RequestHasSerial,
    RevocationReason,
    SerialRecord,
    SerialState,
    serial_to_hex,
)

log = logging.getLogger("ctstatus.acme")

NONCE_LIFETIME = timedelta(hours=1)
MAX_IDENTIFIERS = 100
#: Reasons a subscriber may ask for (BR §4.9.1.1 / §7.2.2; privilegeWithdrawn is the CA's).
SUBSCRIBER_REASONS = {0, 1, 3, 4, 5}
Issue = Callable[[IssuanceRequest], Awaitable[IssuanceResult]]


@dataclass(frozen=True)
class AcmeSettings:
    """What ``[acme]`` configures (see docs/configuration.md)."""

    base_url: str
    default_profile: str = DEFAULT_PROFILE
    order_lifetime: timedelta = timedelta(days=7)
    authz_lifetime: timedelta = timedelta(days=7)
    eab_required: bool = False
    eab_keys: Mapping[str, bytes] = field(default_factory=dict)
    orders_per_account: int = 300
    orders_window: timedelta = timedelta(hours=3)
    failed_validations_per_hour: int = 5
    terms_of_service: str | None = None
    caa_identities: tuple[str, ...] = ()


@dataclass
class Context:
    """A verified request: its JWS and the account (None for jwk-signed requests)."""

    jws: jwslib.Jws
    account: Account | None
    key: jwslib.AccountKey


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(type(value).__name__)


def _datetime(value: datetime) -> str:
    return _json_default(value)


class AcmeServer:
    """The ACME endpoints over one issuing CA."""

    def __init__(
        self,
        settings: AcmeSettings,
        store: AcmeStore,
        ledger: Ledger,
        issuer_id: int,
        issuer_certificate: x509.Certificate,
        issue: Issue,
        validator: Validator,
    ) -> None:
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.issuer_id = issuer_id
        self.issuer = issuer_certificate
        self.issuer_pem = issuer_certificate.public_bytes(Encoding.PEM)
        self._issue = issue
        self.validator = validator
        ski = issuer_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        self.issuer_key_id = ski.value.digest
        base = settings.base_url.rstrip("/")
        self.base = base
        self.paths = {
            "newNonce": "/acme/new-nonce",
            "newAccount": "/acme/new-account",
            "newOrder": "/acme/new-order",
            "revokeCert": "/acme/revoke-cert",
            "keyChange": "/acme/key-change",
            "renewalInfo": "/acme/renewal-info",
        }

    # ------------------------------------------------------------------------ plumbing

    def url(self, path: str) -> str:
        return self.base + path

    def app(self) -> Starlette:
        routes = [
            Route("/directory", self.directory, methods=["GET"]),
            Route("/acme/new-nonce", self.new_nonce, methods=["GET", "HEAD"]),
            Route("/acme/new-account", self.post(self.new_account, jwk=True), methods=["POST"]),
            Route("/acme/acct/{id}", self.post(self.account), methods=["POST"]),
            Route("/acme/acct/{id}/orders", self.post(self.account_orders), methods=["POST"]),
            Route("/acme/key-change", self.post(self.key_change), methods=["POST"]),
            Route("/acme/new-order", self.post(self.new_order), methods=["POST"]),
            Route("/acme/order/{id}", self.post(self.order), methods=["POST"]),
            Route("/acme/order/{id}/finalize", self.post(self.finalize), methods=["POST"]),
            Route("/acme/authz/{id}", self.post(self.authz), methods=["POST"]),
            Route("/acme/chall/{id}", self.post(self.challenge), methods=["POST"]),
            Route("/acme/cert/{id}", self.post(self.certificate), methods=["POST"]),
            Route("/acme/revoke-cert", self.post(self.revoke, jwk=None), methods=["POST"]),
            Route("/acme/renewal-info/{id}", self.renewal_info, methods=["GET"]),
        ]
        return Starlette(routes=routes, exception_handlers={AcmeProblem: self._problem})

    async def _nonce(self) -> str:
        return await asyncio.to_thread(self.store.new_nonce, NONCE_LIFETIME)

    async def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {
            "Replay-Nonce": await self._nonce(),
            "Link": f'<{self.url("/directory")}>;rel="index"',
            "Cache-Control": "no-store",
        }
        headers.update(extra or {})
        return headers

    async def _problem(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AcmeProblem)
        headers = await self._headers(exc.headers)
        return Response(
            json.dumps(exc.document()),
            status_code=exc.status,
            media_type="application/problem+json",
            headers=headers,
        )

    async def _json(
        self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        return Response(
            json.dumps(body, default=_json_default),
            status_code=status,
            media_type="application/json",
            headers=await self._headers(headers),
        )

    def post(
        self,
        handler: Callable[[Request, Context], Awaitable[Response]],
        *,
        jwk: bool | None = False,
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler with RFC 8555 §6.2-6.5: JWS, url, nonce, key (jwk or kid) checks.

        ``jwk``: True - the request must carry a jwk (newAccount); False - a kid (the account
        URL); None - either (revokeCert: account key or certificate key).
        """

        async def endpoint(request: Request) -> Response:
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type != "application/jose+json":
                raise malformed("the Content-Type must be application/jose+json")
            body = await request.body()
            parsed = jwslib.parse(body)
            expected = self.url(request.url.path)
            if parsed.url != expected:
                raise AcmeProblem(
                    "unauthorized", f"the JWS url {parsed.url!r} is not this URL ({expected})", 401
                )
            if not await asyncio.to_thread(self.store.use_nonce, parsed.nonce):
                raise AcmeProblem(
                    "badNonce", "the nonce is unknown, used or expired; use the new one"
                )
            if parsed.jwk is not None:
                if jwk is False:
                    raise malformed("this request must be signed with the account key (kid)")
                key = jwslib.load_jwk(parsed.jwk)
                jwslib.verify(parsed, key)
                context = Context(parsed, None, key)
            else:
                if jwk is True:
                    raise malformed("newAccount must be signed with a jwk, not a kid")
                account = await self._account_from_kid(parsed.kid or "")
                key = jwslib.load_jwk(account.jwk)
                jwslib.verify(parsed, key)
                context = Context(parsed, account, key)
            return await handler(request, context)

        return endpoint

    async def _account_from_kid(self, kid: str) -> Account:
        prefix = self.url("/acme/acct/")
        if not kid.startswith(prefix):
            raise AcmeProblem("accountDoesNotExist", f"kid {kid!r} is not an account URL of ours")
        account = await asyncio.to_thread(self.store.account, kid.removeprefix(prefix))
        if account is None:
            raise AcmeProblem("accountDoesNotExist", "no such account")
        if account.status != "valid":
            raise unauthorized(f"the account is {account.status}")
        return account

    @staticmethod
    def _owned(account: Account | None, owner: str, what: str) -> Account:
        if account is None or account.id != owner:
            raise unauthorized(f"this {what} belongs to another account")
        return account

    # ---------------------------------------------------------------------- directory

    async def directory(self, request: Request) -> Response:
        meta: dict[str, Any] = {
            "profiles": {name: p.description for name, p in PROFILES.items()},
            "externalAccountRequired": self.settings.eab_required,
        }
        if self.settings.caa_identities:
            meta["caaIdentities"] = list(self.settings.caa_identities)
        if self.settings.terms_of_service:
            meta["termsOfService"] = self.settings.terms_of_service
        body: dict[str, Any] = {name: self.url(path) for name, path in self.paths.items()}
        body["meta"] = meta
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=3600"})

    async def new_nonce(self, request: Request) -> Response:
        status = 200 if request.method == "HEAD" else 204
        return Response(status_code=status, headers=await self._headers())

    # ------------------------------------------------------------------------ accounts

    def account_url(self, account_id: str) -> str:
        return self.url(f"/acme/acct/{account_id}")

    def _account_json(self, account: Account) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": account.status,
            "contact": account.contact,
            "orders": self.url(f"/acme/acct/{account.id}/orders"),
            "key": account.jwk,
        }
        if account.eab_kid:
            body["externalAccountBinding"] = {"kid": account.eab_kid}
        return body

    @staticmethod
    def _contact(payload: Mapping[str, Any]) -> list[str]:
        contact = payload.get("contact", [])
        if not isinstance(contact, list) or not all(isinstance(c, str) for c in contact):
            raise malformed("contact must be a list of strings")
        for entry in contact:
            if not entry.startswith("mailto:") or "@" not in entry or "," in entry:
                raise AcmeProblem("invalidContact", f"{entry!r} is not a mailto: address")
        return list(contact)

    async def new_account(self, request: Request, context: Context) -> Response:
        payload = context.jws.payload_json()
        jwk = jwslib.public_jwk(context.key)
        thumbprint = jwslib.thumbprint(context.key)
        existing = await asyncio.to_thread(self.store.account_by_thumbprint, thumbprint)
        if existing is not None:
            return await self._json(
                self._account_json(existing), 200, {"Location": self.account_url(existing.id)}
            )
        if payload.get("onlyReturnExisting") is True:
            raise AcmeProblem("accountDoesNotExist", "no account has this key")
        if self.settings.terms_of_service and payload.get("termsOfServiceAgreed") is not True:
            raise AcmeProblem("userActionRequired", "agree to the terms of service first", 403)
        contact = self._contact(payload)
        eab_kid = self._external_binding(payload.get("externalAccountBinding"), jwk, request)
        account, _created = await asyncio.to_thread(
            self.store.create_account, thumbprint, jwk, contact, eab_kid
        )
        return await self._json(
            self._account_json(account), 201, {"Location": self.account_url(account.id)}
        )

    def _external_binding(self, value: object, jwk: dict[str, str], request: Request) -> str | None:
        """RFC 8555 §7.3.4: an HS256 JWS over the account key with a configured MAC key."""
        if value is None:
            if self.settings.eab_required:
                raise AcmeProblem(
                    "externalAccountRequired", "this server needs an externalAccountBinding", 403
                )
            return None
        inner = jwslib.parse_inner(value, allowed_algs=("HS256",))
        kid = inner.header.get("kid")
        if not isinstance(kid, str) or kid not in self.settings.eab_keys:
            raise unauthorized("the externalAccountBinding kid is not known")
        if inner.url != self.url(request.url.path):
            raise malformed("the externalAccountBinding url must be the newAccount URL")
        jwslib.verify_hs256(inner, self.settings.eab_keys[kid])
        try:
            bound = json.loads(inner.payload)
        except ValueError:
            raise malformed("the externalAccountBinding payload is not a JWK") from None
        if not isinstance(bound, dict):
            raise malformed("the externalAccountBinding payload is not a JWK")
        if jwslib.thumbprint(jwslib.load_jwk(bound)) != jwslib.thumbprint(jwslib.load_jwk(jwk)):
            raise unauthorized("the externalAccountBinding binds another key")
        return kid

    async def account(self, request: Request, context: Context) -> Response:
        account = self._owned(context.account, request.path_params["id"], "account")
        if not context.jws.post_as_get:
            payload = context.jws.payload_json()
            status = payload.get("status")
            if status is not None and status != "deactivated":
                raise malformed("an account can only be updated to status 'deactivated'")
            contact = self._contact(payload) if "contact" in payload else None
            await asyncio.to_thread(
                self.store.update_account, account.id, contact=contact, status=status
            )
            refreshed = await asyncio.to_thread(self.store.account, account.id)
            assert refreshed is not None
            account = refreshed
        return await self._json(self._account_json(account))

    async def account_orders(self, request: Request, context: Context) -> Response:
        account = self._owned(context.account, request.path_params["id"], "account")
        ids = await asyncio.to_thread(self.store.orders_of, account.id)
        return await self._json({"orders": [self.url(f"/acme/order/{i}") for i in ids]})

    async def key_change(self, request: Request, context: Context) -> Response:
        """RFC 8555 §7.3.5: the inner JWS is signed by the new key and names the old one."""
        account = context.account
        assert account is not None
        payload = context.jws.payload_json()
        inner = jwslib.parse_inner(payload, allowed_algs=jwslib.ALGORITHMS)
        if inner.url != context.jws.url:
            raise malformed("the inner JWS url must equal the outer one")
        if inner.jwk is None or "kid" in inner.header:
            raise malformed("the inner JWS must carry the new key as jwk")
        new_key = jwslib.load_jwk(inner.jwk)
        jwslib.verify(inner, new_key)
        try:
            body = json.loads(inner.payload)
        except ValueError:
            raise malformed("the inner payload is not JSON") from None
        if not isinstance(body, dict) or body.get("account") != self.account_url(account.id):
            raise malformed("the inner payload's account is not the signing account")
        old = body.get("oldKey")
        if (
            not isinstance(old, dict)
            or jwslib.thumbprint(jwslib.load_jwk(old)) != account.thumbprint
        ):
            raise malformed("oldKey is not the account's current key")
        new_thumbprint = jwslib.thumbprint(new_key)
        other = await asyncio.to_thread(self.store.account_by_thumbprint, new_thumbprint)
        if other is not None:
            raise AcmeProblem(
                "conflict",
                "another account uses the new key",
                409,
                headers={"Location": self.account_url(other.id)},
            )
        try:
            await asyncio.to_thread(
                self.store.change_key,
                account.id,
                account.thumbprint,
                new_thumbprint,
                jwslib.public_jwk(new_key),
            )
        except AcmeConflict as exc:
            raise AcmeProblem("conflict", str(exc), 409) from None
        refreshed = await asyncio.to_thread(self.store.account, account.id)
        assert refreshed is not None
        return await self._json(self._account_json(refreshed))

    # -------------------------------------------------------------------------- orders

    def _order_json(self, order: Order) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": order.status,
            "expires": _datetime(order.expires),
            "identifiers": order.identifiers,
            "authorizations": [self.url(f"/acme/authz/{a}") for a in order.authz_ids],
            "finalize": self.url(f"/acme/order/{order.id}/finalize"),
            "profile": order.profile,
        }
        if order.replaces:
            body["replaces"] = order.replaces
        if order.error:
            body["error"] = order.error
        if order.status == "valid":
            body["certificate"] = self.url(f"/acme/cert/{order.id}")
        return body

    async def new_order(self, request: Request, context: Context) -> Response:
        account = context.account
        assert account is not None
        payload = context.jws.payload_json()
        for unsupported in ("notBefore", "notAfter"):
            if unsupported in payload:
                raise malformed(f"{unsupported} is not supported; choose a profile instead")
        identifiers = payload.get("identifiers")
        if not isinstance(identifiers, list) or not identifiers:
            raise malformed("identifiers must be a non-empty list")
        if len(identifiers) > MAX_IDENTIFIERS:
            raise AcmeProblem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers")
        names: list[str] = []
        subproblems: list[dict[str, Any]] = []
        for identifier in identifiers:
            if not isinstance(identifier, dict) or set(identifier) != {"type", "value"}:
                raise malformed('each identifier is {"type": "dns", "value": NAME}')
            value = identifier["value"]
            if identifier["type"] != "dns":
                subproblems.append(
                    _sub("unsupportedIdentifier", "only dns identifiers", identifier)
                )
                continue
            try:
                name = check_identifier(value)
            except ValidationError as exc:
                subproblems.append(_sub(exc.problem, exc.detail, identifier))
                continue
            if name not in names:
                names.append(name)
        if subproblems:
            kind = subproblems[0]["type"].rsplit(":", 1)[-1]
            raise AcmeProblem(
                kind if len(subproblems) == 1 else "rejectedIdentifier",
                "; ".join(s["detail"] for s in subproblems),
                subproblems=subproblems,
            )
        profile = payload.get("profile", self.settings.default_profile)
        if profile not in PROFILES:
            raise AcmeProblem(
                "invalidProfile", f"unknown profile {profile!r}; see the directory's meta.profiles"
            )
        replaces = payload.get("replaces")
        if replaces is not None:
            await self._check_replaces(replaces, account, names)
        used = await asyncio.to_thread(
            self.store.count_events, "new-order", account.id, self.settings.orders_window
        )
        if used >= self.settings.orders_per_account:
            raise AcmeProblem(
                "rateLimited",
                f"{used} new orders in {self.settings.orders_window}; the limit per account is "
                f"{self.settings.orders_per_account}",
                429,
                headers={"Retry-After": str(int(self.settings.orders_window.total_seconds()))},
            )
        await asyncio.to_thread(self.store.add_event, "new-order", account.id)
        order = await asyncio.to_thread(
            self.store.create_order,
            account.id,
            [{"type": "dns", "value": n} for n in names],
            [allowed_challenges(n) for n in names],
            profile=profile,
            replaces=replaces,
            order_lifetime=self.settings.order_lifetime,
            authz_lifetime=self.settings.authz_lifetime,
        )
        return await self._json(
            self._order_json(order), 201, {"Location": self.url(f"/acme/order/{order.id}")}
        )

    async def _order_of(self, order_id: str, account: Account | None) -> Order:
        order = await asyncio.to_thread(self.store.order, order_id)
        if order is None:
            raise not_found("no such order")
        self._owned(account, order.account_id, "order")
        if order.status == "processing":
            order = await self._settle_processing(order)
        return order

    async def _settle_processing(self, order: Order) -> Order:
        """An order left in ``processing`` (a server died mid-issuance): the ledger decides."""
        records = await asyncio.to_thread(self.ledger.by_request, self.request_id(order))
        issued = [r for r in records if r.state is SerialState.ISSUED]
        if issued:
            await asyncio.to_thread(
                self.store.order_valid, order.id, serial_to_hex(issued[-1].serial)
            )
        elif records and all(
            r.state in (SerialState.NEVER_SIGNED, SerialState.ABANDONED, SerialState.REVOKED)
            for r in records
        ):
            await asyncio.to_thread(
                self.store.order_invalid,
                order.id,
                "processing",
                _error("serverInternal", "issuance failed; the serial is recorded; order again"),
            )
        else:
            return order
        refreshed = await asyncio.to_thread(self.store.order, order.id)
        assert refreshed is not None
        return refreshed

    async def order(self, request: Request, context: Context) -> Response:
        order = await self._order_of(request.path_params["id"], context.account)
        return await self._json(self._order_json(order))

    @staticmethod
    def request_id(order: Order) -> str:
        return f"acme-order:{order.id}"

    async def finalize(self, request: Request, context: Context) -> Response:
        """RFC 8555 §7.4: check the CSR, recheck CAA, issue through the pipeline."""
        account = context.account
        assert account is not None
        # 1. The order must be this account's and ready.
        order = await self._order_of(request.path_params["id"], account)
        if order.status != "ready":
            raise AcmeProblem("orderNotReady", f"the order is {order.status}, not ready", 403)
        # 2. The CSR: parses, self-signature verifies, names exactly the order's.
        payload = context.jws.payload_json()
        csr_der = jwslib.b64decode(payload.get("csr"), "csr")
        profile = PROFILES[order.profile]
        try:
            issuance = request_from_csr(
                csr_der, lifetime_days=profile.lifetime_days, request_id=self.request_id(order)
            )
        except BadRequest as exc:
            raise AcmeProblem("badCSR", exc.message) from None
        csr_names = {str(n.value).lower() for n in issuance.names}
        if csr_names != set(order.names):
            raise AcmeProblem(
                "badCSR",
                f"the CSR names {sorted(csr_names)}, the order {sorted(order.names)}",
            )
        spki = issuance.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if spki == context.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo):
            raise AcmeProblem("badCSR", "the certificate key must not be the account key")
        # 3. CAA, rechecked at issuance (BR §3.2.2.8), for every name.
        await self._check_caa(order, account)
        # 4. ready -> processing: only one finalize issues.
        if not await asyncio.to_thread(self.store.start_processing, order.id):
            raise AcmeProblem("orderNotReady", "the order is already being finalized", 403)
        # 5. Issue (reserve, lint, precert, CT, certificate: the CA's critical sequence).
        issuance = _with_profile(issuance, profile.ocsp_url)
        try:
            result = await self._issue(issuance)
        except RequestHasSerial as exc:
            log.warning("order %s already holds a serial: %s", order.id, exc)
            settled = await self._settle_processing(order)
            return await self._json(
                self._order_json(settled), 200, {"Location": self.url(f"/acme/order/{order.id}")}
            )
        except IssuanceError as exc:
            await asyncio.to_thread(
                self.store.order_invalid,
                order.id,
                "processing",
                _error("serverInternal", exc.message),
            )
            raise AcmeProblem("serverInternal", exc.message, 500) from None
        except Exception:
            log.exception("finalize of order %s failed", order.id)
            settled = await self._settle_processing(order)
            if settled.status == "processing":
                raise AcmeProblem(
                    "serverInternal", "issuance failed; retry by fetching the order", 500
                ) from None
            return await self._json(self._order_json(settled))
        await asyncio.to_thread(self.store.order_valid, order.id, serial_to_hex(result.serial))
        finished = await asyncio.to_thread(self.store.order, order.id)
        assert finished is not None
        return await self._json(
            self._order_json(finished), 200, {"Location": self.url(f"/acme/order/{order.id}")}
        )

    async def _check_caa(self, order: Order, account: Account) -> None:
        failures: list[dict[str, Any]] = []
        for authz_id in order.authz_ids:
            authz = await asyncio.to_thread(self.store.authorization, authz_id)
            assert authz is not None
            method = next((c.type for c in authz.challenges if c.status == "valid"), "dns-01")
            try:
                await self.validator.check_caa(
                    authz.identifier_value,
                    wildcard=authz.wildcard,
                    account_uri=self.account_url(account.id),
                    method=method,
                )
            except ValidationError as exc:
                failures.append(_sub(exc.problem, exc.detail, {"type": "dns", "value": authz.name}))
        if failures:
            raise AcmeProblem(
                "caa" if all(f["type"].endswith(":caa") for f in failures) else "dns",
                "; ".join(f["detail"] for f in failures),
                403,
                subproblems=failures,
            )

    # -------------------------------------------------------------- authorizations

    def _challenge_json(self, challenge: Challenge) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": challenge.type,
            "url": self.url(f"/acme/chall/{challenge.id}"),
            "status": challenge.status,
            "token": challenge.token,
        }
        if challenge.validated_at is not None:
            body["validated"] = _datetime(challenge.validated_at)
        if challenge.error is not None:
            body["error"] = challenge.error
        return body

    def _authz_json(self, authz: Authorization) -> dict[str, Any]:
        challenges = authz.challenges
        if authz.status == "valid":
            challenges = tuple(c for c in challenges if c.status == "valid")
        body: dict[str, Any] = {
            "identifier": {"type": authz.identifier_type, "value": authz.identifier_value},
            "status": authz.status,
            "expires": _datetime(authz.expires),
            "challenges": [self._challenge_json(c) for c in challenges],
        }
        if authz.wildcard:
            body["wildcard"] = True
        return body

    async def _authz_of(self, authz_id: str, account: Account | None) -> Authorization:
        authz = await asyncio.to_thread(self.store.authorization, authz_id)
        if authz is None:
            raise not_found("no such authorization")
        self._owned(account, authz.account_id, "authorization")
        return authz

    async def authz(self, request: Request, context: Context) -> Response:
        authz = await self._authz_of(request.path_params["id"], context.account)
        if not context.jws.post_as_get:
            payload = context.jws.payload_json()
            if payload != {"status": "deactivated"}:
                raise malformed(
                    'an authorization can only be updated with {"status": "deactivated"}'
                )
            if not await asyncio.to_thread(self.store.deactivate_authorization, authz.id):
                raise malformed(f"the authorization is {authz.status}; it cannot be deactivated")
            authz = await self._authz_of(authz.id, context.account)
        return await self._json(
            self._authz_json(authz), headers={"Link": f'<{self.url("/directory")}>;rel="index"'}
        )

    async def challenge(self, request: Request, context: Context) -> Response:
        account = context.account
        assert account is not None
        challenge = await asyncio.to_thread(self.store.challenge, request.path_params["id"])
        if challenge is None:
            raise not_found("no such challenge")
        authz = await self._authz_of(challenge.authz_id, account)
        up = {"Link": f'<{self.url(f"/acme/authz/{authz.id}")}>;rel="up"'}
        if context.jws.post_as_get:
            return await self._json(self._challenge_json(challenge), headers=up)
        if context.jws.payload_json() != {}:
            raise malformed("respond to a challenge with the payload {}")
        if challenge.status != "pending" or authz.status != "pending":
            return await self._json(self._challenge_json(challenge), headers=up)
        failed = await asyncio.to_thread(
            self.store.count_events, "failed-validation", authz.name, timedelta(hours=1)
        )
        if failed >= self.settings.failed_validations_per_hour:
            raise AcmeProblem(
                "rateLimited",
                f"{failed} failed validations for {authz.name} in the last hour; the limit is "
                f"{self.settings.failed_validations_per_hour}",
                429,
                headers={"Retry-After": "3600"},
            )
        if not await asyncio.to_thread(self.store.start_challenge, challenge.id):
            current = await asyncio.to_thread(self.store.challenge, challenge.id)
            assert current is not None
            return await self._json(self._challenge_json(current), headers=up)
        error = await self._validate(challenge, authz, account)
        if error is not None:
            await asyncio.to_thread(self.store.add_event, "failed-validation", authz.name)
        await asyncio.to_thread(self.store.finish_challenge, challenge, error)
        done = await asyncio.to_thread(self.store.challenge, challenge.id)
        assert done is not None
        return await self._json(self._challenge_json(done), headers=up)

    async def _validate(
        self, challenge: Challenge, authz: Authorization, account: Account
    ) -> dict[str, Any] | None:
        """Run the challenge; None if it passed, else the problem for the challenge's error."""
        key_authorization = f"{challenge.token}.{account.thumbprint}"
        domain = authz.identifier_value
        try:
            if challenge.type == "http-01":
                record = await self.validator.http_01(domain, challenge.token, key_authorization)
            elif challenge.type == "dns-01":
                record = await self.validator.dns_01(domain, key_authorization)
            else:
                record = await self.validator.tls_alpn_01(domain, key_authorization)
        except ValidationError as exc:
            log.info("validation %s of %s failed: %s", challenge.type, authz.name, exc)
            return _error(exc.problem, exc.detail, 403)
        except Exception as exc:
            log.exception("validation %s of %s crashed", challenge.type, authz.name)
            return _error("serverInternal", f"validation failed: {type(exc).__name__}", 500)
        log.info("validated %s", json.dumps(record.to_json()))
        return None

    # ---------------------------------------------------------------- certificates

    async def certificate(self, request: Request, context: Context) -> Response:
        order = await self._order_of(request.path_params["id"], context.account)
        if order.status != "valid" or order.serial is None:
            raise not_found("the order has no certificate")
        record = await asyncio.to_thread(self.ledger.get, self.issuer_id, int(order.serial, 16))
        if record is None or record.cert_der is None:
            raise not_found("the certificate is not in the ledger")
        pem = x509.load_der_x509_certificate(record.cert_der).public_bytes(Encoding.PEM)
        return Response(
            pem + self.issuer_pem,
            media_type="application/pem-certificate-chain",
            headers=await self._headers(),
        )

    async def revoke(self, request: Request, context: Context) -> Response:
        """RFC 8555 §7.6: by the owning account, an account authorized for every name, or the
        certificate's own key."""
        payload = context.jws.payload_json()
        der = jwslib.b64decode(payload.get("certificate"), "certificate")
        reason = payload.get("reason", 0)
        if type(reason) is not int or reason not in SUBSCRIBER_REASONS:
            raise AcmeProblem(
                "badRevocationReason", f"reason {reason!r} is not one you may ask for"
            )
        try:
            certificate = x509.load_der_x509_certificate(der)
            certificate.verify_directly_issued_by(self.issuer)
        except (ValueError, TypeError):
            raise not_found("this certificate was not issued by this CA") from None
        except Exception:
            raise not_found("this certificate was not issued by this CA") from None
        record = await asyncio.to_thread(self.ledger.get, self.issuer_id, certificate.serial_number)
        if record is None or record.cert_der != der:
            raise not_found("this certificate is not in the ledger")
        await self._authorize_revocation(context, certificate, record)
        if record.state is SerialState.REVOKED:
            raise AcmeProblem("alreadyRevoked", "the certificate is already revoked")
        who = f"acme:{context.account.id}" if context.account else "acme:certificate-key"
        try:
            await asyncio.to_thread(
                self.ledger.revoke,
                self.issuer_id,
                certificate.serial_number,
                RevocationReason(reason),
                actor=who,
            )
        except InvalidTransition:
            raise AcmeProblem("alreadyRevoked", "the certificate is already revoked") from None
        return Response(status_code=200, headers=await self._headers())

    async def _authorize_revocation(
        self, context: Context, certificate: x509.Certificate, record: SerialRecord
    ) -> None:
        if context.account is None:
            key_der = context.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            cert_key = certificate.public_key().public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            )
            if key_der != cert_key:
                raise unauthorized("the JWS key is not the certificate's key")
            return
        order = await asyncio.to_thread(self.store.order_for_serial, serial_to_hex(record.serial))
        if order is not None and order.account_id == context.account.id:
            return
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = {str(n) for n in san.value.get_values_for_type(x509.DNSName)}
        except x509.ExtensionNotFound:
            names = set()
        held = await asyncio.to_thread(self.store.authorized_names, context.account.id)
        if not names or not names <= held:
            raise unauthorized(
                "this account neither ordered the certificate nor holds "
                "authorizations for all its names"
            )

    # -------------------------------------------------------------------------- ARI

    def cert_id(self, serial: int) -> str:
        length = (serial.bit_length() + 8) // 8  # DER INTEGER content: a leading 0 if needed
        serial_part = jwslib.b64encode(serial.to_bytes(length, "big"))
        return f"{jwslib.b64encode(self.issuer_key_id)}.{serial_part}"

    async def _record_for_cert_id(self, cert_id: str) -> SerialRecord:
        parts = cert_id.split(".")
        if len(parts) != 2:
            raise malformed("a CertID is base64url(AKI keyIdentifier).base64url(serial)")
        aki = jwslib.b64decode(parts[0], "the CertID's key identifier")
        serial_bytes = jwslib.b64decode(parts[1], "the CertID's serial")
        if (
            not serial_bytes
            or (serial_bytes[0] & 0x80)
            or (len(serial_bytes) > 1 and serial_bytes[0] == 0 and not serial_bytes[1] & 0x80)
        ):
            raise malformed("the CertID's serial is not a positive DER INTEGER")
        if aki != self.issuer_key_id:
            raise not_found("the CertID names another issuer")
        record = await asyncio.to_thread(
            self.ledger.get, self.issuer_id, int.from_bytes(serial_bytes, "big")
        )
        if record is None or record.state in (SerialState.RESERVED, SerialState.NEVER_SIGNED):
            raise not_found("no certificate with this CertID")
        return record

    async def renewal_info(self, request: Request) -> Response:
        """RFC 9773: when to renew; now for revoked or abandoned serials."""
        record = await self._record_for_cert_id(request.path_params["id"])
        now = self.store.now()
        if record.state in (SerialState.REVOKED, SerialState.ABANDONED):
            start, end = now - timedelta(minutes=1), now
            explanation = f"the certificate is {record.state.value}: renew now"
        else:
            lifetime = record.not_after - record.not_before
            start = record.not_before + lifetime * 2 / 3
            end = record.not_before + lifetime * 5 / 6
            explanation = None
        body: dict[str, Any] = {
            "suggestedWindow": {"start": _datetime(start), "end": _datetime(end)}
        }
        if explanation:
            body["explanationURL"] = self.url("/directory")
        return Response(
            json.dumps(body),
            media_type="application/json",
            headers={"Retry-After": "21600", "Cache-Control": "public, max-age=21600"},
        )

    async def _check_replaces(self, replaces: object, account: Account, names: list[str]) -> None:
        if not isinstance(replaces, str):
            raise malformed("replaces must be a CertID string")
        record = await self._record_for_cert_id(replaces)
        order = await asyncio.to_thread(self.store.order_for_serial, serial_to_hex(record.serial))
        if order is None or order.account_id != account.id:
            raise unauthorized("replaces names a certificate this account did not order")
        if not set(order.names) & set(names):
            raise malformed("the new order shares no identifier with the certificate it replaces")
        if await asyncio.to_thread(self.store.replaced, replaces):
            raise AcmeProblem(
                "alreadyReplaced", "another order already replaces this certificate", 409
            )


def _with_profile(request: IssuanceRequest, ocsp_url: bool) -> IssuanceRequest:
    from dataclasses import replace

    return replace(request, ocsp_url=ocsp_url)


def _error(kind: str, detail: str, status: int = 400) -> dict[str, Any]:
    return {"type": f"urn:ietf:params:acme:error:{kind}", "detail": detail, "status": status}


def _sub(kind: str, detail: str, identifier: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": f"urn:ietf:params:acme:error:{kind}",
        "detail": detail,
        "identifier": dict(identifier),
    }


def key_authorization_digest(key_authorization: str) -> str:
    """dns-01's TXT value (for tests and hooks): base64url(SHA-256(key authorization))."""
    return (
        base64.urlsafe_b64encode(hashlib.sha256(key_authorization.encode()).digest())
        .rstrip(b"=")
        .decode()
    )
