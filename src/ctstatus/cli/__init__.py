"""The ``ctstatus`` command: one entry point, a subcommand group per part of the system."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from ctstatus import __version__
from ctstatus.cli import acme as acme_commands
from ctstatus.cli import ca as ca_commands
from ctstatus.cli import crl as crl_commands
from ctstatus.cli import ct as ct_commands
from ctstatus.cli import ledger as ledger_commands
from ctstatus.cli import log as log_commands
from ctstatus.cli import ocsp as ocsp_commands
from ctstatus.cli import watch as watch_commands
from ctstatus.cli.check import check_command
from ctstatus.cli.common import STATE
from ctstatus.cli.init import init_command
from ctstatus.cli.issue import issue_command, recover_command
from ctstatus.cli.revoke import revoke_command
from ctstatus.cli.up import up_command
from ctstatus.errors import UserError

HELP = """\
ctstatus: a CA in which no precertificate can exist without an authoritative status.

A signed precertificate counts as an issued certificate (RFC 6962 §3.1, BR §7.1.2.9): from the
moment it exists, OCSP and CRLs must answer for its serial. ctstatus writes each serial to its
ledger before the precertificate is signed and sends every failure after that through one
abandon path, so the serial always has a status.

\b
Start here:
  ctstatus up [--demo]       everything on this machine: CA, 3 CT logs, OCSP/CRLs, API, watcher,
                             dashboard (docs/deployment.md)
  ctstatus init DIR          create an instance: config, keys, root + issuing CA, ledger
  ctstatus -i DIR ca show    show the CA hierarchy and the serials in the ledger
  ctstatus -i DIR check      open the ledger and every key; lint and verify the CA certificates
  ctstatus -i DIR issue N…   precertificate → CT logs → certificate for names N (or --csr)
  ctstatus -i DIR recover    settle serials a crash left mid-issuance
  ctstatus -i DIR ledger …   schema migrations and the state of the ledger
  ctstatus ct …              check a certificate's SCTs, read CT logs (STH, entries, tiles)
  ctstatus -i DIR ocsp serve the OCSP responder and the CRLs over HTTP
  ctstatus -i DIR revoke S   revoke serial S (OCSP and CRLs follow)
  ctstatus log init|serve    local RFC 6962 / static-ct-api CT logs (docs/ctlog.md)
  ctstatus watch [--once]    follow CT logs, check OCSP/CRLs, reconcile (docs/watch.md)

Every option of the instance's ctstatus.toml is documented in docs/configuration.md.
"""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)
app.command("init")(init_command)
app.command("check")(check_command)
app.add_typer(ca_commands.app, name="ca")
app.add_typer(acme_commands.app, name="acme")
app.add_typer(ledger_commands.app, name="ledger")
app.add_typer(ct_commands.app, name="ct")
app.add_typer(ocsp_commands.app, name="ocsp")
app.add_typer(crl_commands.app, name="crl")
app.command("revoke")(revoke_command)
app.command("issue")(issue_command)
app.command("recover")(recover_command)
app.add_typer(log_commands.app, name="log")
app.add_typer(watch_commands.app, name="watch")
app.command("reconcile")(watch_commands.reconcile_command)
app.command("up")(up_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ctstatus {__version__}")
        raise typer.Exit


@app.callback()
def _global_options(
    instance: Annotated[
        Path,
        typer.Option(
            "--instance",
            "-i",
            envvar="CTSTATUS_INSTANCE",
            help="The instance directory (made by `ctstatus init`).",
        ),
    ] = Path("ctstatus-instance"),
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of any error.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    STATE.instance_dir = instance
    STATE.debug = debug


def main() -> None:
    """Run the CLI; user errors become one clear line on stderr and exit status 1."""
    try:
        app()
    except UserError as error:
        if STATE.debug:
            raise
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        console.print(Text.assemble(("error: ", "bold red"), error.message))
        if error.hint:
            console.print(Text.assemble(("hint: ", "dim"), error.hint))
        sys.exit(1)
