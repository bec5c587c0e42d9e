"""The success path judged by peers we did not write (the ledger backend does not matter here).

* ``openssl verify -purpose sslserver`` accepts the chain up to the instance's root;
* ``lint_cabf_serverauth_cert lint -d`` (pkilint's own CLI) finds nothing, not even a warning,
  in the precertificate as the ledger stored it, nor in the final certificate;
* ``ctstatus ct verify-scts`` verifies every embedded SCT with its log's key from the log list
  the log server wrote, and finds the Chrome policy met;
* Debian's certspotter follows the three logs (verifying STHs and the trees), and sees the
  precertificate and the certificate (which we also log, as a CA's "final logs" step would) with
  one and the same TBS hash, which is ours.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from tests.certspotter import certspotter_binary, run_certspotter

from ctstatus.ct.sct import tbs_for_ct
from ctstatus.ledger import Ledger

from .conftest import LOGS, Stack, chain_b64, describe_log, unique_name

BIN = Path(sys.executable).parent
PKILINT = BIN / "lint_cabf_serverauth_cert"
CTSTATUS = BIN / "ctstatus"


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"


def test_openssl_pkilint_and_verify_scts_accept_the_issued_certificate(
    stack: Stack, ledger: Ledger, tmp_path: Path
) -> None:
    result = stack.issue(ledger, [unique_name("peers")])
    record = ledger.get(stack.issuer_id, result.serial)
    assert record is not None
    assert record.precert_der is not None
    cert = tmp_path / "cert.pem"
    cert.write_bytes(result.certificate.public_bytes(Encoding.PEM))
    precert = tmp_path / "precert.der"
    precert.write_bytes(record.precert_der)  # as stored, and as the logs received it

    runs = {
        "lint precert": [PKILINT, "lint", "-d", "-o", "-s", "WARNING", precert],
        "lint cert": [PKILINT, "lint", "-d", "-o", "-s", "WARNING", cert],
        "openssl": [
            "openssl",
            "verify",
            "-CAfile",
            stack.root_pem,
            "-untrusted",
            stack.issuing_pem,
            "-purpose",
            "sslserver",
            cert,
        ],
        "verify-scts": [
            CTSTATUS,
            "ct",
            "verify-scts",
            cert,
            "--issuer",
            stack.issuing_pem,
            "--log-list",
            stack.log_list_path,
        ],
    }
    env = {**os.environ, "COLUMNS": "200"}
    started = {
        name: subprocess.Popen(
            [str(arg) for arg in argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name, argv in runs.items()
    }
    out = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=120)
        out[name] = (process.returncode, stdout, stderr)
        assert process.returncode == 0, (name, stdout, stderr)

    assert out["lint precert"][1].strip() == ""  # no finding at WARNING or above
    assert out["lint precert"][2].strip() == "DV-PRE-CERTIFICATE"
    assert out["lint cert"][1].strip() == ""
    assert out["lint cert"][2].strip() == "DV-FINAL-CERTIFICATE"
    assert out["openssl"][1].strip() == f"{cert}: OK"
    report = out["verify-scts"][1]
    assert "signatures: all valid" in report
    assert "policy chrome: met (2 of 2 SCTs count" in report
    for logged in result.scts:
        assert logged.log_name in report


@pytest.fixture(scope="module")
def certspotter() -> str:
    return certspotter_binary()


@pytest.mark.certspotter
def test_certspotter_sees_precertificate_and_certificate_with_our_tbs_hash(
    stack: Stack, ledger: Ledger, certspotter: str, tmp_path: Path
) -> None:
    name = unique_name("spotted")
    result = stack.issue(ledger, [name])
    # Log the final certificate too (add-chain), in one of the logs that hold the precert.
    first = next(log for log in LOGS if describe_log(log) == result.scts[0].log_name)
    issuer_der = stack.issuing_certificate.public_bytes(Encoding.DER)
    cert_der = result.certificate.public_bytes(Encoding.DER)
    response = httpx.post(
        f"{stack.base_url}/{first}/ct/v1/add-chain",
        json={"chain": chain_b64([cert_der, issuer_der])},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    sizes = stack.tree_sizes()

    logged_documents = len(result.scts) + 1  # the precertificate in each log, the certificate
    urls = [f"{stack.base_url}/{log}/" for log in LOGS]

    def done(stderr: str, events: int) -> bool:  # every log read, every document reported
        return events >= logged_documents and all(
            f"saving state in defer for {url}" in stderr for url in urls
        )

    run = run_certspotter(certspotter, stack.log_list_path, tmp_path, name, done=done, seconds=30)
    stderr_text = run.stderr
    problems = [
        line
        for line in stderr_text.splitlines()
        if ("error" in line.lower() or "misbehav" in line.lower())
        and "context canceled" not in line
    ]
    assert problems == [], stderr_text
    for log, url in zip(LOGS, urls, strict=True):
        if sizes[log]:
            assert f"finished downloading entries from {url}" in stderr_text, stderr_text
    assert name in run.stdout

    ours = [e for e in run.events if e and int(e["SERIAL"], 16) == result.serial]
    # Both documents, each from the logs that hold it, by their fingerprints.
    precert_der = result.precertificate.public_bytes(Encoding.DER)
    found = {(e["CERT_SHA256"], e["LOG_URI"]) for e in ours}
    assert found == {
        (hashlib.sha256(precert_der).hexdigest(), f"{stack.base_url}/{log}/")
        for log in LOGS
        if describe_log(log) in {s.log_name for s in result.scts}
    } | {(hashlib.sha256(cert_der).hexdigest(), f"{stack.base_url}/{first}/")}, ours
    expected = hashlib.sha256(tbs_for_ct(result.certificate)).hexdigest()
    assert expected == hashlib.sha256(tbs_for_ct(result.precertificate)).hexdigest()
    assert {e["TBS_SHA256"] for e in ours} == {expected}, ours
