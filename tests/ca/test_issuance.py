"""The issuance sequence: every path ends with the serial answerable, and peers accept success.

CT here is an in-process submitter that signs real SCTs with real log keys (the HTTP client and
log server are tested on their own); it can fail the way the Microsec incident did: one log
accepts the precertificate, the quorum is not met.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ca import bootstrap, profiles
from ctstatus.ca.issuance import (
    AbandonPolicy,
    IssuanceError,
    IssuanceRequest,
    IssuanceSettings,
    IssuingCa,
    LintFailed,
    LoggedSct,
)
from ctstatus.clock import FrozenClock
from ctstatus.config import new_instance_config
from ctstatus.ct.sct import issuer_key_hash, sign_sct, tbs_for_ct, verify_sct
from ctstatus.ct.structures import LogEntryType
from ctstatus.instance import Instance
from ctstatus.keys import InProcessSigner, KeyAlgorithm
from ctstatus.ledger import Ledger, RequestHasSerial, SerialState

PKILINT = Path(sys.executable).parent / "lint_cabf_serverauth_cert"


@dataclass
class FakeLogs:
    """Two logs of two operators that sign real SCTs; ``fail_after`` makes quorum fail."""

    clock: FrozenClock
    fail_after: int | None = None
    keys: list[InProcessSigner] = field(
        default_factory=lambda: [InProcessSigner(KeyAlgorithm.ECDSA_P256.generate()) for _ in "ab"]
    )
    received: list[bytes] = field(default_factory=list)

    def infeasible(self, not_before: datetime, not_after: datetime) -> str | None:
        return None  # two logs of two operators, no temporal shards: always enough

    async def submit_precertificate(
        self, chain: Sequence[bytes], not_before: datetime, not_after: datetime
    ) -> Sequence[LoggedSct]:
        self.received.append(chain[0])
        scts = []
        for index, key in enumerate(self.keys):
            if self.fail_after is not None and index >= self.fail_after:
                raise RuntimeError(
                    f"CT policy not met: {index} of 2 SCTs (log {'ab'[index]}: timeout after 10 s)"
                )
            sct = sign_sct(
                key,
                LogEntryType.PRECERT_ENTRY,
                int(self.clock().timestamp() * 1000),
                (issuer_key_hash(chain[1]), tbs_for_ct(chain[0])),
            )
            scts.append(LoggedSct(sct, f"log {'ab'[index]}", f"operator {'ab'[index]}"))
        return scts


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """A CA made the day before the `clock` fixture's time, at which certificates are issued."""
    made = FrozenClock(datetime(2026, 10, 31, 12, 0, tzinfo=UTC))
    return bootstrap.init_instance(
        tmp_path_factory.mktemp("issuance") / "ca", new_instance_config(), clock=made
    )


@pytest.fixture
def ledger(instance: Instance, clock: FrozenClock) -> Iterator[Ledger]:
    ledger = instance.open_ledger(clock)
    yield ledger
    ledger.close()


def _ca(
    instance: Instance, ledger: Ledger, logs: FakeLogs, policy: AbandonPolicy = AbandonPolicy.REVOKE
) -> IssuingCa:
    config = instance.config
    issuing = config.ca.issuing
    issuer = ledger.issuer_by_name(issuing.name)
    assert issuer is not None
    settings = IssuanceSettings(
        issuer_name=issuing.name,
        issuer_certificate=instance.certificate(issuing),
        ocsp_url=config.urls.ocsp_url(issuing.name),
        ca_issuers_url=config.urls.ca_issuers_url(issuing.name),
        crl_url=lambda shard: config.urls.crl_url(issuing.name, shard),
        crl_shards=config.profiles.tls_server.crl_shards,
        abandon_policy=policy,
    )
    return IssuingCa(ledger, issuer.id, instance.signer(issuing), settings, logs, logs.clock)


def _request(names: Sequence[str] = ("www.example.com",), request_id: str | None = None) -> Any:
    return IssuanceRequest(
        public_key=KeyAlgorithm.ECDSA_P256.generate().public_key(),
        names=profiles.parse_names(list(names)),
        lifetime_days=90,
        request_id=request_id,
    )


def _states(ledger: Ledger, issuer_id: int, serial: int) -> list[str | None]:
    return [
        event.to_state.value if event.to_state else None
        for event in ledger.events(issuer_id=issuer_id, serial=serial)
    ]


def test_success_is_accepted_by_openssl_pkilint_and_sct_verification(
    instance: Instance, ledger: Ledger, clock: FrozenClock, tmp_path: Path
) -> None:
    logs = FakeLogs(clock)
    result = asyncio.run(
        _ca(instance, ledger, logs).issue(_request(["www.example.com", "example.com"]))
    )
    issuer_cert = instance.certificate(instance.config.ca.issuing)
    record = ledger.get(ledger.issuer_by_name("issuing-ca").id, result.serial)  # type: ignore[union-attr]
    assert record is not None
    assert record.state is SerialState.ISSUED
    assert record.precert_der == result.precertificate.public_bytes(Encoding.DER)
    assert logs.received == [record.precert_der]
    # The final certificate corresponds to the precertificate byte for byte.
    assert tbs_for_ct(result.certificate) == tbs_for_ct(result.precertificate)
    now_ms = int(clock().timestamp() * 1000)
    for logged, key in zip(result.scts, logs.keys, strict=True):
        verify_sct(
            logged.sct,
            key.public_key(),
            certificate=result.certificate,
            issuer=issuer_cert,
            now_ms=now_ms,
        )
    # Peers: openssl verifies the chain, pkilint finds no error in either document.
    (tmp_path / "chain.pem").write_bytes(issuer_cert.public_bytes(Encoding.PEM))
    for name, document in (("cert", result.certificate), ("precert", result.precertificate)):
        path = tmp_path / f"{name}.pem"
        path.write_bytes(document.public_bytes(Encoding.PEM))
        lint = subprocess.run(
            [PKILINT, "lint", "-d", "-s", "WARNING", path],
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout
    root = instance.directory / "certs/root-ca.pem"
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-attime",
            str(int(clock().timestamp()) + 60),
            "-CAfile",
            root,
            "-untrusted",
            tmp_path / "chain.pem",
            "-purpose",
            "sslserver",
            tmp_path / "cert.pem",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_quorum_failure_after_one_log_accepted_leaves_the_serial_revoked(
    instance: Instance, ledger: Ledger, clock: FrozenClock
) -> None:
    """The Microsec incident: one log got the precertificate, quorum failed."""
    logs = FakeLogs(clock, fail_after=1)
    with pytest.raises(IssuanceError) as error:
        asyncio.run(_ca(instance, ledger, logs).issue(_request()))
    assert "CT policy not met: 1 of 2 SCTs (log b: timeout after 10 s)" in error.value.message
    assert "abandoned and revoked" in error.value.message
    serial = error.value.serial
    assert serial is not None
    issuer_id = ledger.issuer_by_name("issuing-ca").id  # type: ignore[union-attr]
    record = ledger.get(issuer_id, serial)
    assert record is not None
    assert record.state is SerialState.REVOKED
    assert record.precert_der == logs.received[0]  # the very bytes the log saw
    assert _states(ledger, issuer_id, serial) == [
        "reserved",
        "precert_signed",
        "abandoned",
        "revoked",
    ]


def test_keep_policy_leaves_the_abandoned_serial_good(
    instance: Instance, ledger: Ledger, clock: FrozenClock
) -> None:
    with pytest.raises(IssuanceError, match="kept"):
        asyncio.run(
            _ca(instance, ledger, FakeLogs(clock, fail_after=0), AbandonPolicy.KEEP).issue(
                _request()
            )
        )


def test_lint_failure_signs_nothing(instance: Instance, ledger: Ledger, clock: FrozenClock) -> None:
    logs = FakeLogs(clock)
    with pytest.raises(LintFailed, match="internal_ip_address") as error:
        asyncio.run(_ca(instance, ledger, logs).issue(_request(["10.1.2.3"])))
    assert logs.received == []
    issuer_id = ledger.issuer_by_name("issuing-ca").id  # type: ignore[union-attr]
    record = ledger.get(issuer_id, error.value.serial)  # type: ignore[arg-type]
    assert record is not None
    assert record.state is SerialState.NEVER_SIGNED
    assert record.precert_der is None


def test_a_retry_gets_a_new_serial_only_after_the_old_one_is_abandoned(
    instance: Instance, ledger: Ledger, clock: FrozenClock
) -> None:
    """ANF AC 2026: the retry must not forget the first serial."""
    with pytest.raises(IssuanceError) as first:
        asyncio.run(
            _ca(instance, ledger, FakeLogs(clock, fail_after=1)).issue(
                _request(request_id="order-1")
            )
        )
    result = asyncio.run(
        _ca(instance, ledger, FakeLogs(clock)).issue(_request(request_id="order-1"))
    )
    assert result.serial != first.value.serial
    issuer_id = ledger.issuer_by_name("issuing-ca").id  # type: ignore[union-attr]
    with pytest.raises(RequestHasSerial):
        ledger.reserve(
            issuer_id,
            profiles.new_serial(),
            not_before=clock(),
            not_after=clock().replace(year=2027),
            crl_shard=0,
            request_id="order-1",
            actor="test",
        )


@pytest.mark.parametrize(
    ("method", "expected_state", "ct_called"),
    [
        ("reserve", None, False),
        ("mark_precert_signed", SerialState.RESERVED, False),
        ("mark_issued", SerialState.REVOKED, True),
        ("mark_abandoned", SerialState.PRECERT_SIGNED, True),
        ("revoke", SerialState.ABANDONED, True),
    ],
)
def test_a_ledger_failure_at_each_write_never_leaves_a_precertificate_without_status(
    instance: Instance,
    ledger: Ledger,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    expected_state: SerialState | None,
    ct_called: bool,
) -> None:
    logs = FakeLogs(
        clock, fail_after=None if method != "mark_abandoned" and method != "revoke" else 1
    )
    real = getattr(ledger, method)
    seen: list[int] = []

    def failing(issuer_id: int, serial: int, *args: object, **kwargs: object) -> object:
        seen.append(serial)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ledger, method, failing)
    with pytest.raises((IssuanceError, OSError)):
        asyncio.run(_ca(instance, ledger, logs).issue(_request()))
    monkeypatch.setattr(ledger, method, real)
    assert bool(logs.received) is ct_called
    if expected_state is None:
        return
    record = ledger.get(ledger.issuer_by_name("issuing-ca").id, seen[0])  # type: ignore[union-attr]
    assert record is not None
    assert record.state is expected_state
    if ct_called:
        # Whatever a log received has a status that is never `unknown`.
        assert record.precert_der == logs.received[0]


def test_recover_settles_what_a_crash_left(
    instance: Instance, ledger: Ledger, clock: FrozenClock
) -> None:
    from ctstatus.ca.recover import recover

    issuer_id = ledger.issuer_by_name("issuing-ca").id  # type: ignore[union-attr]
    # A crash after step 1, one after step 3, and one inside the abandon path (SystemExit is
    # not an Exception: the abandon path cannot catch it, as it could not catch kill -9).
    crashed = {}
    for name, stop_at in (("reserved", 1), ("precert", 3), ("abandoned", 4)):
        logs = FakeLogs(clock, fail_after=0)
        ca = _ca(instance, ledger, logs)

        def stop(*_args: object, **_kwargs: object) -> None:
            raise SystemExit("killed")

        with pytest.MonkeyPatch.context() as patch:
            if stop_at == 1:
                patch.setattr(ledger, "mark_precert_signed", stop)
            elif stop_at == 3:
                patch.setattr(ledger, "mark_abandoned", stop)
            else:
                patch.setattr(ledger, "revoke", stop)
            with pytest.raises(SystemExit):
                asyncio.run(ca.issue(_request()))
        crashed[name] = ledger.serials(issuer_id=issuer_id, limit=10_000)[-1].serial
    fresh = recover(ledger, clock)  # nothing is older than the grace period yet
    assert fresh == []
    clock.advance(minutes=11)
    planned = recover(ledger, clock, dry_run=True)
    assert {r.serial for r in planned} >= set(crashed.values())
    done = recover(ledger, clock)
    after = {r.serial: r.after for r in done}
    assert after[crashed["reserved"]] is SerialState.NEVER_SIGNED
    assert after[crashed["precert"]] is SerialState.REVOKED
    assert after[crashed["abandoned"]] is SerialState.REVOKED
    assert recover(ledger, clock) == []  # idempotent


def _lint_ok(document: Any, path: Path) -> None:
    path.write_bytes(document.public_bytes(Encoding.PEM))
    lint = subprocess.run(
        [PKILINT, "lint", "-d", "-s", "WARNING", path], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("days", [0, -1, 400])
def test_an_impossible_lifetime_is_refused_before_a_serial_is_reserved(
    instance: Instance, ledger: Ledger, clock: FrozenClock, days: int
) -> None:
    logs = FakeLogs(clock)
    issuer_id = ledger.issuer_by_name("issuing-ca").id  # type: ignore[union-attr]
    before = ledger.count_by_state(issuer_id)
    request = replace(_request(), lifetime_days=days)
    with pytest.raises(IssuanceError, match=f"a lifetime of {days} days ") as error:
        asyncio.run(_ca(instance, ledger, logs).issue(request))
    assert error.value.serial is None
    assert error.value.state is None
    assert ledger.count_by_state(issuer_id) == before
    assert logs.received == []


# (when, the longest lifetime we issue then, the default lifetime then)
SC081_DATES = [
    (datetime(2027, 3, 14, 23, 59, 59, tzinfo=UTC), 199, 90),
    (datetime(2027, 3, 15, 0, 0, 0, tzinfo=UTC), 99, 90),
    (datetime(2029, 3, 14, 23, 59, 59, tzinfo=UTC), 99, 90),
    (datetime(2029, 3, 15, 0, 0, 0, tzinfo=UTC), 46, 46),
]


@pytest.mark.parametrize(("when", "maximum", "default"), SC081_DATES)
def test_lifetimes_follow_the_sc081_schedule_by_the_clocks_date(
    instance: Instance, tmp_path: Path, when: datetime, maximum: int, default: int
) -> None:
    """On both sides of each boundary: the maximum issues (and lints), one more day does not,
    and a request without a lifetime gets the default of that date."""
    clock = FrozenClock(when)
    with instance.open_ledger(clock) as ledger:
        logs = FakeLogs(clock)
        ca = _ca(instance, ledger, logs)
        longest = asyncio.run(ca.issue(replace(_request(), lifetime_days=maximum)))
        assert policy_lifetime_days(longest.certificate) == maximum
        _lint_ok(longest.certificate, tmp_path / "longest.pem")
        _lint_ok(longest.precertificate, tmp_path / "longest-precert.pem")
        with pytest.raises(IssuanceError, match=f"more than the {maximum} days") as error:
            asyncio.run(ca.issue(replace(_request(), lifetime_days=maximum + 1)))
        assert error.value.serial is None
        unspecified = asyncio.run(ca.issue(replace(_request(), lifetime_days=None)))
        assert policy_lifetime_days(unspecified.certificate) == default
        _lint_ok(unspecified.certificate, tmp_path / "default.pem")


def policy_lifetime_days(certificate: Any) -> int:
    from ctstatus.ct.policy import lifetime_days

    return lifetime_days(certificate.not_valid_before_utc, certificate.not_valid_after_utc)
