"""``ctstatus up``: every part of the system in one process and one asyncio loop.

Start order follows the dependencies: the CT logs (they write the log list), the OCSP/CRL
server, then the issuing CA (it reads the log list), the API and dashboard, the watcher and,
with ``--demo``, the demo issuer. Shutdown runs the other way on SIGINT/SIGTERM: the demo and
the watcher stop between transactions, then the servers finish in-flight requests, the logs
commit what is pooled and sign a last tree head, and every database is closed -- a restart
resumes from the same state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctstatus.stack.layout import DEFAULT_PUBLIC_BASE, StackPaths, ensure_state
from ctstatus.stack.metrics import MeteredApp, RequestStats, Series
from ctstatus.stack.servers import QuietServer, listen, quiet_server, wait_started

log = logging.getLogger("ctstatus.up")
HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 8900


@dataclass(frozen=True)
class UpOptions:
    state: Path
    port_base: int = DEFAULT_PORT_BASE  # web+API, +1 OCSP/CRL, +2 CT logs, +3 ACME,
    # +4 where ACME fetches http-01, +5 tls-alpn-01, +6 the demo DNS (+7 its control); 0 = chosen
    demo: bool = False
    demo_interval: float = 2.0
    watch_poll_seconds: float = 2.0
    recover_seconds: float = 60.0  # settle serials a crash left mid-issuance
    reconcile_seconds: float = 300.0  # import and revoke orphans seen in CT
    public_base: str = DEFAULT_PUBLIC_BASE


@dataclass
class StackUrls:
    web: str
    api: str
    status: str
    logs: str
    log_names: list[str] = field(default_factory=list)
    acme: str | None = None
    acme_tls_root: str | None = None
    acme_http_port: int | None = None
    acme_tls_alpn_port: int | None = None
    acme_dns: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dashboard": self.web + "/",
            "api": self.api,
            "openapi": self.web + "/api/openapi.json",
            "ocsp_crl": self.status,
            "ct_logs": {name: f"{self.logs}/{name}/" for name in self.log_names},
            "acme": self.acme,
            "acme_tls_root": self.acme_tls_root,
            "acme_http_01_port": self.acme_http_port,
            "acme_tls_alpn_01_port": self.acme_tls_alpn_port,
            "acme_dns_control": self.acme_dns,
            "pid": __import__("os").getpid(),
        }


def _port(base: int, offset: int) -> int:
    return 0 if base == 0 else base + offset


async def _serve(server: QuietServer, sock: Any, what: str) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve(sockets=[sock]), name=what)
    await wait_started(server, task, what)
    return task


async def _watch_loop(watcher: Any, poll: float, say: Callable[[str], None]) -> None:
    while True:
        try:
            result = await watcher.run_once()
            if result.new_problems:
                say(f"watch: {result.new_problems} new problem(s); see the dashboard")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("watch pass failed; retrying")
        await asyncio.sleep(poll)


async def _start_acme(
    instance: Any,
    ledger: Any,
    ca: Any,
    options: UpOptions,
    tasks: list[tuple[QuietServer | None, asyncio.Task[Any]]],
    cleanups: list[Callable[[], Any]],
    stop: asyncio.Event,
) -> tuple[Any, tuple[int, int], str]:
    """The ACME server of the stack (``serve_acme``) with loopback validation settings."""
    from ctstatus.acme.runner import Running, serve_acme
    from ctstatus.acme.validation import ValidationSettings
    from ctstatus.acme.validation.testdns import TestDNSServer

    def free(offset: int) -> int:
        if options.port_base:
            return options.port_base + offset
        sock = listen(HOST, 0)
        port = int(sock.getsockname()[1])
        sock.close()
        return port

    dns = TestDNSServer(
        HOST, _port(options.port_base, 6), control_port=_port(options.port_base, 7)
    ).start()
    cleanups.append(dns.stop)
    ports = (free(4), free(5))
    validation = ValidationSettings(
        dns_servers=(dns.address,),
        resolve={"*.example.com": HOST, "example.com": HOST},
        http_port=ports[0],
        tls_alpn_port=ports[1],
        loopback_only=True,
        caa_identities=instance.config.acme.caa_identities,
    )
    started: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_acme(
            instance,
            ledger,
            host=HOST,
            port=_port(options.port_base, 3),
            stop=stop,
            started=started.set_result,
            validation=validation,
            issue=ca.issue,
        ),
        name="ACME server",
    )
    waiting: set[asyncio.Future[Any]] = {task, started}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
        raise RuntimeError("the ACME server stopped at start-up")
    tasks.append((None, task))  # stops when the stack's ``stop`` is set
    return started.result(), ports, dns.control_url


async def run_stack(
    options: UpOptions,
    *,
    say: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set (by default: on SIGINT or SIGTERM)."""
    import httpx

    from ctstatus.api.auth import read_token_hash
    from ctstatus.api.service import IssuanceBackend
    from ctstatus.ca.lifetime import default_lifetime_days, max_lifetime_days
    from ctstatus.ca.service import open_issuing_ca
    from ctstatus.clock import system_clock
    from ctstatus.ct.transport import new_http_session
    from ctstatus.ctlog.config import load_log_server_config
    from ctstatus.ctlog.server import PreparedServer, write_atomically
    from ctstatus.instance import Instance
    from ctstatus.stack.demo import Demo
    from ctstatus.stack.maintenance import Maintenance
    from ctstatus.status import wiring
    from ctstatus.watch.config import AlertsConfig, WatchConfig
    from ctstatus.watch.runner import Watcher
    from ctstatus.web.app import web_app
    from ctstatus.web.context import DashboardContext

    paths = StackPaths(options.state.resolve())
    token = ensure_state(paths, public_base=options.public_base, say=say)
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)

    cleanups: list[Callable[[], Any]] = []
    tasks: list[tuple[QuietServer | None, asyncio.Task[Any]]] = []
    try:
        # 1. CT logs (their lifespan writes the log list with the real port).
        prepared = PreparedServer(
            load_log_server_config(paths.log_config), port=_port(options.port_base, 2)
        )
        log_server = QuietServer(prepared.server.config)
        tasks.append((log_server, await _serve(log_server, prepared.sock, "CT log server")))

        # 2. OCSP responder and CRLs, metered for the dashboard.
        instance = Instance.open(paths.instance)
        wired = wiring.build(instance)
        cleanups.append(wired.close)
        stats = RequestStats()
        status_sock = listen(HOST, _port(options.port_base, 1))
        status_port = status_sock.getsockname()[1]
        status_server = quiet_server(MeteredApp(wired.app, stats, time.perf_counter))
        tasks.append((status_server, await _serve(status_server, status_sock, "OCSP/CRL server")))

        # 3. The issuing CA, the API and the dashboard.
        ledger = instance.open_ledger()
        cleanups.append(ledger.close)
        http = httpx.AsyncClient()  # the dashboard's OCSP probe
        log_http = new_http_session()  # the CA's CT submissions
        ca = open_issuing_ca(instance, ledger, log_http, system_clock)
        cleanups.append(ca.close)
        issuing = instance.config.ca.issuing
        issuer = ledger.issuer_by_name(issuing.name)
        assert issuer is not None
        tls = instance.config.profiles.tls_server
        backend = IssuanceBackend(
            ledger=ledger,
            issuer_id=issuer.id,
            issuer_name=issuing.name,
            issuer_certificate=instance.certificate(issuing),
            issue=ca.issue,
            # The API's own bounds (as of start-up); issuance checks the day's BR maximum again.
            default_lifetime_days=default_lifetime_days(system_clock(), tls.lifetime_days),
            max_lifetime_days=max_lifetime_days(system_clock()),
            log_names={
                log.log_id: (name, log.settings.operator) for name, log in prepared.logs.items()
            },
        )

        # 4. The watcher: our three logs, our issuer, our own responder (host mapped).
        issuing_path = instance.path(issuing.certificate)
        public_host = options.public_base.split("://", 1)[1].split("/", 1)[0]
        watcher = Watcher(
            WatchConfig(
                database=f"sqlite:///{paths.watch_db}",
                log_list=str(paths.log_list),
                issuers=[issuing_path],
                own_issuers=[issuing_path],
                grace_seconds=0,
                start="beginning",  # our own logs: every entry is ours to check
                poll_seconds=max(1.0, options.watch_poll_seconds),
                recheck_seconds=60,
                timeout_seconds=5,
                alerts=AlertsConfig(stdout=False),
                resolve={public_host: f"{HOST}:{status_port}"},
            ),
            paths.state,
        )
        cleanups.append(watcher.close)

        series = Series(stats)
        web_sock = listen(HOST, _port(options.port_base, 0))
        web_url = f"http://{HOST}:{web_sock.getsockname()[1]}"
        context = DashboardContext(
            instance=instance,
            backend=backend,
            watch_store=watcher.store,
            logs=prepared.logs,
            series=series,
            status_url=f"http://{HOST}:{status_port}",
            http=http,
            demo=options.demo,
        )
        web_server = quiet_server(web_app(context, read_token_hash(paths.token_hash)))
        tasks.append((web_server, await _serve(web_server, web_sock, "dashboard and API")))

        # 5. ACME over HTTPS, validating against loopback: names under example.com resolve to
        # 127.0.0.1, and a local DNS server answers CAA (none: allowed) and dns-01 TXT records.
        acme_running = await _start_acme(instance, ledger, ca, options, tasks, cleanups, stop)
        running, acme_ports, dns_control = acme_running

        urls = StackUrls(
            web=web_url,
            api=web_url + "/api/v1",
            status=f"http://{HOST}:{status_port}",
            logs=prepared.base_url,
            log_names=list(prepared.logs),
            acme=running.directory,
            acme_tls_root=str(running.tls.root),
            acme_http_port=acme_ports[0],
            acme_tls_alpn_port=acme_ports[1],
            acme_dns=dns_control,
        )
        write_atomically(paths.urls, (json.dumps(urls.to_json(), indent=2) + "\n").encode())

        background = [asyncio.create_task(_watch_loop(watcher, options.watch_poll_seconds, say))]
        background.append(asyncio.create_task(context.sample_forever(5.0)))
        maintenance = Maintenance(
            instance,
            ledger,
            watcher.store,
            system_clock,
            recover_seconds=options.recover_seconds,
            reconcile_seconds=options.reconcile_seconds,
        )
        background.append(asyncio.create_task(maintenance.run_forever()))
        if options.demo:
            demo = Demo(backend, prepared.logs, interval=options.demo_interval, say=say)
            background.append(asyncio.create_task(demo.run()))

        say("")
        say(f"  dashboard   {web_url}/")
        say(f"  issuance API {web_url}/api/v1  (schema: {web_url}/api/openapi.json)")
        say(f"  OCSP + CRLs {urls.status}/  (certificates name {options.public_base})")
        for name in prepared.logs:
            say(f"  CT log      {prepared.base_url}/{name}/")
        say(f"  ACME        {running.directory}  (TLS root: {running.tls.root})")
        say(
            f"              http-01 is fetched from port {acme_ports[0]}, tls-alpn-01 from "
            f"{acme_ports[1]}; *.example.com resolves to {HOST}; TXT records: {dns_control}"
        )
        say(f"  state       {paths.state}")
        if token is not None:
            say(f"  API token   {token}  (also in {paths.token}, mode 0600; shown once)")
        else:
            say(f"  API token   in {paths.token} (if you kept it)")
        if options.demo:
            say("  demo        issuing every few seconds; every 4th with two CT logs refusing;")
            say("              each minute one log signs bad tree heads for 15 s (log.bad_sth)")
        say("ctstatus up: running; Ctrl-C or SIGTERM stops it cleanly")

        await stop.wait()
        say("ctstatus up: stopping (finishing in-flight work)")
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await http.aclose()
        await log_http.close()
    finally:
        stop.set()  # the ACME server's signal (also when start-up failed half-way)
        for server, _task in reversed(tasks):
            if server is not None:
                server.should_exit = True
        for _server, task in reversed(tasks):
            try:
                await task
            except Exception:
                log.exception("a server failed while stopping")
        for cleanup in reversed(cleanups):
            cleanup()
    say("ctstatus up: stopped; state kept in " + str(paths.state))
