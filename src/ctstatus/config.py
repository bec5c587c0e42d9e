"""The instance configuration: one TOML file, validated into frozen pydantic models.

Every option and its default is documented in ``docs/configuration.md``; ``ctstatus init`` writes
a commented file (:func:`render_config`). An unknown key or a bad value is a :class:`ConfigError`
naming the file and the dotted key. Secrets never live here: options such as
``keys.passphrase`` name an environment variable or a file (:mod:`ctstatus.secrets`).
"""

from __future__ import annotations

import re
import string
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ctstatus.errors import ConfigError
from ctstatus.keys.signer import KeyAlgorithm
from ctstatus.secrets import SecretSource

CONFIG_FILE = "ctstatus.toml"

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LedgerConfig(_Section):
    """Where the status ledger lives."""

    url: str = "sqlite:///ledger.sqlite3"
    password: SecretSource | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        scheme = url.split(":", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgresql+psycopg"):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        if scheme.startswith("postgresql"):
            if urlsplit(url).password is not None:
                raise ValueError(
                    "must not contain a password; set [ledger] password = { env = … } instead"
                )
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        elif not url.startswith("sqlite:///"):
            raise ValueError("a SQLite URL is sqlite:///RELATIVE/PATH or sqlite:////ABSOLUTE/PATH")
        return url


class Pkcs11Config(_Section):
    """The PKCS#11 module and token that hold keys named by ``pkcs11:`` URIs."""

    module: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    pin: SecretSource = SecretSource(env="CTSTATUS_PKCS11_PIN")


class KeysConfig(_Section):
    """How private keys are unlocked."""

    passphrase: SecretSource | None = None
    pkcs11: Pkcs11Config | None = None


class CaKeyConfig(_Section):
    """One CA certificate of the hierarchy and its key."""

    name: Slug
    common_name: Annotated[str, Field(min_length=1, max_length=64)]
    key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256
    validity_days: Annotated[int, Field(ge=1, le=9132)]
    key: str
    certificate: Path

    @property
    def key_is_pkcs11(self) -> bool:
        return self.key.startswith("pkcs11:")


class CaConfig(_Section):
    """The subject of the CA certificates (BR §7.1.2.10.2: C, O and CN are required)."""

    organization: Annotated[str, Field(min_length=1, max_length=64)] = "ctstatus Demo"
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "XX"
    root: CaKeyConfig
    issuing: CaKeyConfig

    @model_validator(mode="after")
    def _check(self) -> CaConfig:
        if self.root.name == self.issuing.name:
            raise ValueError("ca.root.name and ca.issuing.name must differ")
        if not 2922 <= self.root.validity_days <= 9132:
            raise ValueError("ca.root.validity_days must be 2922..9132 (BR §7.1.2.1.1)")
        return self


_URL_FIELDS = {"base", "issuer", "shard"}


def _template(value: str, allowed: set[str]) -> str:
    names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    if names - allowed:
        raise ValueError(
            f"unknown placeholder(s) {sorted(names - allowed)}; allowed: {sorted(allowed)}"
        )
    return value


class UrlsConfig(_Section):
    """Public URLs written into certificates (AIA, CRL distribution points).

    ``{base}`` is replaced by ``base``, ``{issuer}`` by the issuing CA's name and ``{shard}`` by
    the CRL shard number fixed for each serial at issuance.
    """

    base: str = "http://pki.example.com"
    ocsp: str = "{base}/ocsp"
    ca_issuers: str = "{base}/ca/{issuer}.der"
    crl: str = "{base}/crl/{issuer}/{shard}.crl"

    @field_validator("base")
    @classmethod
    def _check_base(cls, base: str) -> str:
        parts = urlsplit(base)
        if parts.scheme != "http" or not parts.netloc:
            raise ValueError(
                "must be an http:// URL (BR §7.1.2.7.7 and §7.1.2.11.2 require plain HTTP for "
                "OCSP, CA issuers and CRL URLs)"
            )
        return base.rstrip("/")

    @field_validator("ocsp")
    @classmethod
    def _check_ocsp(cls, value: str) -> str:
        return _template(value, {"base", "issuer"})

    @field_validator("ca_issuers")
    @classmethod
    def _check_ca_issuers(cls, value: str) -> str:
        return _template(value, {"base", "issuer"})

    @field_validator("crl")
    @classmethod
    def _check_crl(cls, value: str) -> str:
        return _template(value, _URL_FIELDS)

    def ocsp_url(self, issuer: str) -> str:
        return self.ocsp.format(base=self.base, issuer=issuer)

    def ca_issuers_url(self, issuer: str) -> str:
        return self.ca_issuers.format(base=self.base, issuer=issuer)

    def crl_url(self, issuer: str, shard: int) -> str:
        return self.crl.format(base=self.base, issuer=issuer, shard=shard)


class TlsServerProfileConfig(_Section):
    """The TLS server (subscriber) certificate profile."""

    #: None (the default): 90 days, or less once the BR maximum drops below (ca/lifetime.py).
    #: A number (at most 200, the BR maximum since 2026-03-15) is checked again against the
    #: BR maximum of the day each certificate is issued.
    lifetime_days: Annotated[int, Field(ge=1, le=200)] | None = None
    crl_shards: Annotated[int, Field(ge=1, le=4096)] = 4


class ProfilesConfig(_Section):
    tls_server: TlsServerProfileConfig = TlsServerProfileConfig()


OcspHash = Literal["sha1", "sha256"]


class OcspConfig(_Section):
    """The OCSP responder (``ctstatus ocsp serve``): signing, validity, caching, limits."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    signer: Literal["ca", "delegated"] = "ca"
    validity_hours: Annotated[int, Field(ge=8, le=240)] = 96
    responder_lifetime_days: Annotated[int, Field(ge=2, le=90)] = 14
    responder_auto_issue: bool = True
    presign_hashes: Annotated[tuple[OcspHash, ...], Field(min_length=1)] = ("sha1", "sha256")
    refresher: bool = True
    poll_ms: Annotated[int, Field(ge=50, le=10_000)] = 250
    http_max_age: Annotated[int, Field(ge=0, le=86_400)] = 3600
    max_request_bytes: Annotated[int, Field(ge=512, le=65_536)] = 8192
    live_signing_limit: Annotated[int, Field(ge=1, le=10_000)] = 64

    @model_validator(mode="after")
    def _check(self) -> OcspConfig:
        if len(set(self.presign_hashes)) != len(self.presign_hashes):
            raise ValueError("ocsp.presign_hashes lists a hash twice")
        if self.responder_lifetime_days * 24 < 2 * (self.validity_hours + 24):
            raise ValueError(
                "ocsp.responder_lifetime_days must be at least twice (validity_hours + 1 day), "
                "so that a responder certificate outlives the responses it signs"
            )
        return self


class CrlConfig(_Section):
    """The CRL publisher: how long CRLs are valid and how soon revocations appear in them."""

    validity_days: Annotated[int, Field(ge=1, le=10)] = 7
    republish_hours: Annotated[int, Field(ge=1, le=168)] = 84
    revocation_delay_seconds: Annotated[int, Field(ge=10, le=86_400)] = 300
    publish: bool = True
    include_root: bool = True

    @model_validator(mode="after")
    def _check(self) -> CrlConfig:
        if self.republish_hours >= self.validity_days * 24:
            raise ValueError(
                "crl.republish_hours must be shorter than crl.validity_days, or a CRL would "
                "expire before the next one is published"
            )
        return self


AbandonReason = Literal[
    "unspecified", "superseded", "cessationOfOperation", "privilegeWithdrawn", "affiliationChanged"
]


class IssuanceConfig(_Section):
    """Issuance: which CT logs, which policy, and what happens to abandoned precertificates."""

    log_list: Path | None = None
    ct_policy: Literal["chrome", "apple"] = "chrome"
    ct_deadline_seconds: Annotated[float, Field(gt=0, le=600)] = 20.0
    ct_stagger_seconds: Annotated[float, Field(ge=0, le=60)] = 1.0
    abandon: Literal["revoke", "keep"] = "revoke"
    abandon_reason: AbandonReason = "unspecified"
    lint: bool = True
    lint_workers: Annotated[int, Field(ge=0, le=64)] = 1
    recover_grace_seconds: Annotated[int, Field(ge=60, le=86_400)] = 600

    @model_validator(mode="after")
    def _check(self) -> IssuanceConfig:
        if self.recover_grace_seconds < 2 * self.ct_deadline_seconds:
            raise ValueError(
                "issuance.recover_grace_seconds must be at least twice ct_deadline_seconds, so "
                "recover never settles a serial whose attempt is still running"
            )
        return self


class AcmeValidationConfig(_Section):
    """Where domain validation connects (``ctstatus.acme.validation.ValidationSettings``)."""

    dns_servers: tuple[str, ...] = ()
    resolve: dict[str, str] = {}
    http_port: Annotated[int, Field(ge=1, le=65535)] = 80
    tls_alpn_port: Annotated[int, Field(ge=1, le=65535)] = 443
    loopback_only: bool = False
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0


class AcmeConfig(_Section):
    """The ACME server (RFC 8555): ``ctstatus acme serve`` and ``ctstatus up``."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 14000
    base_url: str | None = None
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    default_profile: Literal["tlsserver", "shortlived"] = "tlsserver"
    order_lifetime_hours: Annotated[int, Field(ge=1, le=720)] = 168
    authz_lifetime_hours: Annotated[int, Field(ge=1, le=720)] = 168
    eab_required: bool = False
    eab_keys: dict[str, SecretSource] = {}
    orders_per_account: Annotated[int, Field(ge=1)] = 300
    orders_window_seconds: Annotated[int, Field(ge=1)] = 10_800
    failed_validations_per_hour: Annotated[int, Field(ge=1)] = 5
    caa_identities: tuple[str, ...] = ()
    terms_of_service: str | None = None
    validation: AcmeValidationConfig = AcmeValidationConfig()

    @model_validator(mode="after")
    def _check(self) -> AcmeConfig:
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("acme.tls_certificate and acme.tls_key go together")
        return self


class Config(_Section):
    """The whole instance configuration."""

    ledger: LedgerConfig = LedgerConfig()
    keys: KeysConfig = KeysConfig()
    ca: CaConfig
    urls: UrlsConfig = UrlsConfig()
    profiles: ProfilesConfig = ProfilesConfig()
    ocsp: OcspConfig = OcspConfig()
    crl: CrlConfig = CrlConfig()
    issuance: IssuanceConfig = IssuanceConfig()
    acme: AcmeConfig = AcmeConfig()

    @model_validator(mode="after")
    def _check_keys(self) -> Config:
        for role in (self.ca.root, self.ca.issuing):
            if role.key_is_pkcs11 and self.keys.pkcs11 is None:
                raise ValueError(
                    f"ca {role.name!r} uses a pkcs11: key but [keys.pkcs11] is missing"
                )
            if not role.key_is_pkcs11 and self.keys.passphrase is None:
                raise ValueError(
                    f"ca {role.name!r} uses a key file but [keys] passphrase is not set"
                )
        return self


def load_config(path: Path) -> Config:
    """Read and validate ``path``; every problem is a ConfigError naming the file and key."""
    data = read_toml(
        path,
        missing=(
            "no config file",
            "create an instance with `ctstatus init DIR`, or point --instance at one",
        ),
    )
    return parse_config(data, source=str(path))


def read_toml(path: Path, *, missing: tuple[str, str]) -> dict[str, Any]:
    """The TOML document at ``path``; ``missing`` is (what it is, how to make one)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{missing[0]} at {path}", missing[1]) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", "fix the file's syntax") from None


def parse_config(data: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error(exc, source), "see docs/configuration.md"
        ) from None


# A value is never echoed in an error when a part of its key contains one of these: it is, or
# may contain, a secret (a passphrase, a PIN, a password inside a URL, a secret source).
_SECRET_KEY_PARTS = ("passphrase", "password", "pin", "secret", "token", "url", "env", "file")


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line naming ``source`` and every dotted key that is wrong, never echoing a secret."""
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown key {key!r}")
        elif error["type"] == "missing":
            problems.append(f"missing key {key!r}")
        else:
            message = re.sub(r"^Value error, ", "", error["msg"])
            shown = error["input"]
            secret = any(
                word in str(part).lower() for part in error["loc"] for word in _SECRET_KEY_PARTS
            )
            if secret or not isinstance(shown, str | int | float | bool):
                problems.append(f"{key}: {message}")
            else:
                problems.append(f"{key}: {message} (got {shown!r})")
    return f"{source}: " + "; ".join(problems)


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML)."""
    import json

    return json.dumps(value, ensure_ascii=False)


def render_config(config: Config) -> str:
    """The commented TOML that ``ctstatus init`` writes; it loads back to ``config`` exactly."""

    def secret(source: SecretSource | None) -> str:
        if source is None:
            return ""
        if source.env is not None:
            return f"{{ env = {_toml_str(source.env)} }}"
        return f"{{ file = {_toml_str(str(source.file))} }}"

    def ca_section(section: str, ca: CaKeyConfig) -> str:
        return (
            f"[ca.{section}]\n"
            f"name = {_toml_str(ca.name)}                # ledger name and URL path segment\n"
            f"common_name = {_toml_str(ca.common_name)}\n"
            f"key_algorithm = {_toml_str(ca.key_algorithm.value)}"
            "     # ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096\n"
            f"validity_days = {ca.validity_days}\n"
            f"key = {_toml_str(ca.key)}"
            "     # an encrypted PEM file, or a pkcs11: URI (RFC 7512)\n"
            f"certificate = {_toml_str(str(ca.certificate))}\n"
        )

    lines = [
        "# ctstatus instance configuration. Every option is documented in docs/configuration.md.",
        "# Relative paths are relative to this file's directory. Secrets are never written here:",
        '# they come from { env = "VARIABLE" } or { file = "PATH" }.',
        "",
        "[ledger]",
        "# sqlite:///PATH (embedded default) or postgresql+psycopg://USER@HOST:PORT/DB",
        f"url = {_toml_str(config.ledger.url)}",
    ]
    if config.ledger.password is not None:
        lines.append(f"password = {secret(config.ledger.password)}")
    lines += ["", "[keys]"]
    if config.keys.passphrase is not None:
        lines.append(f"passphrase = {secret(config.keys.passphrase)}   # unlocks the key files")
    if config.keys.pkcs11 is not None:
        lines += [
            "",
            "[keys.pkcs11]",
            f"module = {_toml_str(str(config.keys.pkcs11.module))}",
            f"pin = {secret(config.keys.pkcs11.pin)}",
        ]
    lines += [
        "",
        "[ca]",
        f"organization = {_toml_str(config.ca.organization)}",
        f"country = {_toml_str(config.ca.country)}",
        "",
        ca_section("root", config.ca.root),
        ca_section("issuing", config.ca.issuing),
        "[urls]",
        "# Written into certificates; {base}, {issuer} (a CA's name) and {shard} are replaced.",
        f"base = {_toml_str(config.urls.base)}",
        f"ocsp = {_toml_str(config.urls.ocsp)}",
        f"ca_issuers = {_toml_str(config.urls.ca_issuers)}",
        f"crl = {_toml_str(config.urls.crl)}",
        "",
        "[profiles.tls_server]",
        *_render_lifetime(config.profiles.tls_server.lifetime_days),
        f"crl_shards = {config.profiles.tls_server.crl_shards}",
        "",
        *_render_ocsp(config.ocsp),
        *_render_crl(config.crl),
        *_render_issuance(config.issuance),
    ]
    return "\n".join(lines)


def _toml_bool(value: bool) -> str:
    return "true" if value else "false"


def _render_lifetime(days: int | None) -> list[str]:
    explain = (
        "# Days of validity; unset: 90, or the BR maximum less 1 day once that is smaller "
        "(46 from 2029-03-15)."
    )
    if days is None:
        return [explain, "# lifetime_days = 90"]
    return [explain, f"lifetime_days = {days}"]


def _render_ocsp(ocsp: OcspConfig) -> list[str]:
    hashes = ", ".join(_toml_str(h) for h in ocsp.presign_hashes)
    return [
        "[ocsp]",
        "# `ctstatus ocsp serve`: the OCSP responder (and the CRLs, at the [urls] crl paths).",
        f"host = {_toml_str(ocsp.host)}",
        f"port = {ocsp.port}",
        f"signer = {_toml_str(ocsp.signer)}   # ca, or delegated (a responder certificate)",
        f"validity_hours = {ocsp.validity_hours}   # nextUpdate - thisUpdate, 8..240 (BR §4.9.9)",
        f"responder_lifetime_days = {ocsp.responder_lifetime_days}",
        f"responder_auto_issue = {_toml_bool(ocsp.responder_auto_issue)}",
        f"presign_hashes = [{hashes}]",
        f"refresher = {_toml_bool(ocsp.refresher)}",
        f"poll_ms = {ocsp.poll_ms}",
        f"http_max_age = {ocsp.http_max_age}",
        f"max_request_bytes = {ocsp.max_request_bytes}",
        f"live_signing_limit = {ocsp.live_signing_limit}",
        "",
    ]


def _render_issuance(issuance: IssuanceConfig) -> list[str]:
    log_list = (
        f"log_list = {_toml_str(str(issuance.log_list))}"
        if issuance.log_list is not None
        else '# log_list = "ct/log_list.json"   # v3 log list of the logs to submit to'
    )
    return [
        "[issuance]",
        log_list,
        f"ct_policy = {_toml_str(issuance.ct_policy)}   # chrome or apple",
        f"ct_deadline_seconds = {issuance.ct_deadline_seconds}",
        f"ct_stagger_seconds = {issuance.ct_stagger_seconds}",
        f"abandon = {_toml_str(issuance.abandon)}   # revoke or keep an abandoned precertificate",
        f"abandon_reason = {_toml_str(issuance.abandon_reason)}",
        f"lint = {_toml_bool(issuance.lint)}",
        f"recover_grace_seconds = {issuance.recover_grace_seconds}",
        "",
    ]


def _render_crl(crl: CrlConfig) -> list[str]:
    return [
        "[crl]",
        f"validity_days = {crl.validity_days}   # nextUpdate - thisUpdate, at most 10 days",
        f"republish_hours = {crl.republish_hours}",
        f"revocation_delay_seconds = {crl.revocation_delay_seconds}",
        f"publish = {_toml_bool(crl.publish)}",
        f"include_root = {_toml_bool(crl.include_root)}",
        "",
    ]


def new_instance_config(
    *,
    organization: str = "ctstatus Demo",
    country: str = "XX",
    key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
    root_key_algorithm: KeyAlgorithm | None = None,
    base_url: str = "http://pki.example.com",
    ledger_url: str = "sqlite:///ledger.sqlite3",
    ledger_password_env: str | None = None,
    passphrase_env: str | None = None,
    pkcs11_module: Path | None = None,
    pkcs11_token: str | None = None,
    pkcs11_pin_env: str = "CTSTATUS_PKCS11_PIN",
    log_list: Path | None = None,
) -> Config:
    """The configuration ``ctstatus init`` writes, from its command-line options.

    File keys go to ``keys/NAME.key.pem`` under a passphrase read from ``passphrase_env`` or, by
    default, from ``secrets/key-passphrase`` (generated, mode 0600). With ``pkcs11_token`` the
    keys are generated in that token instead, named ``pkcs11:token=TOKEN;object=NAME``.
    """
    from urllib.parse import quote

    def key(name: str) -> str:
        if pkcs11_token is None:
            return f"keys/{name}.key.pem"
        return f"pkcs11:token={quote(pkcs11_token, safe='')};object={quote(name, safe='')}"

    data: dict[str, Any] = {
        "ledger": {"url": ledger_url},
        "keys": {},
        "ca": {
            "organization": organization,
            "country": country,
            "root": {
                "name": "root-ca",
                "common_name": f"{organization} Root CA"[:64],
                "key_algorithm": (root_key_algorithm or key_algorithm).value,
                "validity_days": 5479,
                "key": key("root-ca"),
                "certificate": "certs/root-ca.pem",
            },
            "issuing": {
                "name": "issuing-ca",
                "common_name": f"{organization} Issuing CA"[:64],
                "key_algorithm": key_algorithm.value,
                "validity_days": 1826,
                "key": key("issuing-ca"),
                "certificate": "certs/issuing-ca.pem",
            },
        },
        "urls": {"base": base_url},
    }
    if log_list is not None:
        data["issuance"] = {"log_list": str(log_list)}
    if ledger_password_env is not None:
        data["ledger"]["password"] = {"env": ledger_password_env}
    if pkcs11_token is None:
        data["keys"]["passphrase"] = (
            {"env": passphrase_env} if passphrase_env else {"file": "secrets/key-passphrase"}
        )
    else:
        data["keys"]["pkcs11"] = {
            "module": str(pkcs11_module or Pkcs11Config().module),
            "pin": {"env": pkcs11_pin_env},
        }
    return parse_config(data, source="ctstatus init options")
