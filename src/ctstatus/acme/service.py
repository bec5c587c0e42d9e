"""Wire the ACME server to an instance: its config, ledger, issuing CA and validation."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ctstatus.acme.server import AcmeServer, AcmeSettings, Issue
from ctstatus.acme.store import AcmeStore
from ctstatus.acme.tlscert import TlsFiles, ensure_tls
from ctstatus.acme.validation import ValidationSettings, Validator
from ctstatus.clock import Clock, system_clock
from ctstatus.errors import ConfigError
from ctstatus.instance import Instance
from ctstatus.ledger import Ledger


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    tls: TlsFiles


def base_url(instance: Instance, port: int) -> str:
    config = instance.config.acme
    if config.base_url:
        return config.base_url.rstrip("/")
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"https://{host}:{port}"


def tls_files(instance: Instance) -> TlsFiles:
    """The configured certificate and key, or the instance's generated ones (acme/ dir)."""
    config = instance.config.acme
    if config.tls_certificate is not None and config.tls_key is not None:
        certificate = instance.path(config.tls_certificate)
        return TlsFiles(certificate, certificate, instance.path(config.tls_key))
    return ensure_tls(instance.directory / "acme", config.host)


def eab_keys(instance: Instance) -> Mapping[str, bytes]:
    keys: dict[str, bytes] = {}
    for kid, source in instance.config.acme.eab_keys.items():
        value = source.resolve(instance.directory, f"EAB key {kid}").reveal().strip()
        try:
            keys[kid] = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise ConfigError(f"acme.eab_keys.{kid} is not base64url") from None
    return keys


def validation_settings(instance: Instance) -> ValidationSettings:
    acme = instance.config.acme
    validation = acme.validation
    return ValidationSettings(
        dns_servers=validation.dns_servers,
        resolve=dict(validation.resolve),
        http_port=validation.http_port,
        tls_alpn_port=validation.tls_alpn_port,
        loopback_only=validation.loopback_only,
        timeout_seconds=validation.timeout_seconds,
        caa_identities=acme.caa_identities,
    )


def build_server(
    instance: Instance,
    ledger: Ledger,
    issue: Issue,
    *,
    port: int,
    clock: Clock = system_clock,
    validation: ValidationSettings | None = None,
) -> AcmeServer:
    """The ACME server for ``instance`` whose URLs name ``port``."""
    config = instance.config.acme
    issuing = instance.config.ca.issuing
    issuer = ledger.issuer_by_name(issuing.name)
    if issuer is None:
        raise ConfigError(f"the issuing CA {issuing.name!r} is not in the ledger")
    settings = AcmeSettings(
        base_url=base_url(instance, port),
        default_profile=config.default_profile,
        order_lifetime=timedelta(hours=config.order_lifetime_hours),
        authz_lifetime=timedelta(hours=config.authz_lifetime_hours),
        eab_required=config.eab_required,
        eab_keys=eab_keys(instance),
        orders_per_account=config.orders_per_account,
        orders_window=timedelta(seconds=config.orders_window_seconds),
        failed_validations_per_hour=config.failed_validations_per_hour,
        terms_of_service=config.terms_of_service,
        caa_identities=config.caa_identities,
    )
    return AcmeServer(
        settings,
        AcmeStore(ledger.engine, clock),
        ledger,
        issuer.id,
        instance.certificate(issuing),
        issue,
        Validator(validation or validation_settings(instance), clock=clock),
    )


def uvicorn_tls(files: TlsFiles) -> dict[str, str]:
    return {"ssl_certfile": str(files.certificate), "ssl_keyfile": str(files.key)}


__all__ = ["Listen", "Path", "base_url", "build_server", "tls_files", "uvicorn_tls"]
