"""``ctstatus check``."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from ctstatus.cli.common import console, open_instance


def check_command() -> None:
    """Check the instance: config, ledger, CA certificates (chain, pkilint) and keys.

    Opens every key (so the passphrase or PIN must be available) and signs a probe with it.
    Exits non-zero if anything fails.
    """
    from ctstatus.ca.check import run_checks

    results = run_checks(open_instance())
    table = Table("check", "result", "detail")
    for result in results:
        table.add_row(
            result.name, "[green]ok[/]" if result.ok else "[red]FAILED[/]", Text(result.detail)
        )
    console.print(table)
    if not all(result.ok for result in results):
        raise typer.Exit(1)
