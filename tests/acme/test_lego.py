"""Debian's lego (Go ACME client) against our ACME server: http-01 and tls-alpn-01.

lego trusts our HTTPS root through LEGO_CA_CERTIFICATES; its chain must pass ``openssl
verify`` against the instance root, and ``lego revoke`` ends revoked in OCSP.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.acme import acmestack
from tests.acme.acmestack import AcmeStack, need, unique_domain

acme_stack = acmestack.acme_stack  # the module's stack (a fixture)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def lego(stack: AcmeStack, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        need("lego"),
        "--server",
        stack.directory,
        "--email",
        "ops@example.com",
        "--accept-tos",
        "--path",
        str(home),
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=stack.client_env()
    )


@pytest.mark.parametrize("challenge", ["http", "tls"])
def test_lego_issues_and_revokes(acme_stack: AcmeStack, tmp_path: Path, challenge: str) -> None:
    domain = unique_domain(f"lego-{challenge}")
    port = acme_stack.http_port if challenge == "http" else acme_stack.alpn_port
    home = tmp_path / "lego"
    issued = lego(
        acme_stack,
        home,
        "-d",
        domain,
        f"--{challenge}",
        f"--{challenge}.port",
        f"127.0.0.1:{port}",
        "run",
    )
    assert issued.returncode == 0, issued.stdout + issued.stderr
    chain = home / "certificates" / f"{domain}.crt"
    verified = acme_stack.verify_chain(chain)
    assert verified.returncode == 0, verified
    assert ": good" in acme_stack.ocsp_status(chain)
    revoked = lego(acme_stack, home, "-d", domain, "revoke", "--keep")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert ": revoked" in acme_stack.ocsp_status(chain)
