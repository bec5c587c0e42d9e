"""``ctstatus ledger …``: schema migrations and what the ledger holds."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ctstatus.cli.common import console, open_instance

app = typer.Typer(help="The status ledger: migrations and contents.", no_args_is_help=True)


@app.command("migrate")
def migrate_command() -> None:
    """Bring the ledger schema to the version this ctstatus expects (safe to repeat)."""
    from ctstatus.ledger import current_revision, migrate

    engine = open_instance().ledger_engine()
    try:
        before = current_revision(engine)
        migrate(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"the ledger is already at revision {after}")
    else:
        console.print(f"migrated the ledger from {before or 'empty'} to {after}")


@app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Schema revision, issuers, and how many serials are in each state."""
    from ctstatus.ledger import current_revision, head_revision

    instance = open_instance()
    ledger = instance.open_ledger()
    try:
        rows = [
            (issuer, {state.value: n for state, n in ledger.count_by_state(issuer.id).items()})
            for issuer in ledger.issuers()
        ]
        revision = current_revision(ledger.engine)
    finally:
        ledger.close()
    if as_json:
        print(
            json.dumps(
                {
                    "revision": revision,
                    "head": head_revision(),
                    "issuers": [
                        {"name": issuer.name, "id": issuer.id, "serials_by_state": counts}
                        for issuer, counts in rows
                    ],
                },
                indent=2,
            )
        )
        return
    console.print(f"schema revision {revision} (this ctstatus expects {head_revision()})")
    table = Table("issuer", "state", "serials")
    for issuer, counts in rows:
        held = [(state, count) for state, count in sorted(counts.items()) if count]
        for state, count in held or [("(none)", 0)]:
            table.add_row(issuer.name, state, str(count))
    console.print(table)
