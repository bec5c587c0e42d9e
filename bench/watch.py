"""Benchmark the watcher: follow a local log of N entries, side by side with Debian's certspotter,
and OCSP status checks/s against our own responder.

    .venv/bin/python bench/watch.py [--entries 1000000] [--pool 2000] [--checks 2000]
                                    [--storage] [--skip-follow] [--skip-ocsp]

1. Fill: ``ctstatus log init`` (one log), then N precert entries written straight into the log's
   store through ``ctlog.storage.LogStore`` (a pool of distinct real precertificates, reused
   cyclically; each entry has its own index and leaf, so the tree is a real N-leaf tree). Going
   through add-pre-chain would take ~10 minutes per million at ~1,700/s (docs/benchmarks.md).
2. ``ctstatus log serve`` pinned to core 0 (``taskset``) serves it; it signs a head over N.
3. Our watcher (``ctstatus watch --once``, pinned to core 1) follows the log from zero: verified
   STH, get-entries, every entry parsed and indexed, root recomputed. Then certspotter (pinned to
   core 1, fresh state, a watchlist matching nothing) does the same; it polls once at start and
   is stopped (SIGINT) once its state shows the whole tree verified. Storage: the watcher
   database's bytes per followed entry (rows for watched entries only) and certspotter's state
   directory's; with ``--storage`` the watcher follows again with every issuer watched.
4. OCSP: a real instance, ``--checks`` serials signed into its ledger, our OCSP responder
   (``ctstatus ocsp serve``, pinned to core 0), and the watcher's :class:`Checker` (pinned to
   core 1) asking for every serial (a SHA-1 GET each, plus one SHA-256 GET and one random-serial
   GET per responder) with 32 in flight, twice: first checks (the responder reads each
   serial's pre-signed response from its database) and rechecks (answered from its memory).
   CPU seconds of the checker (this process) and of the responder are reported per check:
   less disturbed by other load than checks/s. ``BENCH_PROFILE=1`` profiles the rechecks.

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ctstatus.ct.extensions import leaf_index_extensions
from ctstatus.ct.loglist import load_log_list
from ctstatus.ct.merkle import leaf_hash
from ctstatus.ct.sct import issuer_key_hash, tbs_for_ct
from ctstatus.ct.structures import LogEntryType, MerkleTreeLeaf, PrecertChainEntry, TimestampedEntry
from ctstatus.ctlog.config import load_log_server_config
from ctstatus.ctlog.setup import init_log_server
from ctstatus.ctlog.storage import LogStore, NewEntry
from ctstatus.ctlog.tree import TreeEdge
from ctstatus.secrets import Secret

DER = serialization.Encoding.DER
CTSTATUS = Path(sys.executable).parent / "ctstatus"
NOW = datetime.now(UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(
    cn: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: object
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )


def fill(directory: Path, entries: int, pool: int) -> tuple[Path, Path]:
    """A one-log server config whose store holds ``entries`` entries; (config, other CA pem)."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca("bench root", root_key, _name("bench root"), root_key)
    key = ec.generate_private_key(ec.SECP256R1())
    issuing = _ca("bench issuing", key, root.subject, root_key)
    roots = directory / "roots.pem"
    roots.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    other = directory / "other-ca.pem"
    stranger = ec.generate_private_key(ec.SECP256R1())
    unwatched = _ca("unwatched", stranger, _name("x"), stranger)
    other.write_bytes(unwatched.public_bytes(serialization.Encoding.PEM))
    init = init_log_server(
        directory / "logs", count=1, roots=[roots], port=0, passphrase=Secret("bench")
    )
    config = load_log_server_config(init.config)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    chain = (issuing.public_bytes(DER), root.public_bytes(DER))
    ikh = issuer_key_hash(chain[0])
    templates = []
    for n in range(pool):
        precert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(issuing.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(hours=1))
            .not_valid_after(NOW + timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"h{n}.example.com")]), True)
            .add_extension(x509.PrecertPoison(), True)
            .sign(key, hashes.SHA256())
            .public_bytes(DER)
        )
        templates.append((tbs_for_ct(precert), PrecertChainEntry(precert, chain).encode()))
    from ctstatus.ct.sct import log_id
    from ctstatus.keys.files import load_key_file

    loaded = config
    log = loaded.config.log[0]
    passphrase = loaded.config.passphrase_for(log).resolve(loaded.base_dir, "log key")
    signer = load_key_file(loaded.path(log.key), passphrase)
    store = LogStore(
        loaded.path(loaded.config.server.data_dir) / f"{log.name}.sqlite3",
        log_id(signer.public_key()),
    )
    tree = TreeEdge()
    timestamp = int(NOW.timestamp() * 1000)
    batch = 20_000
    started = time.monotonic()
    for start in range(0, entries, batch):
        rows: list[tuple[int, int, bytes]] = []
        new = []
        for index in range(start, min(start + batch, entries)):
            tbs, extra = templates[index % pool]
            entry = TimestampedEntry(
                timestamp, LogEntryType.PRECERT_ENTRY, tbs, ikh, leaf_index_extensions(index)
            )
            leaf_input = MerkleTreeLeaf(entry).encode()
            hashed = leaf_hash(leaf_input)
            tree.append(hashed, rows)
            new.append(
                NewEntry(index, index.to_bytes(8, "big"), hashed, leaf_input, extra, b"", b"")
            )
        store.append(new, rows, [], tree)
    store.close()
    print(f"filled {entries:,} entries in {time.monotonic() - started:.1f} s")
    return init.config, other


def serve_log(config: Path) -> tuple[subprocess.Popen[bytes], Path]:
    process = subprocess.Popen(
        ["taskset", "-c", "0", str(CTSTATUS), "log", "serve", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if b"log list" in line:
            return process, Path(line.decode().rsplit("log list ", 1)[1].strip())
    raise RuntimeError("log server did not start")


def wait_for_head(log_list: Path, size: int) -> None:
    log = load_log_list(log_list).logs[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        sth = httpx.get(f"{log.url}ct/v1/get-sth", timeout=30).json()
        if sth["tree_size"] == size:
            return
        time.sleep(0.5)  # the server signs a head every sth_interval_ms
    raise RuntimeError("no head over the filled tree")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / os.sysconf(
        "SC_CLK_TCK"
    )


def run_ours(
    work: Path, log_list: Path, other: Path | None, entries: int, name: str = "watch"
) -> dict[str, float]:
    """One ``watch --once`` from index 0 into a fresh database ``<name>.db``: ``other`` (a CA
    that issued nothing in the log) is the watched issuer, or None to watch every issuer
    (first checks a day away, so only following is measured). Reports the database's bytes
    per followed entry: rows are kept for watched entries only."""
    issuers = f'issuers = ["{other}"]' if other is not None else 'issuers = "all"'
    database = work / f"{name}.db"
    config = work / f"{name}.toml"
    config.write_text(
        f'database = "sqlite:///{database}"\nlog_list = "{log_list}"\n'
        f'{issuers}\nbatch_size = 1000\ndownload_concurrency = 4\nstart = "beginning"\n'
        # our own loopback log, and certspotter is not throttled either: no 20 requests/s cap
        "timeout_seconds = 60\nlog_requests_per_second = 10000\ngrace_seconds = 86400\n"
        "[alerts]\nstdout = false\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "/usr/bin/time",
            "-f",
            "%U %S",
            str(CTSTATUS),
            "watch",
            "--once",
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    user, system = map(float, result.stderr.strip().splitlines()[-1].split())
    print(result.stdout.strip())
    stored = sum(p.stat().st_size for p in work.glob(f"{name}.db*"))
    return {
        "seconds": elapsed,
        "entries_per_s": entries / elapsed,
        "cpu_s": user + system,
        "db_bytes": stored,
        "bytes_per_entry": stored / entries,
    }


def run_certspotter(work: Path, log_list: Path, entries: int) -> dict[str, float] | None:
    binary = shutil.which("certspotter")
    if binary is None:
        print("certspotter not installed: skipped")
        return None
    config = work / "cs-config"
    config.mkdir()
    (config / "watchlist").write_text(".nothing-matches.example.org\n")
    state = work / "cs-state"
    started = time.monotonic()
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            binary,
            "-logs",
            str(log_list),
            "-state_dir",
            str(state),
            "-watchlist",
            str(config / "watchlist"),
            "-stdout",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "CERTSPOTTER_CONFIG_DIR": str(config)},
    )
    deadline = time.monotonic() + 1800
    done = None
    while time.monotonic() < deadline and process.poll() is None:
        for path in state.glob("logs/*/state.json"):
            try:
                document = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            verified = document.get("verified_position", {}).get("size", 0)
            if verified >= entries:
                done = time.monotonic() - started
        if done is not None:
            break
        time.sleep(0.2)  # polls certspotter's state file for the end of real work
    cpu = cpu_of(process.pid) if process.poll() is None else 0.0
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    if done is None:
        print(
            "certspotter did not finish:",
            process.stderr.read().decode()[-2000:] if process.stderr else "",
        )
        return None
    stored = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
    return {
        "seconds": done,
        "entries_per_s": entries / done,
        "cpu_s": cpu,
        "state_bytes": stored,
        "bytes_per_entry": stored / entries,
    }


def bench_ocsp(work: Path, checks: int) -> dict[str, dict[str, float]]:
    """Checks/s and CPU per check of the watcher's Checker against our responder."""
    import socket

    from ctstatus.ca import profiles
    from ctstatus.ca.bootstrap import init_instance
    from ctstatus.config import new_instance_config
    from ctstatus.instance import Instance
    from ctstatus.keys.assemble import sign_certificate
    from ctstatus.watch.checker import Checker, CheckSettings
    from ctstatus.watch.entries import describe, issuer_key_of
    from ctstatus.watch.lean import LeanHttp
    from ctstatus.watch.store import EntryRow, WatchStore

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory = init_instance(
        work / "ca", new_instance_config(ledger_url="sqlite:///l.db")
    ).directory
    instance = Instance.open(directory)
    ca = instance.config.ca.issuing
    signer = instance.signer(ca)
    issuing = instance.certificate(ca)
    ledger = instance.open_ledger()
    issuer = ledger.issuer_by_name(ca.name)
    assert issuer is not None
    store = WatchStore.open(f"sqlite:///{work / 'checks.db'}")
    key = issuer_key_of(issuing.public_bytes(DER))
    store.add_issuer(key, issuing.public_bytes(DER), ca.name)
    leaf = ec.generate_private_key(ec.SECP256R1())
    rows = []
    for n in range(checks):
        serial = profiles.new_serial()
        builder = profiles.tls_server(
            leaf.public_key(),
            [x509.DNSName(f"b{n}.example.com")],
            issuing,
            serial,
            NOW - timedelta(hours=1),
            90,
            ocsp_url=f"http://127.0.0.1:{port}/ocsp",
            ca_issuers_url="http://pki.example.com/ca.der",
            crl_url="http://pki.example.com/c.crl",
        ).add_extension(x509.PrecertPoison(), critical=True)
        precert = sign_certificate(builder, signer)
        ledger.reserve(
            issuer.id,
            serial,
            not_before=precert.not_valid_before_utc,
            not_after=precert.not_valid_after_utc,
            crl_shard=0,
            actor="bench",
        )
        ledger.mark_precert_signed(issuer.id, serial, precert.public_bytes(DER), actor="bench")
        info = describe(precert)
        info["crl"] = []
        rows.append(
            EntryRow(n, True, 0, key, format(serial, "x"), n.to_bytes(32, "big"), True, info, None)
        )
    ledger.close()
    with store.engine.begin() as conn:
        store._queue_many(conn, [(row, 0.0) for row in rows])
    server = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            str(CTSTATUS),
            "-i",
            str(directory),
            "ocsp",
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)  # waits on the responder's start-up
    wait_idle(server.pid)  # its sweep pre-signs every serial's responses first
    os.sched_setaffinity(0, {1})

    async def timed(checker: Checker) -> dict[str, float]:
        started, cpu, served = time.monotonic(), time.process_time(), cpu_of(server.pid)
        checked = (await checker.run_due()).checked
        elapsed = time.monotonic() - started
        cpu, served = time.process_time() - cpu, cpu_of(server.pid) - served
        return {
            "checks": checked,
            "seconds": round(elapsed, 3),
            "checks_per_s": round(checked / elapsed, 1),
            "checker_cpu_ms_per_check": round(1000 * cpu / checked, 3),
            "checks_per_checker_cpu_s": round(checked / cpu, 1),
            "responder_cpu_ms_per_check": round(1000 * served / checked, 3),
        }

    async def run() -> dict[str, dict[str, float]]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as http:
            checker = Checker(store, http, CheckSettings(concurrency=32, timeout=30))
            if not os.environ.get("BENCH_HTTPX"):
                checker.use(http, LeanHttp())
            # First checks: the responder reads each serial's pre-signed response from its
            # database once (cache misses); the SHA-256 and random-serial probes run here.
            first = await timed(checker)
            with store.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE watch_certs SET due_at = 0")
            # Rechecks (the watcher's steady state): the responder answers from memory.
            if os.environ.get("BENCH_PROFILE"):
                import cProfile
                import pstats

                # CPU time, not wall time: the machine is shared, and a profile by wall time
                # charges other processes' time slices to whatever call was running.
                profile = cProfile.Profile(time.process_time)
                profile.enable()
                again = await timed(checker)
                profile.disable()
                stats = pstats.Stats(profile)
                stats.sort_stats("tottime").print_stats(30)
                stats.sort_stats("cumulative").print_stats(30)
            else:
                again = await timed(checker)
            return {"first": first, "recheck": again}

    passes = asyncio.run(run())
    problems = store.problems(open_only=True)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    os.sched_setaffinity(0, {0, 1})
    store.close()
    return {**passes, "problems": {"open": len(problems)}}


def wait_idle(pid: int, *, quiet: float = 0.05, timeout: float = 300) -> None:
    """Until the process used under ``quiet`` CPU seconds in each of two half-second spans."""
    deadline = time.monotonic() + timeout
    calm, last = 0, cpu_of(pid)
    while calm < 2 and time.monotonic() < deadline:
        time.sleep(0.5)  # samples the responder's CPU time
        now = cpu_of(pid)
        calm, last = (calm + 1 if now - last < quiet else 0), now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--skip-follow", action="store_true")
    parser.add_argument("--skip-ocsp", action="store_true")
    parser.add_argument(
        "--storage", action="store_true", help="also follow with every issuer watched"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    try:
        if not args.skip_follow:
            config, other = fill(work, args.entries, args.pool)
            server, log_list = serve_log(config)
            try:
                wait_for_head(log_list, args.entries)
                ours = run_ours(work, log_list, other, args.entries)
                print(f"ctstatus watch: {ours}")
                if args.storage:
                    every = run_ours(work, log_list, None, args.entries, "watch-all")
                    print(f"ctstatus watch, every issuer watched: {every}")
                theirs = run_certspotter(work, log_list, args.entries)
                print(f"certspotter:    {theirs}")
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
        if not args.skip_ocsp:
            print(f"ocsp: {bench_ocsp(work, args.checks)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
