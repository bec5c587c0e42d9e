"""State and helpers shared by the subcommands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ctstatus.instance import Instance


@dataclass
class _State:
    instance_dir: Path = Path("ctstatus-instance")
    debug: bool = False


STATE = _State()
console = Console(highlight=False)


def open_instance() -> Instance:
    return Instance.open(STATE.instance_dir)
