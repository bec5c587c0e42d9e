"""``ctstatus ca …``: the CA hierarchy."""

from __future__ import annotations

from typing import Annotated

import typer

from ctstatus.cli.common import open_instance

app = typer.Typer(help="The CA hierarchy: root and issuing CA.", no_args_is_help=True)


@app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the root and issuing CA: subject, key, validity, fingerprints, ledger serials."""
    from ctstatus.cli.show import print_hierarchy

    print_hierarchy(open_instance(), as_json=as_json)
