"""``ctstatus watch``, ``ctstatus watch report`` and ``ctstatus reconcile``: the CT monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctstatus.cli.common import console, open_instance

app = typer.Typer(
    help="Follow CT logs and check every (pre)certificate's OCSP and CRL status (docs/watch.md).",
    invoke_without_command=True,
)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="CTSTATUS_WATCH_CONFIG", help="The watcher's TOML file."),
]


@app.callback()
def watch_command(
    ctx: typer.Context,
    config: ConfigOption = Path("watch.toml"),
    once: Annotated[
        bool, typer.Option("--once", help="One pass (for cron); exit 1 if new problems opened.")
    ] = False,
) -> None:
    """Run the watcher as a daemon (or one pass with --once)."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    from ctstatus.watch.config import load_watch_config
    from ctstatus.watch.runner import Watcher

    if not once:
        asyncio.run(_daemon(config))
        return
    settings, base = load_watch_config(config)
    watcher = Watcher(settings, base)
    try:
        result = asyncio.run(watcher.run_once())
    finally:
        watcher.close()
    for follow in result.follow:
        console.print(
            f"log {follow.log}: tree {follow.tree_size}, +{follow.downloaded} entries, "
            f"verified {follow.verified_size}"
        )
    console.print(
        f"checked {result.checks.checked} (pre)certificates; "
        f"{result.new_problems} new problem(s); {result.alerts} alert(s) sent"
    )
    if result.new_problems:
        raise typer.Exit(1)


async def _daemon(config: Path) -> None:
    """The daemon: SIGHUP re-reads the config (and re-plans the queue if the grace or own
    issuers changed) after the pass in progress; SIGINT/SIGTERM stop it at once (a kill
    between transactions loses nothing) and give its leases back."""
    import asyncio
    import contextlib
    import signal

    from ctstatus.watch.config import load_watch_config
    from ctstatus.watch.runner import Watcher

    loop = asyncio.get_running_loop()
    reload, stop = asyncio.Event(), asyncio.Event()
    wake = asyncio.Event()

    def signalled(event: asyncio.Event) -> None:
        event.set()
        wake.set()

    for sig, event in ((signal.SIGHUP, reload), (signal.SIGINT, stop), (signal.SIGTERM, stop)):
        loop.add_signal_handler(sig, signalled, event)
    while not stop.is_set():
        settings, base = load_watch_config(config)
        watcher = Watcher(settings, base)
        if watcher.replanned is not None:
            console.print(f"watch: config changed; {watcher.replanned} first check(s) re-planned")
        reload.clear()
        wake.clear()
        try:
            running = asyncio.create_task(watcher.run_forever(wake))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():  # now, even mid-pass: each batch is its own transaction
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            else:
                stopping.cancel()
                running.result()
        finally:
            watcher.close()
        if reload.is_set() and not stop.is_set():
            console.print("watch: SIGHUP: reloading the config")


def _serial_hex(text: str) -> str:
    """A serial as the watcher stores it: lower-case hex, no leading zeros; accepts
    ``0x…``, colons and spaces (as openssl prints them)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    try:
        return format(int(cleaned, 16), "x")
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a hexadecimal serial number") from None


@app.command("recheck")
def recheck_command(
    serials: Annotated[
        list[str] | None,
        typer.Argument(help="Serial numbers in hex (0x…, colons allowed), any issuer."),
    ] = None,
    all_certs: Annotated[
        bool, typer.Option("--all", help="Every certificate the watcher knows.")
    ] = False,
    config: ConfigOption = Path("watch.toml"),
) -> None:
    """Check these serials next: put them at the front of the check queue.

    Works against a running daemon (it shares the database and looks for due checks every
    few seconds between passes) or before the next `ctstatus watch --once`. Use it after
    fixing a responder, to see the problems resolve now rather than at the next retry.

      ctstatus watch recheck 4f3a0c…      one serial
      ctstatus watch recheck --all        everything (a full sweep, at check_concurrency)

    Exit 1 if a serial is not known (it is queued once seen in a followed log).
    """
    from ctstatus.watch.config import load_watch_config
    from ctstatus.watch.runner import _database_url
    from ctstatus.watch.store import WatchStore

    if all_certs == bool(serials):
        raise typer.BadParameter("give serial numbers or --all (not both)")
    wanted = None if all_certs else sorted({_serial_hex(s) for s in serials or []})
    settings, base = load_watch_config(config)
    store = WatchStore.open(_database_url(settings.database, base))
    try:
        found = store.request_recheck(wanted)
        known = set() if wanted is None else store.known_serials(wanted)
    finally:
        store.close()
    console.print(f"{found} certificate(s) moved to the front of the check queue")
    missing = [] if wanted is None else [s for s in wanted if s not in known]
    for serial in missing:
        console.print(f"{serial}: not known to the watcher (not seen in a followed log yet)")
    if missing:
        raise typer.Exit(1)


@app.command("report")
def report_command(
    config: ConfigOption = Path("watch.toml"),
    json_output: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
    all_problems: Annotated[bool, typer.Option("--all", help="Include resolved problems.")] = False,
) -> None:
    """Problems by CA and code."""
    from ctstatus.watch.config import load_watch_config
    from ctstatus.watch.report import print_report, report_json
    from ctstatus.watch.runner import _database_url
    from ctstatus.watch.store import WatchStore

    settings, base = load_watch_config(config)
    store = WatchStore.open(_database_url(settings.database, base))
    try:
        problems = store.problems(open_only=not all_problems)
    finally:
        store.close()
    if json_output:
        typer.echo(report_json(problems))
    else:
        print_report(console, problems)


def reconcile_command(
    config: ConfigOption = Path("watch.toml"),
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Import each orphan precertificate into the ledger and revoke it per "
            "[issuance] abandon (journaled).",
        ),
    ] = False,
    mmd_seconds: Annotated[
        int, typer.Option(help="How long a precertificate may take to appear in a log.")
    ] = 86_400,
) -> None:
    """Serials seen in CT but missing from the ledger (orphans), and ledger precertificates
    missing from CT. Exit 1 while orphans remain."""
    from datetime import timedelta

    from ctstatus.clock import system_clock
    from ctstatus.watch.config import load_watch_config
    from ctstatus.watch.reconcile import abandon_reason, reconcile
    from ctstatus.watch.runner import _database_url
    from ctstatus.watch.store import WatchStore

    instance = open_instance()
    settings, base = load_watch_config(config)
    store = WatchStore.open(_database_url(settings.database, base))
    ledger = instance.open_ledger()
    issuance = instance.config.issuance
    try:
        result = reconcile(
            ledger,
            store,
            system_clock(),
            mmd=timedelta(seconds=mmd_seconds),
            crl_shards=instance.config.profiles.tls_server.crl_shards,
            abandon=issuance.abandon,
            reason=abandon_reason(issuance.abandon_reason),
            fix=fix,
        )
    finally:
        ledger.close()
        store.close()
    for issuer, serial in result.orphans:
        done = "imported and settled" if (issuer, serial) in result.fixed else "ORPHAN"
        console.print(f"{issuer} {serial}: {done}")
    for issuer, serial, why in result.unfixable:
        console.print(f"{issuer} {serial}: not imported ({why})")
    for issuer, serial in result.unlogged:
        console.print(f"{issuer} {serial}: precertificate not seen in any followed log")
    console.print(
        f"{len(result.orphans)} orphan(s), {len(result.fixed)} fixed, "
        f"{len(result.unlogged)} unlogged precertificate(s)"
    )
    if len(result.orphans) > len(result.fixed):
        raise typer.Exit(1)
