"""State and helpers shared by the subcommands.

Subcommand modules import heavy parts (SQLAlchemy, pkilint, cryptography) inside the command
functions, so that ``ctstatus --help`` and argument errors answer at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from ctstatus.instance import Instance


@dataclass
class _State:
    instance_dir: Path = Path("ctstatus-instance")
    debug: bool = False


STATE = _State()
console = Console(highlight=False)


def open_instance() -> Instance:
    from ctstatus.instance import Instance

    return Instance.open(STATE.instance_dir)
