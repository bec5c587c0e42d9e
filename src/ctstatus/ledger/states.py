"""The serial state machine: the one place the allowed transitions are written down.

The store's compare-and-set updates, the database triggers (``triggers.py``) and the CHECK
constraints (``schema.py``) are all generated from :data:`TRANSITIONS`, so the Python code and the
database cannot disagree about which moves are legal.

::

    reserved ──► precert_signed ──► issued ──► revoked
       │               │                          ▲
       │               └──► abandoned ────────────┤
       │               └──────────────────────────┘
       └──► never_signed

=============== ======================================== =========================================
state           meaning                                  may move to
=============== ======================================== =========================================
reserved        row committed, nothing signed yet        precert_signed, never_signed
precert_signed  precertificate signed and stored         issued, abandoned, revoked
issued          final certificate signed and stored      revoked
abandoned       issuance failed after the precert        revoked
never_signed    failed before any precert existed        (terminal)
revoked         revoked; reason and time are fixed       (terminal)
=============== ======================================== =========================================

Changing the table: the triggers follow automatically (``ledger.migrate()`` reinstalls them and
opening a ledger whose triggers differ is refused), but the CHECK constraints live in table
definitions, so a change to the set of states or to which states carry a precertificate needs a
new alembic migration.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class SerialState(StrEnum):
    """Lifecycle state of one serial number of one issuer."""

    RESERVED = "reserved"
    PRECERT_SIGNED = "precert_signed"
    ISSUED = "issued"
    ABANDONED = "abandoned"
    NEVER_SIGNED = "never_signed"
    REVOKED = "revoked"


_S = SerialState

TRANSITIONS: Final[Mapping[SerialState, frozenset[SerialState]]] = MappingProxyType(
    {
        _S.RESERVED: frozenset({_S.PRECERT_SIGNED, _S.NEVER_SIGNED}),
        _S.PRECERT_SIGNED: frozenset({_S.ISSUED, _S.ABANDONED, _S.REVOKED}),
        _S.ISSUED: frozenset({_S.REVOKED}),
        _S.ABANDONED: frozenset({_S.REVOKED}),
        _S.NEVER_SIGNED: frozenset(),
        _S.REVOKED: frozenset(),
    }
)
"""state -> states it may move to. Anything else (state -> same state too) is illegal."""

INITIAL_STATE: Final = SerialState.RESERVED
"""Every serial row is born here: a row is written before anything is signed (invariant 1)."""

HOLDS_REQUEST: Final[frozenset[SerialState]] = frozenset(
    {_S.RESERVED, _S.PRECERT_SIGNED, _S.ISSUED}
)
"""States in which a serial still answers for its request (order).

While a request has a serial in one of these states, a retry of that request must reuse it rather
than reserve a new one (invariant 4: only an abandoned, never-signed or revoked serial frees the
request). The database enforces this with a partial unique index on ``request_id``.
"""

ACTIONS: Final[Mapping[SerialState, str]] = MappingProxyType(
    {
        _S.RESERVED: "reserve",
        _S.PRECERT_SIGNED: "precert_signed",
        _S.ISSUED: "issued",
        _S.ABANDONED: "abandon",
        _S.NEVER_SIGNED: "never_signed",
        _S.REVOKED: "revoke",
    }
)
"""The journal's ``action`` for the event that moves a serial into each state."""


class CertificateKind(StrEnum):
    """What a serial certifies; only subscriber certificates go through a precertificate.

    CA certificates (and delegated OCSP responder certificates) are not logged to CT, so they
    have no precertificate: they are recorded in one transaction, ``reserved`` then ``issued``
    with the signed certificate (:data:`DIRECT_ISSUE`), so the issuer's OCSP and CRL answer for
    them and they can be revoked like any other serial.
    """

    SUBSCRIBER = "subscriber"
    CA = "ca"
    OCSP_RESPONDER = "ocsp_responder"


DIRECT_ISSUE: Final = (SerialState.RESERVED, SerialState.ISSUED)
"""The one extra edge for kinds other than ``subscriber``: issued without a precertificate."""

DIRECT_KIND_STATES: Final[frozenset[SerialState]] = frozenset(
    {_S.RESERVED, _S.ISSUED, _S.REVOKED, _S.NEVER_SIGNED}
)
"""The states a certificate without a precertificate can be in."""

ISSUER_ADDED: Final = "issuer_added"
"""The journal's ``action`` for registering an issuer."""


def can_transition(source: SerialState, target: SerialState) -> bool:
    """Whether ``source -> target`` is an edge of the state machine."""
    return target in TRANSITIONS[source]


def predecessors(target: SerialState) -> frozenset[SerialState]:
    """States from which ``target`` can be reached in one step."""
    return frozenset(s for s, nexts in TRANSITIONS.items() if target in nexts)


def reachable_from(start: SerialState) -> frozenset[SerialState]:
    """``start`` and every state reachable from it (used to derive column requirements)."""
    seen = {start}
    todo = [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


def path_to(target: SerialState) -> list[SerialState]:
    """A shortest path of states from :data:`INITIAL_STATE` to ``target``, both included."""
    paths: dict[SerialState, list[SerialState]] = {INITIAL_STATE: [INITIAL_STATE]}
    todo = [INITIAL_STATE]
    while todo:
        current = todo.pop(0)
        for nxt in sorted(TRANSITIONS[current], key=list(SerialState).index):
            if nxt not in paths:
                paths[nxt] = [*paths[current], nxt]
                todo.append(nxt)
    return paths[target]


TERMINAL_STATES: Final[frozenset[SerialState]] = frozenset(
    s for s, n in TRANSITIONS.items() if not n
)
"""States a serial never leaves."""

HAS_PRECERT: Final[frozenset[SerialState]] = reachable_from(SerialState.PRECERT_SIGNED)
"""States whose row must carry ``precert_der``; every other state must not (nothing was signed)."""

MAY_HAVE_CERT: Final[frozenset[SerialState]] = reachable_from(SerialState.ISSUED)
"""States whose row may carry ``cert_der`` (``issued`` must)."""
