"""Issuance: precertificate → CT quorum → certificate, with one abandon path.

:func:`issue` is the critical sequence of docs/design.md written as one linear function; its
numbered steps are the design's steps and each commits to the ledger before the next begins:

0. refuse a DNS name that is a public suffix (``ca/names.py``: never ``com`` or ``*.com``;
   internal names are pkilint's at step 2) and check the lifetime against the BR maximum of the day
   (``ca/lifetime.py``); nothing is written for a request that is refused;
1. allocate the serial and write its ``reserved`` row with the intended TBS;
2. check the configured logs can meet the CT policy for the TBS's validity, then lint that exact
   TBS on a throwaway-key copy (either failing stops issuance: ``never_signed``);
3. sign the precertificate with the issuing key; store it and mark ``precert_signed`` in one
   transaction; only after that commit may it leave the process;
4. submit that same precertificate to CT logs until the policy is met (every SCT verified);
5. build the final certificate from the precertificate (poison out, SCT list in, extension order
   unchanged), check the TBS corresponds byte for byte, lint, sign, store, mark ``issued``; only
   after that commit is the certificate returned (a failed commit: FinalCertificateNotStored).

An exception in steps 2-3 (pkilint or the signer failing) marks the serial ``never_signed`` at
once: nothing was signed, and the request is free for a retry. Any exception after step 3 goes
through :meth:`Issuer._abandon`: the serial becomes
``abandoned`` (still answered ``good``), then, by policy, ``revoked``. A crash at any point leaves
a row that ``ctstatus recover`` resolves (:mod:`ctstatus.ca.recover`).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ca import profiles
from ctstatus.ca.lifetime import LifetimeError, check_lifetime, default_lifetime_days
from ctstatus.ca.lint import Finding, LintPool, lint_certificate
from ctstatus.ca.names import public_suffix
from ctstatus.clock import Clock
from ctstatus.ct.sct import tbs_for_ct
from ctstatus.ct.structures import POISON_OID, SignedCertificateTimestamp, sct_list_extension
from ctstatus.errors import UserError
from ctstatus.keys.assemble import sign_certificate
from ctstatus.keys.signer import InProcessSigner, PublicKey, Signer, throwaway_key
from ctstatus.ledger import DuplicateSerial, Ledger, RevocationReason, SerialRecord, SerialState

T = TypeVar("T")

#: How often a freshly drawn serial may collide before we suspect the RNG (2^-128 per draw).
_SERIAL_ATTEMPTS = 3


class AbandonPolicy(enum.StrEnum):
    """What happens to an abandoned precertificate's serial (it stays answerable either way)."""

    REVOKE = "revoke"
    KEEP = "keep"


@dataclass(frozen=True)
class LoggedSct:
    """An SCT that has been verified against its log's key, with the log's name for humans."""

    sct: SignedCertificateTimestamp
    log_name: str
    operator: str


class CtSubmitter(Protocol):
    """Gets SCTs for one precertificate until the CT policy is met, or raises.

    Implementations must resubmit the same bytes on retry, verify every SCT before returning it,
    and raise an exception whose ``str`` says what each log did.
    """

    def infeasible(self, not_before: datetime, not_after: datetime) -> str | None:
        """Why no submission could meet the CT policy for this validity, or None if one can.

        Asked before the precertificate is signed: a precertificate that cannot get enough SCTs
        would only be published by the logs that take it, and then abandoned.
        """
        ...

    async def submit_precertificate(
        self, chain: Sequence[bytes], not_before: datetime, not_after: datetime
    ) -> Sequence[LoggedSct]: ...


@dataclass(frozen=True)
class IssuanceRequest:
    """What to certify. ``request_id`` names the order, so retries cannot take a second serial."""

    public_key: PublicKey
    names: Sequence[profiles.SubjectAltName]
    lifetime_days: int | None = None
    """Days of validity; None: the profile's default on the day of issuance (ca/lifetime.py)."""
    request_id: str | None = None
    #: False for short-lived certificates: no OCSP URL (BR §7.1.2.7.7 makes it a MAY). The
    #: CRLDP stays: pkilint's msft.end_entity.revocation_information_absent wants one of them.
    ocsp_url: bool = True


@dataclass(frozen=True)
class IssuanceSettings:
    """The issuing CA and the URLs and policies issuance uses (from the instance config)."""

    issuer_name: str
    issuer_certificate: x509.Certificate
    ocsp_url: str
    ca_issuers_url: str
    crl_url: Callable[[int], str]
    crl_shards: int
    abandon_policy: AbandonPolicy = AbandonPolicy.REVOKE
    abandon_reason: RevocationReason = RevocationReason.UNSPECIFIED
    lint: bool = True
    lifetime_days: int | None = None
    """``[profiles.tls_server] lifetime_days``; None follows the BR schedule by date."""


@dataclass
class IssuanceResult:
    serial: int
    certificate: x509.Certificate
    precertificate: x509.Certificate
    scts: Sequence[LoggedSct]
    timings: dict[str, float] = field(default_factory=dict)

    def chain_pem(self, issuer: x509.Certificate) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM) + issuer.public_bytes(Encoding.PEM)


class IssuanceError(UserError):
    """No certificate was issued; ``serial`` and ``state`` say what the ledger holds."""

    def __init__(
        self, message: str, *, serial: int | None, state: str | None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint)
        self.serial = serial
        self.state = state


class RequestRefused(IssuanceError):
    """Step 0 refused the request itself (a name or a lifetime no CA may certify): no serial
    was taken; asking again unchanged cannot succeed."""

    def __init__(self, message: str, hint: str | None) -> None:
        super().__init__(message, serial=None, state=None, hint=hint)


class LintFailed(IssuanceError):
    """pkilint found errors in the TBS; nothing was signed with the real key."""

    def __init__(self, serial: int, findings: Sequence[Finding]) -> None:
        super().__init__(
            "the certificate would break the Baseline Requirements: "
            + "; ".join(str(finding) for finding in findings),
            serial=serial,
            state="never_signed",
            hint="nothing was signed; change the request or the profile",
        )
        self.findings = list(findings)


class FinalCertificateNotStored(IssuanceError):
    """The final certificate was signed, but its commit failed: it is discarded, unreturned."""

    journal_step = "final certificate not stored"

    def __init__(self, serial: int, error: Exception) -> None:
        super().__init__(
            f"the final certificate was signed but the ledger did not store it ({error}); it "
            "was discarded and never left the CA",
            serial=serial,
            state="abandoned",
        )


class IssuingCa:
    """Issues TLS server certificates for one issuing CA, writing every step to the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        issuer_id: int,
        signer: Signer,
        settings: IssuanceSettings,
        ct: CtSubmitter,
        clock: Clock,
        *,
        actor: str = "issuance",
        lint_pool: LintPool | None = None,
    ) -> None:
        self._ledger = ledger
        self._issuer_id = issuer_id
        self._signer = signer
        self._settings = settings
        self._ct = ct
        self._clock = clock
        self._actor = actor
        self._lint_pool = lint_pool
        self._lint_signer = InProcessSigner(throwaway_key(signer.algorithm))
        self._issuer_der = settings.issuer_certificate.public_bytes(Encoding.DER)

    def close(self) -> None:
        """Release the issuing key (a token session) and the lint workers."""
        self._signer.close()
        if self._lint_pool is not None:
            self._lint_pool.close()

    async def issue(self, request: IssuanceRequest) -> IssuanceResult:
        """The critical sequence; see the module docstring for the numbered steps."""
        timings: dict[str, float] = {}
        started = time.perf_counter()

        # Step 0: names a CA may certify and a lifetime the BRs allow on this date (nothing is
        # written for a request that fails either).
        for name in request.names:
            suffix = public_suffix(name.value) if isinstance(name, x509.DNSName) else None
            if suffix is not None:
                raise RequestRefused(
                    f"cannot certify {name.value!r}: {suffix!r} is a public suffix (Public "
                    "Suffix List), which no one can prove control of (BR §3.2.2.6)",
                    hint="ask for names at or under a registrable domain such as example.com",
                )
        now = self._clock()
        try:
            days = check_lifetime(
                default_lifetime_days(now, self._settings.lifetime_days)
                if request.lifetime_days is None
                else request.lifetime_days,
                now,
            )
        except LifetimeError as error:
            raise RequestRefused(error.message, hint=error.hint) from None

        # Step 1: allocate the serial and write its `reserved` row with the intended TBS.
        serial, builder, linting_copy = await self._reserve(request, now, days)
        timings["reserve"] = time.perf_counter() - started

        # Step 2: the configured logs can meet the CT policy for this notAfter (shards,
        # states, operators), and the exact TBS lints clean on the throwaway-key copy; either
        # failing means never signed.
        infeasible = self._ct.infeasible(
            linting_copy.not_valid_before_utc, linting_copy.not_valid_after_utc
        )
        if infeasible is not None:
            await self._db(
                self._ledger.mark_never_signed,
                self._issuer_id,
                serial,
                f"ct policy cannot be met: {infeasible}",
                actor=self._actor,
            )
            raise IssuanceError(
                f"{infeasible}; nothing was signed (serial {serial:x} is never_signed)",
                serial=serial,
                state="never_signed",
                hint="fix [issuance] log_list (log states, temporal shards, operators) "
                "or ask for a shorter lifetime",
            )
        if self._settings.lint:
            try:
                findings = await self._lint(_der(linting_copy))
            except Exception as error:
                raise await self._never_signed(serial, "lint", error) from error
            errors = [f for f in findings if f.is_error]
            if errors:
                await self._db(
                    self._ledger.mark_never_signed,
                    self._issuer_id,
                    serial,
                    "lint: " + "; ".join(str(f) for f in errors),
                    actor=self._actor,
                )
                raise LintFailed(serial, errors)
        timings["lint"] = time.perf_counter() - started

        # Step 3: sign with the real key, check it signed exactly the linted TBS, store it and
        # mark `precert_signed` in one transaction. Only then may the precertificate leave.
        try:
            precertificate = sign_certificate(builder, self._signer)
        except Exception as error:
            raise await self._never_signed(serial, "signing the precertificate", error) from error
        if precertificate.tbs_certificate_bytes != linting_copy.tbs_certificate_bytes:
            await self._db(
                self._ledger.mark_never_signed,
                self._issuer_id,
                serial,
                "the signed precertificate's TBS differs from the linted one",
                actor=self._actor,
            )
            raise IssuanceError(
                "the signer produced a TBS different from the linted one; nothing left the CA",
                serial=serial,
                state="never_signed",
            )
        await self._db(
            self._ledger.mark_precert_signed,
            self._issuer_id,
            serial,
            _der(precertificate),
            actor=self._actor,
        )
        timings["precertificate"] = time.perf_counter() - started

        try:
            # Step 4: the same precertificate to the logs until the CT policy is met.
            scts = await self._ct.submit_precertificate(
                [_der(precertificate), self._issuer_der],
                precertificate.not_valid_before_utc,
                precertificate.not_valid_after_utc,
            )
            timings["ct"] = time.perf_counter() - started

            # Step 5: the final certificate: from the precertificate, corresponding byte for
            # byte, linted, signed, stored, `issued`.
            certificate = await self._final_certificate(precertificate, scts)
            # Only after this commit may the certificate leave the process (be returned).
            await self._store_final(serial, _der(certificate))
            timings["certificate"] = time.perf_counter() - started
        except BaseException as error:
            state = await self._abandon(serial, error)
            if not isinstance(error, Exception):
                raise  # cancellation or interpreter exit: the ledger is settled, let it go
            raise IssuanceError(
                f"{error}. The precertificate (serial {serial:x}) is {state}",
                serial=serial,
                state=state,
            ) from error
        return IssuanceResult(serial, certificate, precertificate, scts, timings)

    async def _reserve(
        self, request: IssuanceRequest, now: datetime, days: int
    ) -> tuple[int, x509.CertificateBuilder, x509.Certificate]:
        settings = self._settings
        for _ in range(_SERIAL_ATTEMPTS):
            serial = profiles.new_serial()
            shard = serial % settings.crl_shards
            builder = profiles.tls_server(
                request.public_key,
                request.names,
                settings.issuer_certificate,
                serial,
                now,
                days,
                ocsp_url=settings.ocsp_url if request.ocsp_url else None,
                ca_issuers_url=settings.ca_issuers_url,
                crl_url=settings.crl_url(shard),
            ).add_extension(x509.PrecertPoison(), critical=True)
            linting_copy = sign_certificate(builder, self._lint_signer)
            try:
                await self._db(
                    self._ledger.reserve,
                    self._issuer_id,
                    serial,
                    not_before=linting_copy.not_valid_before_utc,
                    not_after=linting_copy.not_valid_after_utc,
                    crl_shard=shard,
                    tbs_der=linting_copy.tbs_certificate_bytes,
                    request_id=request.request_id,
                    actor=self._actor,
                )
            except DuplicateSerial:
                continue
            return serial, builder, linting_copy
        raise IssuanceError(
            f"{_SERIAL_ATTEMPTS} random serials in a row were already taken",
            serial=None,
            state=None,
            hint="the random number generator is broken; stop issuing and investigate",
        )

    async def _lint(self, der: bytes) -> list[Finding]:
        """pkilint's findings, in a worker process if the CA has a pool (off the event loop)."""
        if self._lint_pool is None:
            return lint_certificate(der)[1]
        return (await self._lint_pool.lint(der))[1]

    async def _final_certificate(
        self, precertificate: x509.Certificate, scts: Sequence[LoggedSct]
    ) -> x509.Certificate:
        """Poison out, SCT list in, every other extension in its place (RFC 6962 §3.1)."""
        builder = (
            x509.CertificateBuilder()
            .serial_number(precertificate.serial_number)
            .issuer_name(precertificate.issuer)
            .subject_name(precertificate.subject)
            .public_key(precertificate.public_key())
            .not_valid_before(precertificate.not_valid_before_utc)
            .not_valid_after(precertificate.not_valid_after_utc)
        )
        for extension in precertificate.extensions:
            if extension.oid != POISON_OID:
                builder = builder.add_extension(extension.value, extension.critical)
        builder = builder.add_extension(
            sct_list_extension([logged.sct for logged in scts]), critical=False
        )
        linting_copy = sign_certificate(builder, self._lint_signer)
        if tbs_for_ct(_der(linting_copy)) != tbs_for_ct(_der(precertificate)):
            raise IssuanceError(
                "the final certificate does not correspond to its precertificate",
                serial=precertificate.serial_number,
                state="abandoned",
            )
        if self._settings.lint:
            errors = [f for f in await self._lint(_der(linting_copy)) if f.is_error]
            if errors:
                raise IssuanceError(
                    "the final certificate fails lint: " + "; ".join(map(str, errors)),
                    serial=precertificate.serial_number,
                    state="abandoned",
                )
        certificate = sign_certificate(builder, self._signer)
        if certificate.tbs_certificate_bytes != linting_copy.tbs_certificate_bytes:
            raise IssuanceError(
                "the signed certificate's TBS differs from the linted one",
                serial=precertificate.serial_number,
                state="abandoned",
            )
        return certificate

    async def _store_final(self, serial: int, der: bytes) -> None:
        """Commit the final certificate and ``issued``; FinalCertificateNotStored if it did not.

        A write whose acknowledgement is lost may still have committed: if the ledger now holds
        exactly these bytes as ``issued``, the certificate is recorded and may be handed out.
        Otherwise it is dropped here, and the abandon path records why.
        """
        try:
            await self._db(
                self._ledger.mark_issued, self._issuer_id, serial, der, actor=self._actor
            )
        except Exception as error:
            record = await self._current(serial)
            if record is not None and record.state is SerialState.ISSUED and record.cert_der == der:
                return
            raise FinalCertificateNotStored(serial, error) from error

    async def _never_signed(self, serial: int, step: str, error: Exception) -> IssuanceError:
        """Steps 2-3 failed before a precertificate existed: nothing left the CA.

        The serial becomes ``never_signed`` at once (not at the next ``recover``), so that a
        retry of the same request is not refused for holding a live serial meanwhile.
        """
        try:
            await self._db(
                self._ledger.mark_never_signed,
                self._issuer_id,
                serial,
                f"{step}: {type(error).__name__}: {error}",
                actor=self._actor,
            )
            state, note = "never_signed", ""
        except Exception:
            state, note = "reserved", "; `ctstatus recover` will settle it"
        return IssuanceError(
            f"{error}. The precertificate was not signed and nothing left the CA "
            f"(serial {serial:x} is {state}{note})",
            serial=serial,
            state=state,
        )

    async def _abandon(self, serial: int, error: BaseException) -> str:
        """The one path for every failure after step 3: abandoned, then revoked by policy.

        Returns the state the serial is left in, for the error message. If the ledger itself
        fails here, the serial stays ``precert_signed`` (answered ``good``) and
        ``ctstatus recover`` abandons it later: it is never without a status.
        """
        if isinstance(error, FinalCertificateNotStored):
            cause = f"{error.journal_step}: {error.message}"
        else:
            cause = f"{type(error).__name__}: {error}"
        try:
            await self._db(
                self._ledger.mark_abandoned, self._issuer_id, serial, cause, actor=self._actor
            )
            if self._settings.abandon_policy is AbandonPolicy.KEEP:
                return "abandoned (kept: answered good until it expires)"
            await self._db(
                self._ledger.revoke,
                self._issuer_id,
                serial,
                self._settings.abandon_reason,
                actor=self._actor,
            )
        except Exception as ledger_error:
            record = await self._current(serial)
            now = "unknown" if record is None else record.state.value
            return (
                f"{now} (the ledger refused the abandon path: {ledger_error}; "
                "`ctstatus recover` will settle it)"
            )
        return "abandoned and revoked"

    async def _current(self, serial: int) -> SerialRecord | None:
        try:
            return await self._db(self._ledger.get, self._issuer_id, serial)
        except Exception:
            return None

    @staticmethod
    async def _db(call: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Ledger calls are blocking (fsync); keep them off the event loop."""
        return await asyncio.to_thread(call, *args, **kwargs)


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


__all__ = [
    "AbandonPolicy",
    "CtSubmitter",
    "FinalCertificateNotStored",
    "IssuanceError",
    "IssuanceRequest",
    "IssuanceResult",
    "IssuanceSettings",
    "IssuingCa",
    "LintFailed",
    "LoggedSct",
    "SerialRecord",
]
