"""``ctstatus log …``: create and run local RFC 6962 / static-ct-api CT logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctstatus.cli.common import console

app = typer.Typer(
    help="Local CT logs (RFC 6962 + static-ct-api) with fault injection.", no_args_is_help=True
)


@app.command("init")
def init_command(
    directory: Annotated[
        Path, typer.Argument(help="Where to write the config, keys and roots (new or empty).")
    ],
    roots: Annotated[
        list[Path],
        typer.Option("--roots", help="PEM file(s) of the roots the logs accept (repeatable)."),
    ],
    logs: Annotated[int, typer.Option("--logs", help="How many logs (each its own operator).")] = 3,
    port: Annotated[int, typer.Option(help="Port written into the config (0: any).")] = 8960,
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the key passphrase. Without it a random one is "
            "written to secrets/log-key-passphrase (mode 0600)."
        ),
    ] = None,
) -> None:
    """Write a config and P-256 keys for N logs of N distinct operators."""
    from ctstatus.ctlog.setup import init_log_server

    result = init_log_server(
        directory, count=logs, roots=roots, port=port, passphrase_env=passphrase_env
    )
    console.print(f"wrote {result.config} for logs {', '.join(result.logs)}")
    console.print(f"run them with: ctstatus log serve --config {result.config}")


@app.command("serve")
def serve_command(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", envvar="CTSTATUS_LOG_CONFIG", help="The log server config file."
        ),
    ] = Path("ctlog.toml"),
    port: Annotated[
        int | None, typer.Option(help="Listen on this port instead of the config's (0: any).")
    ] = None,
) -> None:
    """Serve every configured log until SIGTERM/SIGINT (then commit and stop cleanly)."""
    from ctstatus.ctlog.config import load_log_server_config
    from ctstatus.ctlog.server import serve

    serve(load_log_server_config(config), port=port)
