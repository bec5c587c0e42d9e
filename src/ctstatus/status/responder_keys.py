"""Where delegated responder keys live: encrypted PEM files, or the CA's PKCS#11 token.

The same choice the instance made for its CA keys: with ``[keys] passphrase`` the key is a file
``<stem>.key.pem`` encrypted with that passphrase; otherwise it is generated in the issuing CA's
token and ``<stem>.key.uri`` records its RFC 7512 URI.
"""

from __future__ import annotations

from pathlib import Path

from ctstatus.keys.files import generate_key_file, load_key_file
from ctstatus.keys.signer import KeyAlgorithm, Signer
from ctstatus.secrets import Secret


class FileResponderKeys:
    """Responder keys in encrypted key files next to their certificates."""

    def __init__(self, passphrase: Secret) -> None:
        self._passphrase = passphrase

    def generate(self, stem: Path, algorithm: KeyAlgorithm) -> Signer:
        return generate_key_file(_key_file(stem), algorithm, self._passphrase)

    def open(self, stem: Path) -> Signer:
        return load_key_file(_key_file(stem), self._passphrase)


def _key_file(stem: Path) -> Path:
    return stem.with_name(stem.name + ".key.pem")


class Pkcs11ResponderKeys:
    """Responder keys generated in a PKCS#11 token (labelled ``ocsp-<stem name>``)."""

    def __init__(self, module: Path, token: str, pin: Secret) -> None:
        self._module = module
        self._token = token
        self._pin = pin

    def generate(self, stem: Path, algorithm: KeyAlgorithm) -> Signer:
        from ctstatus.keys.pkcs11 import generate_pkcs11_key

        signer = generate_pkcs11_key(
            self._module, self._token, f"ocsp-{stem.name}"[:64], algorithm, self._pin
        )
        stem.with_name(stem.name + ".key.uri").write_text(signer.key_ref.uri + "\n")
        return signer

    def open(self, stem: Path) -> Signer:
        from ctstatus.keys.pkcs11 import Pkcs11Signer

        uri = stem.with_name(stem.name + ".key.uri").read_text().strip()
        return Pkcs11Signer(self._module, uri, self._pin)
