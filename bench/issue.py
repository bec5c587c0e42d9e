"""Benchmark issuance end to end: certificates/s through precertificate → 3 CT logs → certificate.

    .venv/bin/python bench/issue.py [--count 400] [--concurrency 8] [--backends sqlite,postgresql]
                                    [--lint pool,inline,off] [--profile]

For each ledger backend it makes a throwaway instance with ``init_instance`` (SQLite file in a
temporary directory, or a PostgreSQL database created on 127.0.0.1:5432 and dropped afterwards),
three CT logs of three operators with ``ctstatus log init``, and starts ``ctstatus log serve`` in
a subprocess (its own process, as in production). Then, for each lint mode (pkilint in a
worker process as configured by default, pkilint on the event loop, no lint) and for each
``--concurrency`` (a comma-separated list), it runs that many asyncio tasks sharing one
``IssuingCa`` (the real one: ``open_issuing_ca``, chrome CT policy over the three logs, default
``[issuance]`` settings) until ``--count`` certificates are issued, after a short warm-up. It
prints certificates/s, latency percentiles, the CPU time per certificate of the CA process and of
the log server (robust to other load on the machine, unlike the rate), the machine's total CPU
use, and the mean time of each step (from ``IssuanceResult.timings``; queueing included).

``--profile`` adds, for the first configuration, where the CA process's CPU goes: a py-spy
``--gil`` recording of all its threads, attributed to the innermost known step (pkilint, HTTP
client, ledger, signing, ...), if py-spy is installed (``pip install py-spy``), and a cProfile of
the event-loop thread (lint, signing, SCT checks and HTTP run there; ledger writes run in worker
threads).

Only 127.0.0.1 is contacted. Nothing is left behind (temporary directory removed, database
dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from pyspy import collapsed_stacks, print_self_time  # bench/pyspy.py

from ctstatus.ca import bootstrap, profiles
from ctstatus.ca.issuance import IssuanceRequest, IssuanceResult
from ctstatus.ca.service import open_issuing_ca
from ctstatus.clock import system_clock
from ctstatus.config import new_instance_config
from ctstatus.ct.transport import new_http_session
from ctstatus.ctlog.setup import init_log_server
from ctstatus.instance import Instance
from ctstatus.keys import KeyAlgorithm
from ctstatus.secrets import Secret

PG_ADMIN_URL = os.environ.get(
    "CTSTATUS_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
STEPS = ("reserve", "lint", "precertificate", "ct", "certificate")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ca_cpu_seconds() -> float:
    """This process and its lint workers (multiprocessing children), not the log server."""
    total = cpu_seconds(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"multiprocessing" in command:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A ledger URL: a SQLite file (relative to the instance) or a new PostgreSQL database."""
    if backend == "sqlite":
        yield "sqlite:///ledger.sqlite3"
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"ctstatus_bench_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def log_server(work: Path, root: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``ctstatus log serve`` for three logs of three operators, in its own process."""
    init = init_log_server(work / "logs", count=3, roots=[root], port=0, passphrase=Secret("b"))
    log_list = init.config.parent / "loglist.json"
    command = [sys.executable, "-m", "ctstatus", "log", "serve", "--config", str(init.config)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not log_list.exists():
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the log server did not start")
            time.sleep(0.05)
        yield server, log_list
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


LINT_MODES = {"pool": (True, 1), "inline": (True, 0), "off": (False, 0)}


def configure(directory: Path, log_list: Path, *, lint: str) -> Instance:
    """Point ``[issuance]`` at the logs and set lint, the way a user edits the file."""
    path = directory / "ctstatus.toml"
    text = path.read_text()
    head, section = text.split("\n[issuance]\n", 1)
    enabled, workers = LINT_MODES[lint]
    lines = [
        f"log_list = {json.dumps(str(log_list))}",
        f"lint = {str(enabled).lower()}",
        f"lint_workers = {workers}",
    ]
    kept = [
        line
        for line in section.splitlines()
        if not line.lstrip("# ").startswith(("log_list ", "lint ", "lint_workers "))
    ]
    path.write_text(f"{head}\n[issuance]\n" + "\n".join(lines + kept) + "\n")
    return Instance.open(directory)


@dataclass
class Run:
    backend: str
    lint: str  # pool (pkilint in a worker process), inline (on the event loop) or off
    concurrency: int
    count: int
    seconds: float
    latencies: list[float]
    steps: dict[str, float]
    ca_cpu: float  # CPU seconds of the CA process (all threads) and its lint workers
    log_cpu: float  # CPU seconds of the log server process
    machine_cpu: float  # share of both cores busy (anything on the machine)
    failures: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def line(self) -> str:
        lat = sorted(self.latencies)
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        steps = ", ".join(f"{k} {v * 1000:.1f}" for k, v in self.steps.items())
        per = max(1, self.count)
        return (
            f"{self.backend:10} lint {self.lint:6} x{self.concurrency:<3} "
            f"{self.rate:6.1f} certificates/s  ({self.count} in {self.seconds:.1f} s, "
            f"{self.failures} failed)  p50 {p50:.0f} ms  p99 {p99:.0f} ms\n"
            f"{'':16}CPU per certificate: CA (+ lint worker) {1000 * self.ca_cpu / per:.1f} ms, "
            f"log server {1000 * self.log_cpu / per:.1f} ms; machine busy "
            f"{100 * self.machine_cpu:.0f}% of {os.cpu_count()} cores\n"
            f"{'':16}mean ms per step (queueing included): {steps}"
        )


def requests_pool(size: int) -> list[IssuanceRequest]:
    """Subscriber keys are the subscriber's business: made once, outside the measurement."""
    keys = [KeyAlgorithm.ECDSA_P256.generate().public_key() for _ in range(min(size, 64))]
    return [
        IssuanceRequest(
            public_key=keys[i % len(keys)],
            names=profiles.parse_names([f"b{i}-{secrets.token_hex(3)}.bench.example.com"]),
            lifetime_days=90,
        )
        for i in range(size)
    ]


class Profiler:
    """cProfile of the event-loop thread and py-spy --gil of the whole process, on demand."""

    def __init__(self, work: Path) -> None:
        self.output = work / "py-spy.txt"
        self.cprofile = cProfile.Profile()
        self.spy: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if Path(py_spy).exists():
            self.spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(os.getpid()), "--format", "raw", "--gil",
                 "--rate", "250", "-o", str(self.output)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)  # py-spy attaches
        else:
            print("(py-spy not installed: pip install py-spy)")
        self.cprofile.enable()

    def stop(self) -> None:
        self.cprofile.disable()
        if self.spy is not None:
            self.spy.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
            self.spy.wait(timeout=60)

    def report(self) -> None:
        if self.spy is not None:
            print_py_spy(self.output)
        print_cprofile(self.cprofile)


async def issue_many(
    instance: Instance, count: int, concurrency: int, warm_up: int, profiler: Profiler | None
) -> tuple[float, list[IssuanceResult], int, float]:
    """Issue ``count`` certificates with ``concurrency`` tasks: (seconds, results, failures,
    CPU seconds of this process meanwhile)."""
    ledger = instance.open_ledger()
    requests = requests_pool(count + warm_up)
    results: list[IssuanceResult] = []
    failures = 0
    try:
        async with new_http_session() as http:
            ca = open_issuing_ca(instance, ledger, http, system_clock)
            for request in requests[:warm_up]:  # pkilint validators, connections, caches
                await ca.issue(request)
            queue = iter(requests[warm_up:])

            async def worker() -> None:
                nonlocal failures
                for request in queue:
                    try:
                        results.append(await ca.issue(request))
                    except Exception as exc:
                        failures += 1
                        print(f"  failed: {exc}", file=sys.stderr)

            if profiler is not None:
                profiler.start()
            cpu, started = ca_cpu_seconds(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            seconds = time.perf_counter() - started
            cpu = ca_cpu_seconds() - cpu
            ca.close()
            if profiler is not None:
                profiler.stop()
    finally:
        ledger.close()
    return seconds, results, failures, cpu


def measure(
    backend: str,
    instance: Instance,
    server: subprocess.Popen[bytes],
    options: argparse.Namespace,
    *,
    lint: str,
    concurrency: int,
    profiler: Profiler | None,
) -> Run:
    log_before, machine_before = cpu_seconds(server.pid), machine_busy()
    seconds, results, failures, ca_cpu = asyncio.run(
        issue_many(instance, options.count, concurrency, options.warm_up, profiler)
    )
    log_cpu = cpu_seconds(server.pid) - log_before  # includes the warm-up's few submissions
    machine_after = machine_busy()
    steps = {}
    for index, step in enumerate(STEPS):
        previous = STEPS[index - 1] if index else None
        steps[step] = statistics.fmean(
            r.timings[step] - (r.timings[previous] if previous else 0.0) for r in results
        )
    return Run(
        backend=backend,
        lint=lint,
        concurrency=concurrency,
        count=len(results),
        seconds=seconds,
        latencies=[r.timings["certificate"] for r in results],
        steps=steps,
        ca_cpu=ca_cpu,
        log_cpu=log_cpu,
        machine_cpu=(machine_after[0] - machine_before[0])
        / max(1, machine_after[1] - machine_before[1]),
        failures=failures,
    )


def print_cprofile(profile: cProfile.Profile) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(r"ctstatus/|pkilint/(validation|loader)", 20)
    print("cProfile of the event-loop thread, cumulative (inflated by cProfile's own cost):")
    for line in out.getvalue().splitlines():
        if line.strip() and not line.lstrip().startswith(("Ordered", "List reduced")):
            print("  " + line.replace(str(Path(sys.prefix)), "<venv>"))


#: (what, a substring of a py-spy frame); a sample counts for the innermost frame that matches.
SPY_RULES = [
    ("pkilint (ca.lint.lint_certificate, when inline)", "lint_certificate ("),
    ("lint worker hand-off (ca.lint.LintPool)", "LintPool."),
    ("CT: HTTP client (aiohttp)", "fetch_once ("),
    ("CT: SCT signature checks", "verify_sct_for_entry ("),
    ("CT: pure-Python DER walks (tbs_for_ct)", "tbs_for_ct ("),
    ("CT: pure-Python DER walks (signed_entry_for)", "signed_entry_for ("),
    ("CT: policy loop and client bookkeeping", "submit_with_policy ("),
    ("CT: policy loop and client bookkeeping", "LogClient."),
    ("signing (sign_certificate: build, sign, verify)", "sign_certificate ("),
    ("ledger writes (SQLAlchemy + driver)", "Ledger."),
    ("certificate profile (builder)", "tls_server ("),
    ("issuance, other", "IssuingCa."),
    ("asyncio.to_thread hand-off, thread pool", "concurrent/futures/thread.py"),
]


def print_py_spy(path: Path) -> None:
    """Where the GIL-holding samples went, by step (innermost match), from collapsed stacks."""
    stacks = collapsed_stacks(path)
    if not stacks:
        print("(no py-spy profile recorded)")
        return
    overall = sum(samples for _, samples in stacks)
    by_step: dict[str, int] = {}
    for frames, samples in stacks:
        step = "event loop, other"
        for frame in reversed(frames):
            match = next((what for what, needle in SPY_RULES if needle in frame), None)
            if match is not None:
                step = match
                break
        by_step[step] = by_step.get(step, 0) + samples
    print(f"py-spy --gil, CA process, {overall} samples holding the GIL, by step:")
    for step, samples in sorted(by_step.items(), key=lambda item: -item[1]):
        print(f"  {100 * samples / max(1, overall):5.1f}%  {step}")
    print_self_time(stacks, "py-spy self time, top functions:", top=12, width=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400, help="certificates per configuration")
    parser.add_argument("--concurrency", default="8", help="concurrent issuances, e.g. 1,8,32")
    parser.add_argument("--warm-up", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--lint",
        default="pool,inline,off",
        help="pool (pkilint in a worker: the default config), inline (on the event loop), off",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy + cProfile, first run")
    options = parser.parse_args()
    concurrencies = [int(value) for value in options.concurrency.split(",")]
    print(
        f"issuance benchmark: {options.count} certificates per configuration, 3 local logs, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before starting"
    )
    runs: list[Run] = []
    for backend in options.backends.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"issue-bench-{backend}-"))
        try:
            with database(backend) as url:
                directory = work / "ca"
                bootstrap.init_instance(directory, new_instance_config(ledger_url=url))
                with log_server(work, directory / "certs" / "root-ca.pem") as (server, logs):
                    for lint in options.lint.split(","):
                        instance = configure(directory, logs, lint=lint)
                        for concurrency in concurrencies:
                            profiler = Profiler(work) if options.profile and not runs else None
                            run = measure(backend, instance, server, options, lint=lint,
                                          concurrency=concurrency, profiler=profiler)  # fmt: skip
                            runs.append(run)
                            print(run.line(), flush=True)
                            if profiler is not None:
                                profiler.report()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"summary (certificates/s; load average now {os.getloadavg()[0]:.2f}):")
    for run in runs:
        print(
            f"  {run.backend:10} lint {run.lint:6} x{run.concurrency:<3} "
            f"{run.rate:6.1f}/s   CA CPU {1000 * run.ca_cpu / max(1, run.count):5.1f} ms/cert"
        )


if __name__ == "__main__":
    main()
