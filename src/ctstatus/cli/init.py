"""``ctstatus init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctstatus.cli.common import console
from ctstatus.keys.signer import KeyAlgorithm


def init_command(
    directory: Annotated[
        Path, typer.Argument(help="Where to create the instance (must not exist, or be empty).")
    ] = Path("ctstatus-instance"),
    organization: Annotated[
        str, typer.Option(help="organizationName of the CA certificates.")
    ] = "ctstatus Demo",
    country: Annotated[
        str, typer.Option(help="countryName of the CA certificates (ISO 3166; XX = unknown).")
    ] = "XX",
    key_algorithm: Annotated[
        KeyAlgorithm, typer.Option(help="Key algorithm of the issuing CA (and the root).")
    ] = KeyAlgorithm.ECDSA_P256,
    root_key_algorithm: Annotated[
        KeyAlgorithm | None,
        typer.Option(help="Key algorithm of the root, if it should differ (e.g. rsa-4096)."),
    ] = None,
    base_url: Annotated[
        str,
        typer.Option(
            help="Public http:// base of the OCSP, CA-issuers and CRL URLs put in certificates."
        ),
    ] = "http://pki.example.com",
    ledger_url: Annotated[
        str,
        typer.Option(
            help="The ledger database: sqlite:///PATH (relative to the instance) or "
            "postgresql+psycopg://USER@HOST:PORT/DB."
        ),
    ] = "sqlite:///ledger.sqlite3",
    ledger_password_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the database password.")
    ] = None,
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the key-file passphrase. Without it a random "
            "passphrase is written to secrets/key-passphrase (mode 0600)."
        ),
    ] = None,
    pkcs11_token: Annotated[
        str | None,
        typer.Option(help="Generate the CA keys in this PKCS#11 token instead of key files."),
    ] = None,
    pkcs11_module: Annotated[
        Path | None, typer.Option(help="The PKCS#11 module (default: SoftHSM2's).")
    ] = None,
    pkcs11_pin_env: Annotated[
        str, typer.Option(help="Environment variable holding the token's user PIN.")
    ] = "CTSTATUS_PKCS11_PIN",
) -> None:
    """Create an instance: config, CA keys, a root and an issuing CA, and the ledger.

    All or nothing: if any step fails, nothing is left behind. The CA certificates follow the
    BR §7.1.2 profiles and are checked with pkilint before init succeeds.
    """
    from ctstatus.ca.bootstrap import init_instance
    from ctstatus.cli.show import print_hierarchy
    from ctstatus.config import new_instance_config

    config = new_instance_config(
        organization=organization,
        country=country,
        key_algorithm=key_algorithm,
        root_key_algorithm=root_key_algorithm,
        base_url=base_url,
        ledger_url=ledger_url,
        ledger_password_env=ledger_password_env,
        passphrase_env=passphrase_env,
        pkcs11_module=pkcs11_module,
        pkcs11_token=pkcs11_token,
        pkcs11_pin_env=pkcs11_pin_env,
    )
    with console.status("creating the instance") as status:
        instance = init_instance(directory, config, progress=lambda step: status.update(step))
    console.print(f"[green]created[/] the instance at {instance.directory}")
    print_hierarchy(instance)
    console.print(
        f"\nNext: [bold]ctstatus -i {directory} check[/] opens every key and the ledger;"
        f" export CTSTATUS_INSTANCE={directory} to drop the -i."
    )
