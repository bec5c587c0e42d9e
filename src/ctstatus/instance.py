"""An instance: a directory holding ``ctstatus.toml``, and everything that config points at.

This is the one place that turns configuration into live objects (signers, certificates, the
ledger), so every command opens keys and databases the same way and fails the same clear way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from sqlalchemy.engine import Engine

from ctstatus.clock import Clock, system_clock
from ctstatus.config import CONFIG_FILE, CaKeyConfig, Config, load_config
from ctstatus.errors import ConfigError
from ctstatus.keys import Signer, is_pkcs11_uri, key_path
from ctstatus.keys.files import load_key_file
from ctstatus.ledger import Ledger, create_ledger_engine


@dataclass(frozen=True)
class Instance:
    directory: Path
    config: Config

    @classmethod
    def open(cls, directory: Path) -> Instance:
        directory = directory.resolve()
        if not directory.is_dir():
            raise ConfigError(
                f"no ctstatus instance at {directory}",
                "create one with `ctstatus init DIR`, or pass --instance DIR",
            )
        return cls(directory, load_config(directory / CONFIG_FILE))

    def path(self, path: Path) -> Path:
        return path if path.is_absolute() else self.directory / path

    @property
    def cas(self) -> tuple[CaKeyConfig, CaKeyConfig]:
        """The hierarchy, root first."""
        return (self.config.ca.root, self.config.ca.issuing)

    def ledger_url(self) -> str:
        return resolve_ledger_url(self.config.ledger.url, self.directory)

    def ledger_engine(self) -> Engine:
        """A connection pool to the ledger; connecting fails here, clearly, if it cannot."""
        return open_ledger_engine(self.config, self.directory)

    def open_ledger(self, clock: Clock = system_clock) -> Ledger:
        """Connect to the ledger and check its schema is the one this code expects."""
        return Ledger(self.ledger_engine(), clock)

    def signer(self, ca: CaKeyConfig) -> Signer:
        """Open the signing key of ``ca`` (decrypt the file, or log in to the token)."""
        if is_pkcs11_uri(ca.key):
            from ctstatus.keys.pkcs11 import Pkcs11Signer

            pkcs11 = self.config.keys.pkcs11
            assert pkcs11 is not None  # the config validator guarantees it
            pin = pkcs11.pin.resolve(self.directory, "PKCS#11 PIN")
            return Pkcs11Signer(pkcs11.module, ca.key, pin)
        passphrase = self.config.keys.passphrase
        assert passphrase is not None  # the config validator guarantees it
        return load_key_file(
            key_path(ca.key, self.directory), passphrase.resolve(self.directory, "key passphrase")
        )

    def certificate(self, ca: CaKeyConfig) -> x509.Certificate:
        return read_certificate(self.path(ca.certificate))


def open_ledger_engine(config: Config, base_dir: Path) -> Engine:
    """The ledger engine of ``config``, SQLite paths and secrets resolved from ``base_dir``."""
    password = config.ledger.password
    return create_ledger_engine(
        resolve_ledger_url(config.ledger.url, base_dir),
        None if password is None else password.resolve(base_dir, "ledger password").reveal(),
    )


def resolve_ledger_url(url: str, base_dir: Path) -> str:
    """SQLite paths in the config are relative to the instance directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str((base_dir / url[len(prefix) :]).resolve())
    return url


def read_certificate(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc.strerror or exc}") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate: {exc}") from None
