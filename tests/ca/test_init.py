"""`init`: a working instance, or nothing at all."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509

from ctstatus.ca import bootstrap
from ctstatus.ca.check import run_checks
from ctstatus.clock import FrozenClock
from ctstatus.config import new_instance_config
from ctstatus.errors import ConfigError, UserError
from ctstatus.instance import Instance

PKILINT = Path(sys.executable).parent / "lint_cabf_serverauth_cert"


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_init_makes_an_instance_that_peers_accept(tmp_path: Path, clock: FrozenClock) -> None:
    instance = bootstrap.init_instance(tmp_path / "ca", new_instance_config(), clock=clock)
    directory = instance.directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for private in ("keys/root-ca.key.pem", "keys/issuing-ca.key.pem", "secrets/key-passphrase"):
        assert stat.S_IMODE((directory / private).stat().st_mode) == 0o600
    root, issuing = directory / "certs/root-ca.pem", directory / "certs/issuing-ca.pem"
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", root, issuing], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.strip() == f"{issuing}: OK"
    for certificate in (root, issuing):
        lint = subprocess.run(
            [PKILINT, "lint", "-d", "-s", "NOTICE", certificate],
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout
    issued = x509.load_pem_x509_certificate(issuing.read_bytes())
    assert issued.not_valid_before_utc == clock()
    assert all(result.ok for result in run_checks(instance)), run_checks(instance)
    ledger = instance.open_ledger()
    try:
        assert [issuer.name for issuer in ledger.issuers()] == ["root-ca", "issuing-ca"]
    finally:
        ledger.close()
    assert _leftovers(tmp_path) == ["ca"]


def test_init_with_a_postgresql_ledger(tmp_path: Path, fresh_postgres_url: str) -> None:
    config = new_instance_config(ledger_url=fresh_postgres_url, passphrase_env="CTSTATUS_TEST_PASS")
    os.environ["CTSTATUS_TEST_PASS"] = "a passphrase held by the operator"
    try:
        instance = bootstrap.init_instance(tmp_path / "ca", config)
        assert not (instance.directory / "secrets").exists()
        assert all(result.ok for result in run_checks(instance))
    finally:
        del os.environ["CTSTATUS_TEST_PASS"]


@pytest.mark.parametrize("algorithm", ["ecdsa-p384", "rsa-2048"])
def test_init_with_other_key_algorithms(tmp_path: Path, algorithm: str) -> None:
    from ctstatus.keys import KeyAlgorithm

    config = new_instance_config(key_algorithm=KeyAlgorithm(algorithm))
    instance = bootstrap.init_instance(tmp_path / "ca", config)
    assert all(result.ok for result in run_checks(instance))


def test_init_never_touches_a_non_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "ca"
    target.mkdir()
    (target / "precious").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        bootstrap.init_instance(target, new_instance_config())
    assert _leftovers(target) == ["precious"]
    assert _leftovers(tmp_path) == ["ca"]


def test_init_fills_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    bootstrap.init_instance(tmp_path / "ca", new_instance_config())
    assert (tmp_path / "ca" / "ctstatus.toml").is_file()


FAILURE_POINTS = [
    "ctstatus.ca.bootstrap.generate_key_file",
    "ctstatus.ca.bootstrap.sign_certificate",
    "ctstatus.ca.bootstrap._check_lint",
    "ctstatus.ca.bootstrap._write_certificates",
    "ctstatus.ca.bootstrap.render_config",
    "ctstatus.ca.bootstrap.Ledger.add_issuer",
    "ctstatus.ca.bootstrap.migrate",
    "ctstatus.ca.bootstrap.os.rename",
]


@pytest.mark.parametrize("target", FAILURE_POINTS)
def test_a_failure_at_any_step_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(target, fail)
    with pytest.raises(OSError, match="No space left"):
        bootstrap.init_instance(tmp_path / "ca", new_instance_config())
    assert _leftovers(tmp_path) == []


def test_lint_errors_stop_init(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"cabf\.internal_domain_name") as error:
        bootstrap.init_instance(tmp_path / "ca", new_instance_config(base_url="http://localhost"))
    assert "public host" in str(error.value.hint)
    assert _leftovers(tmp_path) == []


def test_missing_passphrase_variable_stops_init(tmp_path: Path) -> None:
    config = new_instance_config(passphrase_env="CTSTATUS_TEST_UNSET")
    with pytest.raises(ConfigError, match="CTSTATUS_TEST_UNSET, which is not set"):
        bootstrap.init_instance(tmp_path / "ca", config)
    assert _leftovers(tmp_path) == []


def test_kill_9_during_init_leaves_no_instance(tmp_path: Path) -> None:
    """A crash (SIGKILL just before the ledger is written) leaves no half-made instance."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from ctstatus.ca import bootstrap
        from ctstatus.config import new_instance_config

        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        bootstrap._create_ledger = die
        bootstrap.init_instance(Path({str(tmp_path / "ca")!r}), new_instance_config())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert result.returncode == -9, result.stderr
    assert not (tmp_path / "ca").exists()
    staging = [name for name in _leftovers(tmp_path) if name.startswith(".ca.init-")]
    assert len(staging) == 1  # hidden, never mistaken for an instance
    instance = bootstrap.init_instance(tmp_path / "ca", new_instance_config())
    assert all(result.ok for result in run_checks(instance))


def test_open_instance_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ctstatus instance"):
        Instance.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config file"):
        Instance.open(tmp_path / "empty")
