"""``ctstatus init``: create an instance (config, keys, CA hierarchy, ledger) atomically.

Everything is built in a hidden sibling directory and renamed into place only when every step
succeeded, so a failure at any point leaves nothing half-made behind: the temporary directory is
removed and keys generated in a PKCS#11 token are destroyed. The ledger is written last because
a PostgreSQL ledger is the one thing a rename cannot roll back (and ledger rows are never
deleted, by design).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ctstatus.ca import profiles
from ctstatus.ca.lint import Finding, lint_certificate
from ctstatus.clock import Clock, system_clock
from ctstatus.config import CONFIG_FILE, CaKeyConfig, Config, load_config, render_config
from ctstatus.errors import UserError
from ctstatus.instance import Instance, open_ledger_engine
from ctstatus.keys import Signer, is_pkcs11_uri, key_path
from ctstatus.keys.assemble import sign_certificate
from ctstatus.keys.files import generate_key_file, write_private_file
from ctstatus.ledger import CertificateKind, Ledger, migrate
from ctstatus.secrets import Secret

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Hierarchy:
    root: x509.Certificate
    issuing: x509.Certificate


def init_instance(
    directory: Path,
    config: Config,
    *,
    clock: Clock = system_clock,
    progress: Progress = lambda _step: None,
) -> Instance:
    """Create a new instance at ``directory`` from ``config``; all or nothing."""
    directory = directory.resolve()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UserError(
            f"{directory} already exists and is not empty",
            "choose a new directory; init never overwrites an instance",
        )
    staging = directory.parent / f".{directory.name}.init-{secrets.token_hex(4)}"
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir(mode=0o700)
    except OSError as exc:
        raise UserError(f"cannot create {directory}: {exc.strerror or exc}") from None
    rollbacks: list[Callable[[], object]] = []
    signers: dict[str, Signer] = {}
    try:
        _create_keys(staging, config, signers, rollbacks, progress)
        progress("signing the root and issuing CA certificates")
        hierarchy = _create_hierarchy(config, signers, clock)
        for signer in signers.values():
            signer.close()
        _check_lint(hierarchy)
        _write_certificates(staging, config, hierarchy)
        (staging / CONFIG_FILE).write_text(render_config(config), encoding="utf-8")
        if load_config(staging / CONFIG_FILE) != config:
            raise AssertionError("the rendered config does not load back to the same values")
        progress("creating the ledger")
        _create_ledger(staging, config, hierarchy, clock)
        if directory.exists():
            directory.rmdir()
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for signer in signers.values():
            signer.close()
        for rollback in reversed(rollbacks):
            rollback()
        raise
    return Instance.open(directory)


def _create_keys(
    staging: Path,
    config: Config,
    signers: dict[str, Signer],
    rollbacks: list[Callable[[], object]],
    progress: Progress,
) -> None:
    """Generate each CA's key into ``signers``; token keys register their own rollback."""
    passphrase = _passphrase(staging, config)
    for ca in (config.ca.root, config.ca.issuing):
        progress(f"generating the {ca.key_algorithm.value} key of {ca.name}")
        if is_pkcs11_uri(ca.key):
            signers[ca.name] = _generate_token_key(staging, config, ca, rollbacks)
        else:
            assert passphrase is not None
            path = key_path(ca.key, staging)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            signers[ca.name] = generate_key_file(path, ca.key_algorithm, passphrase)


def _passphrase(staging: Path, config: Config) -> Secret | None:
    """The key-file passphrase; a ``file`` source that does not exist yet is created here."""
    source = config.keys.passphrase
    if source is None:
        return None
    if source.file is not None:
        path = source.file if source.file.is_absolute() else staging / source.file
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private_file(path, (secrets.token_urlsafe(32) + "\n").encode())
    return source.resolve(staging, "key passphrase")


def _generate_token_key(
    staging: Path, config: Config, ca: CaKeyConfig, rollbacks: list[Callable[[], object]]
) -> Signer:
    from ctstatus.keys.pkcs11 import destroy_pkcs11_key, generate_pkcs11_key, parse_pkcs11_uri

    pkcs11 = config.keys.pkcs11
    assert pkcs11 is not None
    pin = pkcs11.pin.resolve(staging, "PKCS#11 PIN")
    ref = parse_pkcs11_uri(ca.key)
    if ref.label is None:
        raise UserError(f"{ca.key} names no object", "a key to generate needs object=LABEL")
    signer = generate_pkcs11_key(pkcs11.module, ref.token, ref.label, ca.key_algorithm, pin)
    rollbacks.append(lambda: destroy_pkcs11_key(pkcs11.module, signer.key_ref, pin))
    return signer


def _create_hierarchy(config: Config, signers: dict[str, Signer], clock: Clock) -> Hierarchy:
    now = clock()
    root_ca, issuing_ca = config.ca.root, config.ca.issuing
    root_signer, issuing_signer = signers[root_ca.name], signers[issuing_ca.name]
    root = sign_certificate(
        profiles.root_ca(
            profiles.ca_subject(config.ca.country, config.ca.organization, root_ca.common_name),
            root_signer.public_key(),
            profiles.new_serial(),
            now,
            root_ca.validity_days,
        ),
        root_signer,
    )
    issuing = sign_certificate(
        profiles.subordinate_ca(
            profiles.ca_subject(config.ca.country, config.ca.organization, issuing_ca.common_name),
            issuing_signer.public_key(),
            root,
            profiles.new_serial(),
            now,
            issuing_ca.validity_days,
            ca_issuers_url=config.urls.ca_issuers_url(root_ca.name),
            crl_url=config.urls.crl_url(root_ca.name, 0),
        ),
        root_signer,
    )
    return Hierarchy(root=root, issuing=issuing)


def _check_lint(hierarchy: Hierarchy) -> None:
    errors: list[Finding] = []
    for certificate in (hierarchy.root, hierarchy.issuing):
        _, findings = lint_certificate(certificate.public_bytes(Encoding.DER))
        errors += [finding for finding in findings if finding.is_error]
    if errors:
        raise UserError(
            "the CA certificates fail the CA/Browser Forum lints: "
            + "; ".join(str(finding) for finding in errors),
            "fix the [ca] and [urls] settings (URLs must name a public host, not an IP address "
            "or an internal name)",
        )


def _write_certificates(staging: Path, config: Config, hierarchy: Hierarchy) -> None:
    for ca, certificate in (
        (config.ca.root, hierarchy.root),
        (config.ca.issuing, hierarchy.issuing),
    ):
        path = ca.certificate if ca.certificate.is_absolute() else staging / ca.certificate
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(certificate.public_bytes(Encoding.PEM))


def _create_ledger(staging: Path, config: Config, hierarchy: Hierarchy, clock: Clock) -> None:
    engine = open_ledger_engine(config, staging)
    try:
        migrate(engine)
        ledger = Ledger(engine, clock)
        root = ledger.add_issuer(config.ca.root.name, hierarchy.root, actor="init")
        ledger.add_issuer(config.ca.issuing.name, hierarchy.issuing, actor="init")
        # The issuing CA's certificate is a serial of the root: the root's OCSP and CRL answer
        # for it, and `ctstatus revoke --issuer <root>` can revoke it.
        ledger.record_certificate(root.id, hierarchy.issuing, CertificateKind.CA, actor="init")
    finally:
        engine.dispose()
