"""Revoking the subordinate CA (issue #13), as an operator does it and as relying parties see it.

``ctstatus init`` records the issuing CA's certificate as a serial of the root, so the root's CRL
(and its OCSP, where the root signs one) answers for it, and ``ctstatus revoke --issuer root-ca``
revokes it. Peers: ``openssl crl`` lists the serial on the root's CRL, and ``openssl verify
-crl_check_all`` accepts a leaf under the subordinate before, and rejects it after.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ledger import CertificateKind, SerialState
from ctstatus.status.answer import Verdict, verdict
from ctstatus.status.db import latest_crl

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def fresh_instance(request: pytest.FixtureRequest, database_factory: Any, tmp_path: Path) -> Any:
    """An instance of its own: revoking its issuing CA must not touch other tests' instances."""
    from ctstatus.ca.bootstrap import init_instance
    from ctstatus.config import new_instance_config

    if request.param == "postgresql":
        request.getfixturevalue("postgres_admin")
    with database_factory(request.param) as url:
        ledger_url = "sqlite:///ledger.sqlite3" if request.param == "sqlite" else url
        config = new_instance_config(
            organization="ctstatus Test",
            country="DE",
            base_url="http://pki.example.com",
            ledger_url=ledger_url,
        )
        yield init_instance(tmp_path / "ca", config)


def _crl_pem(instance: Any, issuer_name: str, shard: int, path: Path) -> Path:
    ledger = instance.open_ledger()
    try:
        issuer = ledger.issuer_by_name(issuer_name)
        assert issuer is not None
        with ledger.engine.connect() as conn:
            row = latest_crl(conn, issuer.id, shard)
    finally:
        ledger.close()
    assert row is not None, (issuer_name, shard)
    path.write_bytes(x509.load_der_x509_crl(row.crl_der).public_bytes(Encoding.PEM))
    return path


def _verify(
    root: Path, sub: Path, leaf: Path, crls: list[Path]
) -> subprocess.CompletedProcess[str]:
    crl_args = [arg for crl in crls for arg in ("-CRLfile", str(crl))]
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-crl_check_all",
            "-CAfile",
            root,
            "-untrusted",
            sub,
            *crl_args,
            leaf,
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_subordinate_ca_is_revoked_onto_the_roots_crl(
    fresh_instance: Any,
    run_ctstatus: Callable[..., subprocess.CompletedProcess[str]],
    instance_driver: Callable[[Path], Any],
    tmp_path: Path,
) -> None:
    instance = fresh_instance
    directory = instance.directory
    sub_cert = instance.certificate(instance.config.ca.issuing)
    root_pem = instance.path(instance.config.ca.root.certificate)
    sub_pem = instance.path(instance.config.ca.issuing.certificate)

    # init recorded the issuing CA as an issued serial of the root: answered, not unauthorized.
    ledger = instance.open_ledger()
    try:
        root = ledger.issuer_by_name("root-ca")
        assert root is not None
        record = ledger.get(root.id, sub_cert.serial_number)
        assert record is not None
        assert (record.state, record.kind) == (SerialState.ISSUED, CertificateKind.CA)
        assert record.cert_der == sub_cert.public_bytes(Encoding.DER)
        assert verdict(record.state) is Verdict.GOOD
    finally:
        ledger.close()

    driver = instance_driver(directory)
    try:
        leaf_record = driver.serial(SerialState.ISSUED)
    finally:
        driver.ledger.close()
    leaf = tmp_path / "leaf.pem"
    assert leaf_record.cert_der is not None
    leaf.write_bytes(
        x509.load_der_x509_certificate(leaf_record.cert_der).public_bytes(Encoding.PEM)
    )
    shard = leaf_record.crl_shard

    run_ctstatus("-i", directory, "crl", "publish", "--force")
    before = [
        _crl_pem(instance, "root-ca", 0, tmp_path / "root-before.crl"),
        _crl_pem(instance, "issuing-ca", shard, tmp_path / "issuing.crl"),
    ]
    accepted = _verify(root_pem, sub_pem, leaf, before)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr

    revoked = run_ctstatus(
        "-i",
        directory,
        "revoke",
        "--issuer",
        "root-ca",
        f"{sub_cert.serial_number:x}",
        "--reason",
        "keyCompromise",
    )
    assert f"revoked serial {sub_cert.serial_number:x} of root-ca" in revoked.stdout
    assert "Traceback" not in revoked.stdout + revoked.stderr

    run_ctstatus("-i", directory, "crl", "publish")  # the revocation makes the root CRL due
    root_crl = _crl_pem(instance, "root-ca", 0, tmp_path / "root-after.crl")
    text = subprocess.run(
        ["openssl", "crl", "-in", root_crl, "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    openssl_serial = f"{sub_cert.serial_number:X}"
    openssl_serial = "0" * (len(openssl_serial) % 2) + openssl_serial  # whole octets
    assert f"Serial Number: {openssl_serial}" in text
    assert "Key Compromise" in text

    rejected = _verify(root_pem, sub_pem, leaf, [root_crl, before[1]])
    assert rejected.returncode != 0
    assert "certificate revoked" in rejected.stdout + rejected.stderr
    assert "error 23 at 1 depth lookup" in rejected.stdout + rejected.stderr  # the sub CA
