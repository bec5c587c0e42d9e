"""``ctstatus log init``: a config, keys and roots for N logs of N distinct operators.

The directory it writes is self-contained: ``ctlog.toml``, ``keys/<log>.key.pem`` (encrypted
PKCS#8, mode 0600), ``roots/`` (copies of the accepted roots) and, unless the passphrase comes
from the environment, ``secrets/log-key-passphrase`` (random, mode 0600). The config it writes
loads back through the same validation as a hand-written one.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from ctstatus.ctlog.config import CONFIG_FILE, load_log_server_config
from ctstatus.ctlog.server import load_roots
from ctstatus.errors import UserError
from ctstatus.keys.files import generate_key_file, write_private_file
from ctstatus.keys.signer import KeyAlgorithm
from ctstatus.secrets import Secret

NAMES = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
)  # fmt: skip
PASSPHRASE_FILE = "secrets/log-key-passphrase"  # noqa: S105 (a path, not a secret)


@dataclass(frozen=True)
class InitResult:
    config: Path
    logs: list[str]


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def render_config(
    names: list[str], roots: list[str], *, port: int, passphrase_env: str | None
) -> str:
    passphrase = (
        f"{{ env = {_toml(passphrase_env)} }}"
        if passphrase_env
        else f"{{ file = {_toml(PASSPHRASE_FILE)} }}"
    )
    lines = [
        "# ctstatus CT log server. Every key is documented in docs/ctlog.md.",
        "# Relative paths are relative to this file. Run: ctstatus log serve --config THIS_FILE",
        "",
        "[server]",
        'listen = "127.0.0.1"          # admin endpoints need a loopback address',
        f"port = {port}                   # 0: let the system choose",
        'data_dir = "data"             # one SQLite database per log',
        'log_list = "loglist.json"     # v3 log list written at start-up, for clients',
        "admin = true                  # /admin/<log>/faults, /sth, /sths on loopback",
        "max_body_bytes = 262144",
        "max_chain_length = 8",
        f"key_passphrase = {passphrase}",
        "",
    ]
    root_list = ", ".join(_toml(r) for r in roots)
    for index, name in enumerate(names):
        letter = chr(ord("A") + index % 26)
        lines += [
            "[[log]]",
            f"name = {_toml(name)}",
            f"description = {_toml(f'ctstatus {name} log')}",
            f"operator = {_toml(f'ctstatus Operator {letter}')}",
            f"key = {_toml(f'keys/{name}.key.pem')}",
            f"roots = [{root_list}]",
            "mmd = 60                       # seconds (static-ct-api logs: at most 60)",
            "sth_interval_ms = 1000",
            "get_entries_cap = 1000",
            "batch_max = 1024",
            "batch_linger_ms = 2.0",
            "",
        ]
    return "\n".join(lines)


def init_log_server(
    directory: Path,
    *,
    count: int,
    roots: list[Path],
    port: int = 8960,
    passphrase_env: str | None = None,
    passphrase: Secret | None = None,
) -> InitResult:
    """Write a ready-to-serve directory for ``count`` logs accepting ``roots``."""
    if not 1 <= count <= len(NAMES):
        raise UserError(f"--logs must be 1..{len(NAMES)}, not {count}")
    if not roots:
        raise UserError("give at least one accepted root with --roots FILE")
    if directory.exists() and any(directory.iterdir()):
        raise UserError(f"{directory} exists and is not empty", "pick a new directory")
    certificates = load_roots(roots, "--roots")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keys").mkdir(mode=0o700)
    (directory / "roots").mkdir()
    root_files: list[str] = []
    for index, certificate in enumerate(certificates):
        from cryptography.hazmat.primitives.serialization import Encoding

        name = f"roots/root-{index}.pem"
        (directory / name).write_bytes(certificate.public_bytes(Encoding.PEM))
        root_files.append(name)
    if passphrase is None and passphrase_env is not None:
        import os

        value = os.environ.get(passphrase_env)
        if not value:
            raise UserError(f"environment variable {passphrase_env} is not set")
        passphrase = Secret(value)
    if passphrase is None:
        passphrase = Secret(secrets.token_urlsafe(32))
    if passphrase_env is None:
        (directory / "secrets").mkdir(mode=0o700)
        write_private_file(directory / PASSPHRASE_FILE, passphrase.reveal().encode() + b"\n")
    names = list(NAMES[:count])
    for name in names:
        generate_key_file(
            directory / "keys" / f"{name}.key.pem", KeyAlgorithm.ECDSA_P256, passphrase
        )
    config = directory / CONFIG_FILE
    config.write_text(render_config(names, root_files, port=port, passphrase_env=passphrase_env))
    load_log_server_config(config)  # what we wrote must load
    return InitResult(config, names)
