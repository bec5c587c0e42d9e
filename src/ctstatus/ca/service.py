"""Wiring issuance to an instance: its ledger, issuing key, URLs and CT logs.

:class:`PolicySubmitter` is the CT step of issuance over real logs (``ct.submit``): it submits
the same precertificate to the configured logs until the configured policy is met.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ctstatus.ca.issuance import (
    AbandonPolicy,
    IssuanceSettings,
    IssuingCa,
    LoggedSct,
)
from ctstatus.ca.lint import LintPool
from ctstatus.clock import Clock
from ctstatus.ct.loglist import LogList, load_log_list
from ctstatus.ct.policy import CtPolicy, feasibility
from ctstatus.ct.submit import submit_with_policy
from ctstatus.ct.transport import HttpSession
from ctstatus.errors import ConfigError
from ctstatus.instance import Instance
from ctstatus.ledger import Ledger, RevocationReason

_REASONS = {
    "unspecified": RevocationReason.UNSPECIFIED,
    "superseded": RevocationReason.SUPERSEDED,
    "cessationOfOperation": RevocationReason.CESSATION_OF_OPERATION,
    "privilegeWithdrawn": RevocationReason.PRIVILEGE_WITHDRAWN,
    "affiliationChanged": RevocationReason.AFFILIATION_CHANGED,
}


class PolicySubmitter:
    """Issuance's CT step: ``submit_with_policy`` over the instance's logs and policy."""

    def __init__(
        self,
        log_list: LogList,
        policy: CtPolicy,
        http: HttpSession,
        clock: Clock,
        *,
        deadline: float,
        stagger: float,
    ) -> None:
        self._log_list = log_list
        self._policy = policy
        self._http = http
        self._clock = clock
        self._deadline = deadline
        self._stagger = stagger

    def infeasible(self, not_before: datetime, not_after: datetime) -> str | None:
        verdict = feasibility(
            self._policy,
            self._log_list.logs,
            not_before=not_before,
            not_after=not_after,
            at=self._clock(),
        )
        return None if verdict.feasible else verdict.explain()

    async def submit_precertificate(
        self, chain: Sequence[bytes], not_before: datetime, not_after: datetime
    ) -> Sequence[LoggedSct]:
        submission = await submit_with_policy(
            list(chain),
            self._log_list,
            self._policy,
            not_before=not_before,
            not_after=not_after,
            http=self._http,
            deadline=self._deadline,
            stagger=self._stagger,
            clock=self._clock,
        )
        return [
            LoggedSct(
                received.sct,
                received.log.name,
                received.log.log.operator if received.log.log is not None else "unknown",
            )
            for received in submission.scts
        ]


def abandon_reason(instance: Instance) -> RevocationReason:
    return _REASONS[instance.config.issuance.abandon_reason]


def issuance_settings(instance: Instance) -> IssuanceSettings:
    config = instance.config
    issuing = config.ca.issuing
    return IssuanceSettings(
        issuer_name=issuing.name,
        issuer_certificate=instance.certificate(issuing),
        ocsp_url=config.urls.ocsp_url(issuing.name),
        ca_issuers_url=config.urls.ca_issuers_url(issuing.name),
        crl_url=lambda shard: config.urls.crl_url(issuing.name, shard),
        crl_shards=config.profiles.tls_server.crl_shards,
        abandon_policy=AbandonPolicy(config.issuance.abandon),
        abandon_reason=abandon_reason(instance),
        lint=config.issuance.lint,
        lifetime_days=config.profiles.tls_server.lifetime_days,
    )


def instance_log_list(instance: Instance) -> LogList:
    path = instance.config.issuance.log_list
    if path is None:
        raise ConfigError(
            "no CT logs are configured ([issuance] log_list)",
            "point [issuance] log_list at a v3 log list; `ctstatus log serve` writes one for "
            "local logs",
        )
    return load_log_list(instance.path(path))


def open_issuing_ca(
    instance: Instance,
    ledger: Ledger,
    http: HttpSession,
    clock: Clock,
    *,
    lint_workers: int | None = None,
) -> IssuingCa:
    """The issuing CA of ``instance``, ready to issue (opens its key: passphrase or PIN).

    ``lint_workers`` overrides ``[issuance] lint_workers`` (0: lint in this process, as a
    one-shot ``ctstatus issue`` should: a worker would only add its start-up).
    """
    config = instance.config
    workers = config.issuance.lint_workers if lint_workers is None else lint_workers
    issuing = config.ca.issuing
    issuer = ledger.issuer_by_name(issuing.name)
    if issuer is None:
        raise ConfigError(f"the issuing CA {issuing.name!r} is not in the ledger")
    submitter = PolicySubmitter(
        instance_log_list(instance),
        CtPolicy(config.issuance.ct_policy),
        http,
        clock,
        deadline=config.issuance.ct_deadline_seconds,
        stagger=config.issuance.ct_stagger_seconds,
    )
    return IssuingCa(
        ledger,
        issuer.id,
        instance.signer(issuing),
        issuance_settings(instance),
        submitter,
        clock,
        lint_pool=LintPool(workers) if config.issuance.lint and workers > 0 else None,
    )
