"""certbot (the EFF's client, from PyPI) against our ACME server: http-01, dns-01, revoke.

Each run is a real ``certbot`` process with its own config/work/logs directories, trusting our
ACME server's HTTPS root through REQUESTS_CA_BUNDLE. The chain it saves must pass
``openssl verify`` against the instance root; ``certbot revoke`` must end as revoked in
``openssl ocsp`` against our responder and in the published CRL.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from tests.acme import acmestack
from tests.acme.acmestack import AcmeStack, need, unique_domain

from ctstatus.ledger import SerialState

acme_stack = acmestack.acme_stack  # the module's stack (a fixture)


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"


def certbot(stack: AcmeStack, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        _certbot(),
        *args,
        "--server",
        stack.directory,
        "--config-dir",
        str(home / "config"),
        "--work-dir",
        str(home / "work"),
        "--logs-dir",
        str(home / "logs"),
        "--non-interactive",
        "--agree-tos",
        "--register-unsafely-without-email",
        "--no-random-sleep-on-renew",
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=stack.client_env()
    )


def _certbot() -> str:
    path = Path(sys.executable).parent / "certbot"
    if not path.exists():
        return need("certbot")
    return str(path)


def _live(home: Path, domain: str) -> Path:
    return home / "config" / "live" / domain


def test_certbot_http01_issue_verify_and_revoke(acme_stack: AcmeStack, tmp_path: Path) -> None:
    domain = unique_domain("certbot")
    home = tmp_path / "certbot"
    issued = certbot(
        acme_stack,
        home,
        "certonly",
        "--standalone",
        "-d",
        domain,
        "--http-01-port",
        str(acme_stack.http_port),
        "--http-01-address",
        "127.0.0.1",
    )
    assert issued.returncode == 0, issued.stdout + issued.stderr
    chain = _live(home, domain) / "fullchain.pem"
    verified = acme_stack.verify_chain(chain)
    assert verified.returncode == 0, verified
    assert verified.stdout.strip().endswith("OK"), verified
    certificate = x509.load_pem_x509_certificate(chain.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [domain]
    with acme_stack.stack.open_ledger() as ledger:
        record = ledger.get(acme_stack.stack.issuer_id, certificate.serial_number)
        assert record is not None
        assert record.state is SerialState.ISSUED
        assert str(record.request_id).startswith("acme-order:")
    assert "good" in acme_stack.ocsp_status(chain).split(": ", 1)[1]

    revoked = certbot(
        acme_stack,
        home,
        "revoke",
        "--cert-path",
        str(_live(home, domain) / "cert.pem"),
        "--reason",
        "keycompromise",
        "--no-delete-after-revoke",
    )
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    answer = acme_stack.ocsp_status(chain)
    assert ": revoked" in answer, answer
    assert "Reason: keyCompromise" in answer, answer
    with acme_stack.stack.open_ledger() as ledger:
        record = ledger.get(acme_stack.stack.issuer_id, certificate.serial_number)
        assert record is not None
        assert record.state is SerialState.REVOKED
    shard = record.crl_shard
    crl = acme_stack.crl_lists(shard, certificate.serial_number)
    digits = f"{certificate.serial_number:X}"
    digits = digits.zfill(len(digits) + len(digits) % 2)  # openssl prints whole bytes: 022D…
    assert f"Serial Number: {digits}" in crl, crl


def test_certbot_manual_dns01_wildcard(acme_stack: AcmeStack, tmp_path: Path) -> None:
    """``--manual`` with auth hooks writing TXT records to the loopback DNS server."""
    domain = unique_domain("dns")
    control = acme_stack.dns.control_url
    tool = f"{sys.executable} -m ctstatus.acme.validation.testdns"
    auth = tmp_path / "auth-hook.sh"
    auth.write_text(
        "#!/bin/sh\nset -e\n"
        f'{tool} add --control {control} TXT "_acme-challenge.$CERTBOT_DOMAIN" '
        '"$CERTBOT_VALIDATION"\n'
    )
    cleanup = tmp_path / "cleanup-hook.sh"
    cleanup.write_text(
        "#!/bin/sh\nset -e\n"
        f'{tool} remove --control {control} TXT "_acme-challenge.$CERTBOT_DOMAIN" '
        '"$CERTBOT_VALIDATION"\n'
    )
    auth.chmod(0o755)
    cleanup.chmod(0o755)
    home = tmp_path / "certbot"
    issued = certbot(
        acme_stack,
        home,
        "certonly",
        "--manual",
        "--preferred-challenges",
        "dns",
        "--manual-auth-hook",
        str(auth),
        "--manual-cleanup-hook",
        str(cleanup),
        "-d",
        domain,
        "-d",
        f"*.{domain}",
        "--cert-name",
        domain,
    )
    assert issued.returncode == 0, issued.stdout + issued.stderr
    chain = _live(home, domain) / "fullchain.pem"
    verified = acme_stack.verify_chain(chain)
    assert verified.returncode == 0, verified
    certificate = x509.load_pem_x509_certificate(chain.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted([domain, f"*.{domain}"])
    assert not [r for r in acme_stack.dns.zone.records() if r.rtype == "TXT"], "hooks cleaned up"
