"""CRL publishing with the clock injected: when CRLs are due, what they list, how they are numbered.

Every CRL published here is also checked by ``openssl crl -verify`` and pkilint's BR CRL lints.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from ctstatus.clock import FrozenClock
from ctstatus.ledger import RevocationReason, SerialState
from ctstatus.status.crl_publisher import CrlPublisher, CrlSettings, CrlTarget, Published

BIN = Path(sys.executable).parent


def make_publisher(
    engine: Any, issuer: Any, *, shards: int = 4, settings: CrlSettings | None = None
) -> CrlPublisher:
    targets = [
        CrlTarget(issuer.issuer, shard, issuer.crl_url(shard), partitioned=shards > 1)
        for shard in range(shards)
    ]
    return CrlPublisher(engine, lambda: targets, lambda _: issuer.signer, settings or CrlSettings())


def by_shard(published: list[Published]) -> dict[int, Published]:
    return {p.target.shard: p for p in published}


def _check_with_peers(
    pkilint: Callable[..., tuple[int, str]], published: Published, issuer: Any, tmp_path: Path
) -> x509.CertificateRevocationList:
    path = tmp_path / f"{published.crl.id}.crl"
    path.write_bytes(published.crl.crl_der)
    ca = issuer.ca_pem(tmp_path)
    verify = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", path, "-noout", "-verify", "-CAfile", ca],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "verify OK" in verify.stdout + verify.stderr, verify.stderr
    code, output = pkilint("lint_crl", "lint", "-s", "WARNING", "-t", "CRL", "-p", "BR", path)
    assert code == 0, output
    return x509.load_der_x509_crl(published.crl.crl_der)


@pytest.fixture
def check_with_peers(pkilint: Callable[..., tuple[int, str]]) -> Callable[..., Any]:
    """``check_with_peers(published, issuer, tmp_path)``: openssl and pkilint accept it."""
    return lambda *args: _check_with_peers(pkilint, *args)


def serials_of(crl: x509.CertificateRevocationList) -> set[int]:
    return {r.serial_number for r in crl}


@pytest.fixture
def setup(
    make_issuer: Callable[..., Any], frozen: FrozenClock, status_engine: Any
) -> tuple[Any, CrlPublisher]:
    issuer = make_issuer(frozen)
    return issuer, make_publisher(status_engine, issuer)


def test_first_publication_is_every_shard_with_its_exact_url(
    check_with_peers: Callable[..., Any],
    setup: tuple[Any, CrlPublisher],
    frozen: FrozenClock,
    tmp_path: Path,
) -> None:
    issuer, publisher = setup
    published = by_shard(publisher.publish_due(frozen.now))
    assert sorted(published) == [0, 1, 2, 3]
    for shard, item in published.items():
        assert item.reason == "first"
        crl = check_with_peers(item, issuer, tmp_path)
        assert crl.issuer == issuer.certificate.subject
        assert crl.last_update_utc == frozen.now
        assert crl.next_update_utc == frozen.now + timedelta(days=7)
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical
        assert [n.value for n in idp.value.full_name or []] == [issuer.crl_url(shard)]
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert number == int(frozen.now.timestamp()) * 10**9 < 2**159
    assert publisher.publish_due(frozen.now) == []  # nothing new: nothing due


def test_a_full_crl_has_no_idp(
    check_with_peers: Callable[..., Any],
    make_issuer: Callable[..., Any],
    frozen: FrozenClock,
    status_engine: Any,
    tmp_path: Path,
) -> None:
    issuer = make_issuer(frozen)
    issuer.crl_shards = 1
    revoked = issuer.serial(SerialState.REVOKED)
    (item,) = make_publisher(status_engine, issuer, shards=1).publish_due(frozen.now)
    crl = check_with_peers(item, issuer, tmp_path)
    assert serials_of(crl) == {revoked.serial}
    with pytest.raises(x509.ExtensionNotFound):
        crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)


def test_revocation_is_published_within_the_delay(
    check_with_peers: Callable[..., Any],
    setup: tuple[Any, CrlPublisher],
    frozen: FrozenClock,
    tmp_path: Path,
) -> None:
    issuer, publisher = setup
    publisher.publish_due(frozen.now)
    record = issuer.serial(SerialState.ISSUED)
    frozen.advance(minutes=10)
    issuer.ledger.revoke(issuer.id, record.serial, RevocationReason.KEY_COMPROMISE, actor="test")
    delay = publisher.settings.revocation_delay.total_seconds()
    assert publisher.settings.check_interval <= delay / 2  # the service checks this often
    frozen.advance(seconds=publisher.settings.check_interval)
    published = by_shard(publisher.publish_due(frozen.now))
    shard = record.serial % issuer.crl_shards
    assert list(published) == [shard]  # only the shard that changed
    assert published[shard].reason == "revocation"
    crl = check_with_peers(published[shard], issuer, tmp_path)
    entry = crl.get_revoked_certificate_by_serial_number(record.serial)
    assert entry is not None
    assert entry.revocation_date_utc == frozen.now - timedelta(seconds=30)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )


def test_revoked_precertificate_only_serials_are_listed(
    check_with_peers: Callable[..., Any],
    setup: tuple[Any, CrlPublisher],
    frozen: FrozenClock,
    tmp_path: Path,
) -> None:
    issuer, publisher = setup
    abandoned = issuer.serial(SerialState.REVOKED, via=SerialState.ABANDONED)
    straight = issuer.serial(SerialState.REVOKED, via=SerialState.PRECERT_SIGNED)
    unspecified = issuer.serial(SerialState.REVOKED, reason=RevocationReason.UNSPECIFIED)
    good = issuer.serial(SerialState.ABANDONED)
    listed: set[int] = set()
    for item in publisher.publish_due(frozen.now):
        crl = check_with_peers(item, issuer, tmp_path)
        listed |= serials_of(crl)
        entry = crl.get_revoked_certificate_by_serial_number(unspecified.serial)
        if entry is not None:
            assert len(entry.extensions) == 0  # unspecified: no reasonCode (BR §7.2.2)
    assert {abandoned.serial, straight.serial, unspecified.serial} <= listed
    assert good.serial not in listed


def test_republished_every_three_and_a_half_days(
    setup: tuple[Any, CrlPublisher], frozen: FrozenClock
) -> None:
    _issuer, publisher = setup
    first = by_shard(publisher.publish_due(frozen.now))
    frozen.advance(hours=84, seconds=-1)
    assert publisher.publish_due(frozen.now) == []
    frozen.advance(seconds=1)
    again = by_shard(publisher.publish_due(frozen.now))
    assert sorted(again) == [0, 1, 2, 3]
    assert {p.reason for p in again.values()} == {"republish"}
    for shard, item in again.items():
        assert item.crl.crl_number > first[shard].crl.crl_number
        assert item.crl.next_update - item.crl.this_update <= timedelta(days=10)


def test_numbers_strictly_increase_even_when_the_clock_stalls(
    setup: tuple[Any, CrlPublisher], frozen: FrozenClock
) -> None:
    _, publisher = setup
    numbers = [by_shard(publisher.publish_due(frozen.now, force=True))[0].crl.crl_number]
    for _ in range(3):
        numbers.append(by_shard(publisher.publish_due(frozen.now, force=True))[0].crl.crl_number)
    assert numbers == sorted(set(numbers))
    assert numbers[1] == numbers[0] + 1


def test_an_entry_stays_until_one_crl_after_expiry(
    setup: tuple[Any, CrlPublisher], frozen: FrozenClock
) -> None:
    issuer, publisher = setup
    record = issuer.serial(SerialState.REVOKED, not_before=frozen.now - timedelta(days=1), days=2)
    shard = record.serial % issuer.crl_shards

    def listed() -> bool:
        crl = by_shard(publisher.publish_due(frozen.now, force=True))[shard].crl
        return record.serial in serials_of(x509.load_der_x509_crl(crl.crl_der))

    assert listed()  # before expiry
    frozen.advance(days=1, hours=1)  # the certificate has expired
    assert listed()  # the first CRL after expiry still lists it
    frozen.advance(hours=1)
    assert not listed()  # and the next one no longer does


def test_concurrent_publishers_never_reuse_a_number(
    make_issuer: Callable[..., Any], frozen: FrozenClock, status_engine: Any
) -> None:
    """Two publishers (say, on two hosts sharing the ledger) at the same instant."""
    issuer = make_issuer(frozen)
    publishers = [make_publisher(status_engine, issuer, shards=1) for _ in range(4)]
    results: list[list[Published]] = []
    barrier = threading.Barrier(len(publishers))

    def run(publisher: CrlPublisher) -> None:
        barrier.wait()
        results.append(publisher.publish_due(frozen.now, force=True))

    threads = [threading.Thread(target=run, args=(p,)) for p in publishers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = [item.crl.crl_number for batch in results for item in batch]
    assert len(numbers) == 4
    assert len(set(numbers)) == 4


def test_the_service_publishes_after_a_revocation(
    make_issuer: Callable[..., Any], make_service: Any, frozen: FrozenClock, status_engine: Any
) -> None:
    """The same path `ocsp serve` runs: publish, revoke, the next check republishes."""
    import asyncio

    issuer = make_issuer(frozen)
    service = make_service([issuer], frozen)
    service.publisher = make_publisher(status_engine, issuer)
    asyncio.run(service.publish_once())
    record = issuer.serial(SerialState.ISSUED)
    issuer.ledger.revoke(issuer.id, record.serial, RevocationReason.SUPERSEDED, actor="test")
    frozen.advance(seconds=30)
    (item,) = asyncio.run(service.publish_once())
    assert record.serial in serials_of(x509.load_der_x509_crl(item.crl.crl_der))
    served = service.crls.get(
        issuer.crl_url(item.target.shard).removeprefix("http://pki.example.com").encode()
    )
    assert served is not None
    assert served.crl.id == item.crl.id
