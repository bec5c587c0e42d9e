"""Rendering of the CA hierarchy (a panel per CA, or JSON)."""

from __future__ import annotations

import json

from rich.table import Table
from rich.text import Text

from ctstatus.ca.hierarchy import describe_hierarchy
from ctstatus.cli.common import console
from ctstatus.instance import Instance


def print_hierarchy(instance: Instance, *, as_json: bool = False) -> None:
    cas = describe_hierarchy(instance)
    if as_json:
        payload = {
            "instance": str(instance.directory),
            "cas": [ca.as_json() for ca in cas],
        }
        print(json.dumps(payload, indent=2))
        return
    console.print(Text.assemble(("CA hierarchy of ", "bold"), str(instance.directory)))
    for ca in cas:
        table = Table(
            title=Text.assemble((f"{ca.role} CA ", "bold"), ca.name),
            title_justify="left",
            show_header=False,
            box=None,
            padding=(0, 2),
        )
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        states = ca.serials_by_state or {}
        in_ledger = ", ".join(f"{state} {n}" for state, n in sorted(states.items()) if n)
        table.add_row("subject", Text(ca.subject))
        if ca.issuer != ca.subject:
            table.add_row("issuer", Text(ca.issuer))
        table.add_row("key", Text(f"{ca.key_algorithm}, {ca.key}"))
        table.add_row("valid", f"{ca.not_before} → {ca.not_after}")
        table.add_row("serial", ca.serial)
        table.add_row("SHA-256", ca.sha256)
        table.add_row("certificate", Text(ca.certificate))
        table.add_row(
            "signature",
            Text("verified", "green") if ca.signature_ok else Text("DOES NOT VERIFY", "bold red"),
        )
        table.add_row("ledger", in_ledger or "no serials yet")
        console.print()
        console.print(table)
