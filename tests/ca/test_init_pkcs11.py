"""`init` with the CA keys in a PKCS#11 token (SoftHSM2), run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CTSTATUS = Path(sys.executable).parent / "ctstatus"
PIN = "4321"


@pytest.fixture
def token_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a process that sees one fresh SoftHSM token labelled `ca-token`."""
    util = shutil.which("softhsm2-util")
    if util is None:
        if os.environ.get("CTSTATUS_REQUIRE_SOFTHSM") == "1":
            pytest.fail("softhsm2-util is required (CTSTATUS_REQUIRE_SOFTHSM=1)")
        pytest.skip("softhsm2-util is not installed (Debian package softhsm2)")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "CTSTATUS_PKCS11_PIN": PIN}
    subprocess.run(
        [util, "--init-token", "--free", "--label", "ca-token", "--pin", PIN, "--so-pin", "0000"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def _ctstatus(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTSTATUS, *map(str, args)], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.softhsm
def test_token_held_keys_sign_a_chain_openssl_accepts(
    tmp_path: Path, token_env: dict[str, str]
) -> None:
    instance = tmp_path / "hsm-ca"
    created = _ctstatus(token_env, "init", instance, "--pkcs11-token", "ca-token")
    assert created.returncode == 0, created.stdout + created.stderr
    assert not (instance / "keys").exists()
    assert not (instance / "secrets").exists()
    shown = json.loads(_ctstatus(token_env, "-i", instance, "ca", "show", "--json").stdout)
    assert shown["cas"][1]["key"] == "pkcs11:token=ca-token;object=issuing-ca"
    checked = _ctstatus(token_env, "-i", instance, "check")
    assert checked.returncode == 0, checked.stdout
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            instance / "certs/root-ca.pem",
            instance / "certs/issuing-ca.pem",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    # A second instance cannot take the same labels: refused, and nothing is left behind.
    again = _ctstatus(token_env, "init", tmp_path / "second", "--pkcs11-token", "ca-token")
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    assert not (tmp_path / "second").exists()
    # The first instance's keys survived the failed second init.
    assert _ctstatus(token_env, "-i", instance, "check").returncode == 0


@pytest.mark.softhsm
def test_wrong_pin_and_absent_token(tmp_path: Path, token_env: dict[str, str]) -> None:
    instance = tmp_path / "hsm-ca"
    assert _ctstatus(token_env, "init", instance, "--pkcs11-token", "ca-token").returncode == 0
    wrong = _ctstatus({**token_env, "CTSTATUS_PKCS11_PIN": "9999"}, "-i", instance, "check")
    assert wrong.returncode == 1
    assert "PIN" in wrong.stdout
    assert "9999" not in wrong.stdout
    absent = _ctstatus(token_env, "init", tmp_path / "other", "--pkcs11-token", "no-such-token")
    assert absent.returncode == 1
    assert "no-such-token" in absent.stderr
    assert "Traceback" not in absent.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.softhsm
def test_failed_init_destroys_the_keys_it_generated(
    tmp_path: Path, token_env: dict[str, str]
) -> None:
    """Lint fails after both keys exist in the token: init must remove them again."""
    failed = _ctstatus(
        token_env,
        "init",
        tmp_path / "bad",
        "--pkcs11-token",
        "ca-token",
        "--base-url",
        "http://localhost",
    )
    assert failed.returncode == 1
    assert "internal_domain_name" in failed.stderr
    listed = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            "/usr/lib/softhsm/libsofthsm2.so",
            "--token-label",
            "ca-token",
            "--login",
            "--pin",
            PIN,
            "--list-objects",
        ],
        env=token_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "root-ca" not in listed.stdout
    assert "issuing-ca" not in listed.stdout
    # And the labels are free again: the same init with a good URL works.
    assert (
        _ctstatus(token_env, "init", tmp_path / "good", "--pkcs11-token", "ca-token").returncode
        == 0
    )
