"""Stable problem codes: what a monitor can find wrong, and how bad each is.

Codes are part of the interface (alerts, ``watch report --json``, dashboards match on them), so
they are never renamed. The taxonomy follows anchors.md §6.4: transport, OCSP envelope, single
response, cross-source, logs, and reconciliation with our own ledger.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"


class Code(enum.StrEnum):
    """Every problem the watcher reports; the value is the stable code."""

    # transport (OCSP and CRL fetches)
    HTTP_CONNECT = "transport.connect"
    HTTP_TIMEOUT = "transport.timeout"
    HTTP_STATUS = "transport.http_status"
    HTTP_CONTENT_TYPE = "transport.content_type"
    HTTP_EMPTY = "transport.empty_body"
    HTTP_TRUNCATED = "transport.truncated"
    HTTP_TOO_LARGE = "transport.too_large"
    HTTP_DNS = "transport.dns"  # the host name does not resolve
    HTTP_TLS = "transport.tls"  # handshake failed: untrusted certificate, closed, wrong protocol
    OCSP_GET_UNSUPPORTED = "ocsp.get_unsupported"
    # OCSP envelope
    OCSP_MALFORMED = "ocsp.malformed"
    OCSP_MALFORMED_REQUEST = "ocsp.malformed_request"
    OCSP_INTERNAL_ERROR = "ocsp.internal_error"
    OCSP_TRY_LATER = "ocsp.try_later"
    OCSP_SIG_REQUIRED = "ocsp.sig_required"
    OCSP_UNAUTHORIZED = "ocsp.unauthorized"
    # single response
    OCSP_UNKNOWN = "ocsp.unknown"
    OCSP_CERTID_MISMATCH = "ocsp.certid_mismatch"
    OCSP_HASH_MISMATCH = "ocsp.certid_hash_algorithm"
    OCSP_BAD_SIGNATURE = "ocsp.bad_signature"
    OCSP_SIGNER_UNAUTHORIZED = "ocsp.signer_not_authorized"
    OCSP_THIS_UPDATE_FUTURE = "ocsp.this_update_future"
    OCSP_NO_NEXT_UPDATE = "ocsp.no_next_update"
    OCSP_EXPIRED = "ocsp.next_update_passed"
    OCSP_VALIDITY = "ocsp.validity_out_of_bounds"
    OCSP_HOLD = "ocsp.certificate_hold"
    OCSP_SHA256_FAILED = "ocsp.sha256_certid_failed"
    OCSP_RANDOM_GOOD = "ocsp.random_serial_good"
    # CRL and cross-source
    CRL_UNREACHABLE = "crl.unreachable"
    CRL_MALFORMED = "crl.malformed"
    CRL_BAD_SIGNATURE = "crl.bad_signature"
    CRL_STALE = "crl.stale"
    CRL_REVOKED_OCSP_GOOD = "cross.crl_revoked_ocsp_good"
    OCSP_REVOKED_NOT_IN_CRL = "cross.ocsp_revoked_not_in_crl"
    REVOCATION_MISMATCH = "cross.revocation_mismatch"
    NO_STATUS_SOURCE = "cross.no_status_source"
    # logs
    LOG_UNREACHABLE = "log.unreachable"
    LOG_BAD_STH = "log.bad_sth"
    LOG_ROOT_MISMATCH = "log.root_mismatch"
    LOG_SHRUNK = "log.tree_shrunk"
    LOG_FORK = "log.fork"
    LOG_INCONSISTENT = "log.inconsistent"  # a later head not proven to extend a verified one
    LOG_MALFORMED = "log.malformed"
    ENTRY_UNPARSEABLE = "entry.unparseable"
    # the log list (a live input: fetched, signature-checked, diffed)
    LOGLIST_UNREACHABLE = "loglist.unreachable"
    LOGLIST_BAD_SIGNATURE = "loglist.bad_signature"
    LOGLIST_MALFORMED = "loglist.malformed"
    LOGLIST_LOG_ADDED = "loglist.log_added"
    LOGLIST_LOG_REMOVED = "loglist.log_removed"
    LOGLIST_STATE_CHANGED = "loglist.state_changed"
    # reconciliation with our ledger
    ORPHAN = "reconcile.orphan"
    UNLOGGED = "reconcile.unlogged_precert"


SEVERITY: dict[Code, Severity] = dict.fromkeys(Code, Severity.ERROR)
SEVERITY.update(
    {
        Code.OCSP_UNKNOWN: Severity.CRITICAL,
        Code.OCSP_UNAUTHORIZED: Severity.CRITICAL,
        Code.OCSP_RANDOM_GOOD: Severity.CRITICAL,
        Code.CRL_REVOKED_OCSP_GOOD: Severity.CRITICAL,
        Code.LOG_ROOT_MISMATCH: Severity.CRITICAL,
        Code.LOG_FORK: Severity.CRITICAL,
        Code.LOG_INCONSISTENT: Severity.CRITICAL,
        Code.LOG_SHRUNK: Severity.CRITICAL,
        Code.LOG_BAD_STH: Severity.CRITICAL,
        Code.ORPHAN: Severity.CRITICAL,
        Code.OCSP_GET_UNSUPPORTED: Severity.WARNING,
        Code.OCSP_NO_NEXT_UPDATE: Severity.WARNING,
        Code.UNLOGGED: Severity.WARNING,
        Code.ENTRY_UNPARSEABLE: Severity.WARNING,
        Code.LOG_UNREACHABLE: Severity.WARNING,
        Code.LOGLIST_BAD_SIGNATURE: Severity.CRITICAL,
        Code.LOGLIST_UNREACHABLE: Severity.WARNING,
        Code.LOGLIST_LOG_ADDED: Severity.WARNING,
        Code.LOGLIST_LOG_REMOVED: Severity.WARNING,
        Code.LOGLIST_STATE_CHANGED: Severity.WARNING,
    }
)


@dataclass(frozen=True)
class Finding:
    """One thing found wrong in one check: the code, what it is about, and the evidence."""

    code: Code
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.code]
