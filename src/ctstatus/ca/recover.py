"""``ctstatus recover``: settle what a crash left in the middle of issuance.

A crash (kill -9, power loss, a ledger outage in the abandon path) can leave three kinds of rows.
Each is resolved one way, deterministically, and only once it is older than a grace period that
no live attempt outlives (an attempt's CT deadline is far shorter):

- ``reserved``: the precertificate was never stored, so it never left the process
  (invariant 1) → ``never_signed``;
- ``precert_signed``: a log may hold the precertificate, and no attempt will finish it →
  ``abandoned``, then revoked unless the policy is ``keep``;
- ``abandoned`` under the ``revoke`` policy: the crash came between the two writes → revoked.

Every transition is compare-and-set in the ledger, so recover is idempotent and safe to run
while issuance runs, and two recovers racing each other settle each row once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ctstatus.ca.issuance import AbandonPolicy
from ctstatus.clock import Clock
from ctstatus.ledger import InvalidTransition, Ledger, RevocationReason, SerialState

#: Longer than any issuance attempt can live (its CT deadline is seconds to a minute).
DEFAULT_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class Recovered:
    issuer_id: int
    serial: int
    before: SerialState
    after: SerialState
    why: str


def recover(
    ledger: Ledger,
    clock: Clock,
    *,
    policy: AbandonPolicy = AbandonPolicy.REVOKE,
    reason: RevocationReason = RevocationReason.UNSPECIFIED,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    actor: str = "recover",
    batch: int = 1000,
) -> list[Recovered]:
    """Resolve every stale row; returns what was (or, with ``dry_run``, would be) done."""
    cutoff = clock() - grace
    done: list[Recovered] = []
    stale = [SerialState.RESERVED, SerialState.PRECERT_SIGNED]
    if policy is AbandonPolicy.REVOKE:
        stale.append(SerialState.ABANDONED)
    while True:
        rows = ledger.serials(state=stale, updated_before=cutoff, limit=batch)
        settled_before = len(done)
        for row in rows:
            step = _settle(
                ledger, row.issuer_id, row.serial, row.state, policy, reason, actor, dry_run
            )
            if step is not None:
                done.append(step)
        if dry_run or len(rows) < batch or len(done) == settled_before:
            return done


def _settle(
    ledger: Ledger,
    issuer_id: int,
    serial: int,
    state: SerialState,
    policy: AbandonPolicy,
    reason: RevocationReason,
    actor: str,
    dry_run: bool,
) -> Recovered | None:
    if state is SerialState.RESERVED:
        why = "reserved but no precertificate was stored before the attempt died"
        after = SerialState.NEVER_SIGNED
    elif state is SerialState.PRECERT_SIGNED:
        why = "precertificate signed, and the attempt that signed it died before finishing"
        after = SerialState.ABANDONED if policy is AbandonPolicy.KEEP else SerialState.REVOKED
    else:
        why = "abandoned, and the attempt died before revoking it"
        after = SerialState.REVOKED
    if dry_run:
        return Recovered(issuer_id, serial, state, after, why)
    try:
        if state is SerialState.RESERVED:
            ledger.mark_never_signed(issuer_id, serial, f"recover: {why}", actor=actor)
        else:
            if state is SerialState.PRECERT_SIGNED:
                ledger.mark_abandoned(issuer_id, serial, f"recover: {why}", actor=actor)
            if after is SerialState.REVOKED:
                ledger.revoke(issuer_id, serial, reason, actor=actor)
    except InvalidTransition:
        return None  # someone else (a live attempt, another recover) settled it first
    return Recovered(issuer_id, serial, state, after, why)
