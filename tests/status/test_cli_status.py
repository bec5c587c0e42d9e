"""The status commands as an operator runs them: revoke, crl urls/publish, ocsp refresh/export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.x509 import ocsp

from ctstatus.ledger import SerialState


def test_revoke_refuses_what_the_br_forbid_and_what_does_not_exist(
    instance_dir: Path, run_ctstatus: Callable[..., Any]
) -> None:
    for args, fragment in (
        (["abc123", "--reason", "certificateHold"], "certificateHold"),
        (["abc123", "--reason", "keyCompromise"], "has no serial abc123"),
        (["not-hex", "--reason", "superseded"], "is not a serial number"),
        (["abc123", "--reason", "superseded", "--issuer", "nope"], "no issuer 'nope'"),
    ):
        result = run_ctstatus("-i", instance_dir, "revoke", *args, check=False)
        assert result.returncode != 0
        assert fragment in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def test_crl_urls_are_the_ccadb_json_array(
    instance_dir: Path, run_ctstatus: Callable[..., Any]
) -> None:
    shards = json.loads(run_ctstatus("-i", instance_dir, "crl", "urls").stdout)
    assert shards == [f"http://pki.example.com/crl/issuing-ca/{n}.crl" for n in range(4)]
    root = json.loads(run_ctstatus("-i", instance_dir, "crl", "urls", "--issuer", "root-ca").stdout)
    assert root == ["http://pki.example.com/crl/root-ca/0.crl"]


def test_publish_refresh_and_export(
    instance_dir: Path,
    run_ctstatus: Callable[..., Any],
    instance_driver: Callable[[Path], Any],
    tmp_path: Path,
) -> None:
    published = run_ctstatus("-i", instance_dir, "crl", "publish", "--force").stdout
    assert published.count("http://pki.example.com/crl/") == 5  # 4 shards and the root CRL
    driver = instance_driver(instance_dir)
    good = driver.serial(SerialState.ISSUED)
    revoked = driver.serial(SerialState.REVOKED, via=SerialState.ABANDONED)
    never = driver.serial(SerialState.NEVER_SIGNED)
    driver.ledger.close()
    refreshed = run_ctstatus("-i", instance_dir, "ocsp", "refresh").stdout
    assert "signed" in refreshed

    out = tmp_path / "export"
    result = run_ctstatus("-i", instance_dir, "ocsp", "export", out, "--get-paths").stdout
    assert "wrote" in result
    issuer = driver.issuer
    for record, status in ((good, "GOOD"), (revoked, "REVOKED")):
        for key_hash in (issuer.key_hash_sha1, issuer.key_hash_sha256):
            path = out / key_hash.hex() / format(record.serial, "x")
            response = ocsp.load_der_ocsp_response(path.read_bytes())
            assert response.certificate_status.name == status
            assert response.serial_number == record.serial
            assert response.issuer_key_hash == key_hash
            assert path.stat().st_mtime == response.this_update_utc.timestamp()
    assert not (out / issuer.key_hash_sha1.hex() / format(never.serial, "x")).exists()
    get_files = list((out / "get").rglob("*"))
    assert any(f.is_file() for f in get_files)

    again = run_ctstatus("-i", instance_dir, "ocsp", "export", out).stdout  # re-export: fine
    assert "removed" in again
    assert not (out / "get").exists() or not any(p.is_file() for p in (out / "get").rglob("*"))

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    refused = run_ctstatus("-i", instance_dir, "ocsp", "export", foreign, check=False)
    assert refused.returncode == 1
    assert "not an earlier OCSP export" in refused.stderr
    assert (foreign / "precious.txt").exists()


def test_issue_responder_rotates_only_when_due(
    make_instance_dir: Callable[..., Path], run_ctstatus: Callable[..., Any]
) -> None:
    directory = make_instance_dir("sqlite", "delegated")
    first = run_ctstatus("-i", directory, "ocsp", "issue-responder").stdout
    assert "issued" in first or "valid until" in first
    again = run_ctstatus("-i", directory, "ocsp", "issue-responder").stdout
    assert "valid until" in again
    forced = run_ctstatus("-i", directory, "ocsp", "issue-responder", "--force").stdout
    assert "issued" in forced
