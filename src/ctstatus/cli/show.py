"""Rendering of the CA hierarchy (rich table or JSON)."""

from __future__ import annotations

import json

from rich.table import Table

from ctstatus.ca.hierarchy import describe_hierarchy
from ctstatus.cli.common import console
from ctstatus.instance import Instance


def print_hierarchy(instance: Instance, *, as_json: bool = False) -> None:
    cas = describe_hierarchy(instance)
    if as_json:
        payload = {
            "instance": str(instance.directory),
            "ledger": instance.ledger_url()
            if instance.config.ledger.password is None
            else "(password-protected)",
            "cas": [ca.as_json() for ca in cas],
        }
        print(json.dumps(payload, indent=2))
        return
    table = Table(title=f"CA hierarchy of {instance.directory}", title_justify="left")
    table.add_column("role", style="bold")
    table.add_column("name")
    table.add_column("subject")
    table.add_column("key")
    table.add_column("valid (UTC)")
    table.add_column("serial / SHA-256")
    table.add_column("signature")
    table.add_column("ledger serials")
    for ca in cas:
        states = ca.serials_by_state or {}
        table.add_row(
            ca.role,
            ca.name,
            ca.subject.replace(",", ",\n"),
            f"{ca.key_algorithm}\n[dim]{ca.key}[/]",
            f"{ca.not_before[:10]} →\n{ca.not_after[:10]}",
            f"{ca.serial}\n[dim]{ca.sha256[:32]}…[/]",
            "[green]ok[/]" if ca.signature_ok else "[red]BAD[/]",
            ", ".join(f"{state} {n}" for state, n in sorted(states.items()) if n) or "none yet",
        )
    console.print(table)
