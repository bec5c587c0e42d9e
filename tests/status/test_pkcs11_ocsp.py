"""OCSP responses signed by a key in a real PKCS#11 token (SoftHSM2), verified by openssl.

Run in a process of its own: SoftHSM reads its configuration once per process, and the keys
tests own this process's PKCS#11 state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ca import profiles
from ctstatus.keys import KeyAlgorithm
from ctstatus.keys.assemble import sign_certificate
from ctstatus.keys.pkcs11 import generate_pkcs11_key
from ctstatus.ledger import RevocationReason
from ctstatus.ledger.hashes import IssuerHashes
from ctstatus.status.answer import GOOD, Answer, Verdict
from ctstatus.status.ocsp_response import CertId, ResponderIdentity, sign_response, validity_window

out = Path(sys.argv[1])
now = datetime.now(UTC).replace(microsecond=0)
for algorithm in (KeyAlgorithm.ECDSA_P256, KeyAlgorithm.RSA_2048):
    label = f"ca-{algorithm.value}"
    signer = generate_pkcs11_key(sys.argv[2], "status-token", label, algorithm, "4321")
    assert signer.private_key() is None  # the key never leaves the token
    ca = sign_certificate(
        profiles.root_ca(profiles.ca_subject("DE", "ctstatus Test", f"Token CA {algorithm.value}"),
                         signer.public_key(), profiles.new_serial(), now - timedelta(days=1), 3000),
        signer,
    )
    (out / f"{algorithm.value}.pem").write_bytes(ca.public_bytes(Encoding.PEM))
    hashes = IssuerHashes.from_certificate(ca)
    identity = ResponderIdentity(signer, ca, delegated=False)
    this_update, next_update = validity_window(now, timedelta(hours=96), identity)
    revoked = Answer(Verdict.REVOKED, now - timedelta(hours=1), RevocationReason.KEY_COMPROMISE)
    for serial, answer in ((4242, GOOD), (4343, revoked)):
        cert_id = CertId("sha256", hashes.name_hash_sha256, hashes.key_hash_sha256, serial)
        der = sign_response(cert_id, answer, identity, this_update=this_update,
                            next_update=next_update)
        (out / f"{algorithm.value}-{serial}.der").write_bytes(der)
    signer.close()
"""


@pytest.mark.softhsm
def test_token_signed_responses_verify_with_openssl(tmp_path: Path) -> None:
    util = shutil.which("softhsm2-util")
    if util is None:
        if os.environ.get("CTSTATUS_REQUIRE_SOFTHSM") == "1":
            pytest.fail("softhsm2-util is required (CTSTATUS_REQUIRE_SOFTHSM=1)")
        pytest.skip("softhsm2-util is not installed (Debian package softhsm2)")
    from ctstatus.keys.pkcs11 import SOFTHSM_MODULE

    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        [util, "--init-token", "--free", "--label", "status-token", "--pin", "4321",
         "--so-pin", "0000"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    made = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), SOFTHSM_MODULE],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    for algorithm in ("ecdsa-p256", "rsa-2048"):
        ca = tmp_path / f"{algorithm}.pem"
        for serial, expected in ((4242, "good"), (4343, "revoked")):
            result = subprocess.run(
                ["openssl", "ocsp", "-respin", tmp_path / f"{algorithm}-{serial}.der",
                 "-issuer", ca, "-sha256", "-serial", str(serial), "-CAfile", ca],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert "Response verify OK" in result.stdout + result.stderr, result.stderr
            assert f"{serial}: {expected}" in result.stdout
