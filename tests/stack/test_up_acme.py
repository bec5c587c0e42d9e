"""``ctstatus up`` runs the ACME server: the README's certbot one-liner works against it."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
from tests.stack.conftest import Up


def test_up_prints_acme_and_certbot_gets_a_certificate(demo_stack: Up, tmp_path: Path) -> None:
    urls = demo_stack.urls
    assert urls["acme"].startswith("https://127.0.0.1:")
    assert f"ACME        {urls['acme']}" in demo_stack.log()
    context = ssl.create_default_context(cafile=urls["acme_tls_root"])
    directory = httpx.get(urls["acme"], verify=context, timeout=10).json()
    assert "tlsserver" in directory["meta"]["profiles"]
    home = tmp_path / "certbot"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "certbot"),
            "certonly",
            "--standalone",
            "--http-01-port",
            str(urls["acme_http_01_port"]),
            "--server",
            urls["acme"],
            "-d",
            "www.example.com",
            "--agree-tos",
            "-m",
            "you@example.com",
            "-n",
            "--config-dir",
            str(home),
            "--work-dir",
            str(home),
            "--logs-dir",
            str(home),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=os.environ | {"REQUESTS_CA_BUNDLE": urls["acme_tls_root"]},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    root = demo_stack.state / "ca" / "certs" / "root-ca.pem"
    live = home / "live" / "www.example.com"
    verified = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(root),
            "-untrusted",
            str(live / "chain.pem"),
            str(live / "cert.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert verified.returncode == 0, verified
