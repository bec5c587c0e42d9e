"""``ctstatus issue`` through the real CLI (subprocesses), as a user runs it.

Successes print the chain or the ``--json`` record; every refusal is exit status 1 with one
``error:`` line (and perhaps a ``hint:`` line) on stderr, never a traceback. The subprocesses of
each batch run at once: they are independent, and the machine has two cores.
(``ctstatus recover --dry-run`` is exercised in ``test_crash.py``, on rows a kill -9 left.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ctstatus.ledger import Ledger, SerialState

from .conftest import (
    ABANDONED_JOURNAL,
    RETRIED_503,
    TIMED_OUT,
    Stack,
    abandoned_message,
    journal,
    reasons,
    timeouts_normalised,
    unique_name,
)

CTSTATUS = Path(sys.executable).parent / "ctstatus"


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"


def run_all(
    stack: Stack, runs: Mapping[str, Sequence[str | Path]], cwd: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Start every ``ctstatus -i INSTANCE …`` of ``runs`` at once; wait for all."""
    env = {**os.environ, "COLUMNS": "200"}
    started = {
        name: subprocess.Popen(
            [str(CTSTATUS), "-i", str(stack.directory), *map(str, argv)],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name, argv in runs.items()
    }
    done = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=120)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return done


def refused(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines of a refusal: exit 1, ``error:`` first, a hint at most, no traceback."""
    lines = done.stderr.splitlines()
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("error: ")
    if len(lines) == 2:
        assert lines[1].startswith("hint: ")
    return lines


def csr_for(
    names: Sequence[str], key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
) -> x509.CertificateSigningRequest:
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def test_issue_json_and_csr_in_pem_and_der(stack: Stack, ledger: Ledger, tmp_path: Path) -> None:
    name = unique_name("cli-json")
    pem_names = [unique_name("cli-pem"), unique_name("www-cli-pem")]
    der_name = unique_name("cli-der")
    pem_key = ec.generate_private_key(ec.SECP256R1())
    der_key = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "pem.csr").write_bytes(csr_for(pem_names, pem_key).public_bytes(Encoding.PEM))
    (tmp_path / "der.csr").write_bytes(csr_for([der_name], der_key).public_bytes(Encoding.DER))

    done = run_all(
        stack,
        {
            "json": ["issue", name, "--json", "--key-out", "site.key"],
            "pem": ["issue", "--csr", "pem.csr", "--out", "pem-chain.pem"],
            "der": ["issue", "--csr", "der.csr", "--out", "der-chain.pem"],
        },
        tmp_path,
    )
    for result in done.values():
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr

    # --json: the record of what happened.
    record = json.loads(done["json"].stdout)
    assert set(record) == {
        "serial",
        "state",
        "not_before",
        "not_after",
        "scts",
        "timings_ms",
        "key",
        "chain_pem",
    }
    serial = int(record["serial"], 16)
    assert record["state"] == "issued"
    chain = x509.load_pem_x509_certificates(record["chain_pem"].encode())
    assert [c.subject for c in chain[1:]] == [stack.issuing_certificate.subject]
    cert = chain[0]
    assert cert.serial_number == serial
    assert cert.not_valid_before_utc.isoformat() == record["not_before"]
    assert cert.not_valid_after_utc.isoformat() == record["not_after"]
    stored = ledger.get(stack.issuer_id, serial)
    assert stored is not None
    assert stored.state is SerialState.ISSUED
    assert stored.cert_der == cert.public_bytes(Encoding.DER)
    log_list = stack.log_list()
    operators = {log.description: log.operator for log in log_list.logs}
    assert len(record["scts"]) >= 2
    assert len({sct["operator"] for sct in record["scts"]}) == len(record["scts"])
    embedded = cert.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps
    ).value
    assert sorted(s.timestamp for s in embedded) == sorted(
        datetime.fromtimestamp(sct["timestamp_ms"] / 1000, UTC).replace(tzinfo=None)
        for sct in record["scts"]
    )
    for sct in record["scts"]:
        assert operators[sct["log"]] == sct["operator"]
    timings = record["timings_ms"]
    assert list(timings) == ["reserve", "lint", "precertificate", "ct", "certificate"]
    assert list(timings.values()) == sorted(timings.values())
    assert record["key"] == "site.key"
    key_file = tmp_path / "site.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert key.public_key() == cert.public_key()

    # --csr: the CSR's key and names, PEM or DER alike.
    for label, key, names in (("pem", pem_key, pem_names), ("der", der_key, [der_name])):
        chain = x509.load_pem_x509_certificates((tmp_path / f"{label}-chain.pem").read_bytes())
        cert = chain[0]
        assert cert.public_key() == key.public_key()
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)
        assert f"issued serial {cert.serial_number:x} with SCTs from" in done[label].stdout
        stored = ledger.get(stack.issuer_id, cert.serial_number)
        assert stored is not None
        assert stored.state is SerialState.ISSUED


def test_refusals_are_one_clear_line(stack: Stack, ledger: Ledger, tmp_path: Path) -> None:
    good = csr_for([unique_name("cli-bad")], ec.generate_private_key(ec.SECP256R1()))
    der = bytearray(good.public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the ECDSA signature: still parses, no longer verifies
    (tmp_path / "garbage.csr").write_bytes(b"this is not a certificate signing request\n")
    (tmp_path / "badsig.csr").write_bytes(bytes(der))
    ed = csr_for([unique_name("cli-ed25519")], ed25519.Ed25519PrivateKey.generate())
    (tmp_path / "ed25519.csr").write_bytes(ed.public_bytes(Encoding.PEM))
    local = f"{unique_name('cli-local').split('.')[0]}.local"
    local_csr = csr_for([local], ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "local.csr").write_bytes(local_csr.public_bytes(Encoding.PEM))
    failing = unique_name("cli-quorum")
    # The Microsec case as the user sees it (bravo down, charlie hanging; alpha accepts).
    stack.set_faults("bravo", down="503")
    stack.set_faults("charlie", hang=True)

    done = run_all(
        stack,
        {
            "garbage": ["issue", "--csr", "garbage.csr"],
            "badsig": ["issue", "--csr", "badsig.csr"],
            "ed25519": ["issue", "--csr", "ed25519.csr"],
            "local": ["issue", "--csr", "local.csr"],
            "quorum": ["issue", failing, "--key-out", "failing.key"],
            "zero": ["issue", unique_name("cli-zero"), "--lifetime-days", "0"],
            "negative": ["issue", unique_name("cli-negative"), "--lifetime-days=-5"],
            "too-long": ["issue", unique_name("cli-long"), "--lifetime-days", "200"],
        },
        tmp_path,
    )
    stack.reset_faults()

    assert refused(done["garbage"])[0].startswith(
        "error: the CSR is not a valid certificate signing request: "
    )
    assert refused(done["badsig"]) == [
        "error: the CSR's signature does not verify with its own key: the CSR was altered or "
        "damaged after it was signed",
        "hint: create the CSR again with the private key it is for",
    ]
    assert refused(done["ed25519"]) == [
        "error: the CSR's key cannot be certified: Ed25519 keys are not allowed in the Web PKI",
        "hint: use ECDSA P-256/P-384 or RSA 2048/3072/4096",
    ]
    assert refused(done["local"]) == [
        "error: the certificate would break the Baseline Requirements: ERROR "
        "cabf.internal_domain_name at certificate.tbsCertificate.extensions.7.extnValue."
        f'subjectAltName.0.dNSName: Internal domain name: "{local}"',
        "hint: nothing was signed; change the request or the profile",
    ]
    # The lint refusal left a never_signed serial, and no log has anything for it.
    rows = [
        r
        for r in ledger.serials(issuer_id=stack.issuer_id, limit=100_000)
        if r.tbs_der is not None and local.encode() in r.tbs_der
    ]
    assert [r.state for r in rows] == [SerialState.NEVER_SIGNED]
    assert rows[0].serial not in stack.precerts_in_logs()

    # Lifetimes: checked before a serial is reserved (today's BR maximum is 200 days; we
    # issue at most 199, see ca/lifetime.py).
    assert refused(done["zero"]) == [
        "error: a lifetime of 0 days is not a validity period; give 1..199 days"
    ]
    assert refused(done["negative"]) == [
        "error: a lifetime of -5 days is not a validity period; give 1..199 days"
    ]
    too_long = refused(done["too-long"])
    assert re.fullmatch(
        r"error: a lifetime of 200 days is more than the 199 days ctstatus issues on "
        r"\d{4}-\d{2}-\d{2} \(BR §6\.3\.2 allows 200 days from 2026-03-15; we stay 1 day "
        r"under it\)",
        too_long[0],
    ), too_long
    assert too_long[1:] == [
        "hint: ask for at most 199 days, or leave the lifetime out to get the default"
    ]
    for name in ("cli-zero", "cli-negative", "cli-long"):
        assert not [
            r
            for r in ledger.serials(issuer_id=stack.issuer_id, limit=100_000)
            if r.tbs_der is not None and name.encode() in r.tbs_der
        ]
        assert not list(tmp_path.glob(f"{name}-*.key.pem"))

    [line] = refused(done["quorum"])
    serial_hex = line.split("The precertificate (serial ")[1].split(")")[0]
    serial = int(serial_hex, 16)
    assert timeouts_normalised(line) in [
        "error: " + abandoned_message(f"CT policy not met: 1 of 2 SCTs ({text})", serial)
        for text in reasons(("bravo", RETRIED_503), ("charlie", TIMED_OUT))
    ]
    assert journal(ledger, stack.issuer_id, serial) == ABANDONED_JOURNAL
    assert "alpha" in stack.precerts_in_logs()[serial]
    assert not (tmp_path / "failing.key").exists()  # no certificate, so no key to keep
