"""Turn an instance's configuration into a running status service (keys, targets, settings).

Keys are opened lazily and once: the issuing CA's key when it signs OCSP responses or CRLs, the
root's only to publish the root CRL (``[crl] include_root``) -- a root key that cannot be opened
just means no root CRL from this process, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine

from ctstatus.clock import Clock, system_clock
from ctstatus.config import CaKeyConfig, Config
from ctstatus.errors import UserError
from ctstatus.instance import Instance
from ctstatus.keys import Signer, is_pkcs11_uri
from ctstatus.ledger import Issuer, ensure_current
from ctstatus.status.app import AppSettings, StatusApp
from ctstatus.status.crl_publisher import CrlPublisher, CrlSettings, CrlTarget
from ctstatus.status.db import load_issuers, shards_in_use
from ctstatus.status.delegated import DelegatedIdentities, ResponderKeys
from ctstatus.status.identities import CaIdentities, IdentitySource
from ctstatus.status.responder import ResponderSettings
from ctstatus.status.service import ServiceSettings, StatusService

log = logging.getLogger(__name__)

RESPONDERS_DIR = "ocsp-responders"


@dataclass
class KeyRing:
    """The instance's CA signers, opened on first use and kept open."""

    instance: Instance
    _open: dict[str, Signer] = field(default_factory=dict)

    def ca(self, name: str) -> CaKeyConfig | None:
        for ca in self.instance.cas:
            if ca.name == name:
                return ca
        return None

    def signer(self, name: str) -> Signer:
        signer = self._open.get(name)
        if signer is None:
            ca = self.ca(name)
            if ca is None:
                raise UserError(f"issuer {name!r} is not a CA of this instance's config")
            signer = self.instance.signer(ca)
            self._open[name] = signer
        return signer

    def optional(self, name: str) -> Signer | None:
        """The signer, or None (with a warning) if it cannot be opened here."""
        try:
            return self.signer(name)
        except UserError as exc:
            log.warning("no key for %s in this process: %s", name, exc)
            return None

    def close(self) -> None:
        for signer in self._open.values():
            signer.close()
        self._open.clear()


def service_settings(config: Config) -> ServiceSettings:
    ocsp = config.ocsp
    return ServiceSettings(
        validity=timedelta(hours=ocsp.validity_hours),
        hash_names=tuple(ocsp.presign_hashes),
        refresher=ocsp.refresher,
        poll_interval=ocsp.poll_ms / 1000,
        responder=ResponderSettings(
            http_max_age=ocsp.http_max_age, live_signing_limit=ocsp.live_signing_limit
        ),
    )


def crl_settings(config: Config) -> CrlSettings:
    crl = config.crl
    return CrlSettings(
        validity=timedelta(days=crl.validity_days),
        republish=timedelta(hours=crl.republish_hours),
        revocation_delay=timedelta(seconds=crl.revocation_delay_seconds),
    )


def _path(url: str) -> bytes:
    return (urlsplit(url).path.rstrip("/") or "").encode()


def app_settings(instance: Instance) -> AppSettings:
    config = instance.config
    names = [ca.name for ca in instance.cas]
    prefixes = {_path(config.urls.ocsp_url(name)) for name in names} - {b""}
    certs = {
        _path(config.urls.ca_issuers_url(ca.name)): instance.certificate(ca).public_bytes(
            Encoding.DER
        )
        for ca in instance.cas
    }
    return AppSettings(
        ocsp_prefixes=tuple(prefixes),
        max_request_bytes=config.ocsp.max_request_bytes,
        crl_max_age=min(config.crl.revocation_delay_seconds, 3600),
        ca_certificates=certs,
    )


def crl_targets(config: Config, engine: Engine, issuers: Sequence[Issuer]) -> list[CrlTarget]:
    """Every CRL the configured CAs publish: the issuing CA's shards, and the root's CRL."""
    counts = {config.ca.issuing.name: config.profiles.tls_server.crl_shards}
    if config.crl.include_root:
        counts[config.ca.root.name] = 1
    targets = []
    for issuer in issuers:
        if issuer.name not in counts:
            continue
        shards = sorted(set(range(counts[issuer.name])) | set(shards_in_use(engine, issuer.id)))
        for shard in shards:
            url = config.urls.crl_url(issuer.name, shard)
            targets.append(CrlTarget(issuer, shard, url, partitioned=len(shards) > 1))
    return targets


def responder_keys(instance: Instance) -> ResponderKeys:
    """Encrypted files with the instance passphrase, else the issuing CA's token."""
    from ctstatus.status.responder_keys import FileResponderKeys, Pkcs11ResponderKeys

    config = instance.config
    if config.keys.passphrase is not None:
        return FileResponderKeys(
            config.keys.passphrase.resolve(instance.directory, "key passphrase")
        )
    pkcs11 = config.keys.pkcs11
    assert pkcs11 is not None
    assert is_pkcs11_uri(config.ca.issuing.key)
    from ctstatus.keys.pkcs11 import parse_pkcs11_uri

    token = parse_pkcs11_uri(config.ca.issuing.key).token
    return Pkcs11ResponderKeys(
        pkcs11.module, token, pkcs11.pin.resolve(instance.directory, "PKCS#11 PIN")
    )


def responders_directory(instance: Instance, issuer_name: str) -> Path:
    return instance.directory / RESPONDERS_DIR / issuer_name


def identities(instance: Instance, keys: KeyRing) -> IdentitySource:
    config = instance.config
    issuing = config.ca.issuing.name
    if config.ocsp.signer == "ca":
        return CaIdentities({issuing: keys.signer(issuing)})
    auto = config.ocsp.responder_auto_issue
    return DelegatedIdentities(
        lambda issuer: responders_directory(instance, issuer.name),
        responder_keys(instance),
        validity=timedelta(hours=config.ocsp.validity_hours),
        lifetime=timedelta(days=config.ocsp.responder_lifetime_days),
        ca_signer_for=(
            (lambda issuer: keys.optional(issuer.name) if issuer.name == issuing else None)
            if auto
            else None
        ),
    )


@dataclass
class Wired:
    """A service built from an instance, and what must be closed with it."""

    app: StatusApp
    service: StatusService
    engine: Engine
    keys: KeyRing

    def close(self) -> None:
        self.keys.close()
        self.engine.dispose()


def build(instance: Instance, clock: Clock = system_clock, *, publish: bool | None = None) -> Wired:
    """The status app of ``instance``; ``publish`` overrides ``[crl] publish``."""
    config = instance.config
    engine = instance.ledger_engine()
    keys = KeyRing(instance)
    try:
        ensure_current(engine)
        publisher = None
        if config.crl.publish if publish is None else publish:
            publisher = CrlPublisher(
                engine,
                lambda: crl_targets(config, engine, load_issuers(engine)),
                lambda issuer: keys.optional(issuer.name),
                crl_settings(config),
            )
        service = StatusService(
            engine,
            clock,
            identities(instance, keys),
            service_settings(config),
            publisher=publisher,
        )
        app = StatusApp(service, app_settings(instance))
    except BaseException:
        keys.close()
        engine.dispose()
        raise
    return Wired(app, service, engine, keys)
