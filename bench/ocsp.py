#!/usr/bin/env python3
"""OCSP responder benchmark: ctstatus vs `cfssl ocspserve` vs `openssl ocsp`, driven by wrk.

One command (as root, for the network namespace and CPU pinning)::

    .venv/bin/python bench/ocsp.py [--duration 8] [--connections 8,64,256] [--rounds 1]

What it does, in one run:

* makes a throwaway instance (``ctstatus init``, SQLite ledger) and ``--serials`` certificates
  issued by its issuing CA (a tenth of them revoked); one issued certificate is the target;
* serves the same certificates with
  - ctstatus (``ctstatus ocsp serve``: pre-signed responses, answered from memory),
  - ``cfssl ocspserve`` (pre-signed with ``cfssl ocspsign``; Debian's 2016 build answers POST
    only: GET always gets 400),
  - ``openssl ocsp -index`` (signs every response live; restarted before every run, because it
    spins at 100% CPU once a client connects and closes without a request);
* checks each server's answer with ``openssl ocsp`` ("Response verify OK", "good");
* drives each with wrk (keep-alive, 1 thread) for POST and GET at each connection count;
  every server is pinned to CPU 0 and wrk to CPU 1 (``taskset``), so each gets the same budget,
  all at the same raised priority (``nice -n -10``); runs are interleaved round by round and the
  median of ``--rounds`` is reported, so that other load on the machine hits all servers alike;
* prints requests/s, p50/p99 latency, non-2xx counts, and the ratios the goal is stated in.

Everything runs inside a fresh network namespace with only loopback up (``unshare --net``), so
``openssl ocsp -port``, which binds every interface, is reachable from nowhere else. The wrk Lua
scripts override ``wrk.connect`` so wrk's start-up probe (connect, then close) never happens.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CTSTATUS = BIN / "ctstatus"
PORTS = {"ctstatus": 18100, "cfssl": 18200, "openssl": 18300}
SERVER_CPU = "0"
WRK_CPU = "1"

NICE = ["nice", "-n", "-10"] if os.geteuid() == 0 else []
"""Same raised priority for every server and wrk: less noise from whatever else runs."""
NO_PROBE = "wrk.connect = function(addr) return true end\n"  # no start-up probe connection


# ------------------------------------------------------------------------------------ fixtures


def sh(*args: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]


def make_fixture(work: Path, serials: int) -> dict[str, Path | str | int]:
    """Instance, certificates, the request, cfssl's responses file and openssl's index."""
    instance = work / "instance"
    done = sh(CTSTATUS, "init", instance, "--base-url", "http://pki.example.com")
    if done.returncode != 0:
        sys.exit(f"ctstatus init failed: {done.stderr}")

    sys.path.insert(0, str(ROOT / "src"))
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from ctstatus.ca import profiles
    from ctstatus.instance import Instance
    from ctstatus.keys.assemble import sign_certificate
    from ctstatus.ledger import RevocationReason

    inst = Instance.open(instance)
    config = inst.config
    ca = config.ca.issuing
    signer = inst.signer(ca)
    issuer_cert = inst.certificate(ca)
    ledger = inst.open_ledger()
    issuer = ledger.issuer_by_name(ca.name)
    assert issuer is not None
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC).replace(microsecond=0)
    index_lines = []
    target_pem = work / "target.pem"
    for n in range(serials):
        serial = profiles.new_serial()
        shard = serial % config.profiles.tls_server.crl_shards
        builder = profiles.tls_server(
            leaf_key.public_key(),
            [x509.DNSName(f"host{n}.example.com")],
            issuer_cert,
            serial,
            now - timedelta(hours=1),
            90,
            ocsp_url=config.urls.ocsp_url(ca.name),
            ca_issuers_url=config.urls.ca_issuers_url(ca.name),
            crl_url=config.urls.crl_url(ca.name, shard),
        )
        ledger.reserve(
            issuer.id,
            serial,
            not_before=now - timedelta(hours=1),
            not_after=now + timedelta(days=90),
            crl_shard=shard,
            actor="bench",
        )
        precert = sign_certificate(
            builder.add_extension(x509.PrecertPoison(), critical=True), signer
        )
        ledger.mark_precert_signed(
            issuer.id, serial, precert.public_bytes(serialization.Encoding.DER), actor="bench"
        )
        cert = sign_certificate(builder, signer)
        ledger.mark_issued(
            issuer.id, serial, cert.public_bytes(serialization.Encoding.DER), actor="bench"
        )
        expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
        status = "V"
        if n % 10 == 9:
            ledger.revoke(issuer.id, serial, RevocationReason.SUPERSEDED, actor="bench")
            status = "R"
        revoked = now.strftime("%y%m%d%H%M%SZ") + ",superseded" if status == "R" else ""
        index_lines.append(f"{status}\t{expiry}\t{revoked}\t{serial:X}\tunknown\t/CN=host{n}\n")
        if n == 0:
            target_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ledger.close()
    (work / "index.txt").write_text("".join(index_lines))

    # cfssl and openssl need the issuing CA key unencrypted; it is a throwaway instance.
    key = signer.private_key()
    assert key is not None
    (work / "ca.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    issuer_pem = instance / "certs" / "issuing-ca.pem"
    chain = work / "chain.pem"
    chain.write_bytes((instance / "certs" / "root-ca.pem").read_bytes() + issuer_pem.read_bytes())

    signed = sh("cfssl", "ocspsign", "-ca", issuer_pem, "-responder", issuer_pem,
                "-responder-key", work / "ca.key", "-cert", target_pem,
                "-status", "good")  # fmt: skip
    if signed.returncode != 0:
        sys.exit(f"cfssl ocspsign failed: {signed.stderr}")
    (work / "cfssl-responses").write_text(json.loads(signed.stdout)["ocspResponse"] + "\n")

    request = work / "request.der"
    sh("openssl", "ocsp", "-issuer", issuer_pem, "-cert", target_pem, "-no_nonce",
       "-reqout", request, check=True)  # fmt: skip
    encoded = urllib.parse.quote(base64.b64encode(request.read_bytes()).decode(), safe="")
    return {
        "instance": instance,
        "issuer": issuer_pem,
        "chain": chain,
        "target": target_pem,
        "request": request,
        "get_path": f"/ocsp/{encoded}",
    }


# ------------------------------------------------------------------------------------- servers


def wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def start(name: str, fx: dict[str, Path | str | int], work: Path) -> subprocess.Popen[bytes]:
    port = PORTS[name]
    pin = [*NICE, "taskset", "-c", SERVER_CPU]
    if name == "ctstatus":
        args = [*pin, CTSTATUS, "-i", fx["instance"], "ocsp", "serve", "--port", str(port),
                "--no-publish-crls"]  # fmt: skip
        env = {**os.environ}
    elif name == "cfssl":
        args = [*pin, "cfssl", "ocspserve", "-address", "127.0.0.1", "-port", str(port),
                "-responses", work / "cfssl-responses", "-loglevel", "5"]  # fmt: skip
        env = {**os.environ, "GOMAXPROCS": "1"}
    else:
        args = [*pin, "openssl", "ocsp", "-index", work / "index.txt", "-port", str(port),
                "-rsigner", fx["issuer"], "-rkey", work / "ca.key", "-CA", fx["issuer"],
                "-ndays", "4"]  # fmt: skip
        env = {**os.environ}
    log_path = work / f"{name}.log"
    seen = log_path.stat().st_size if log_path.exists() else 0
    log = log_path.open("ab")
    proc = subprocess.Popen([str(a) for a in args], stdout=log, stderr=log, env=env)
    if name == "openssl":
        # never probe it with a bare connect: that alone wedges it (see the module docstring)
        deadline = time.monotonic() + 30
        while b"waiting for OCSP client" not in log_path.read_bytes()[seen:]:
            if time.monotonic() > deadline:
                raise RuntimeError("openssl ocsp did not start")
            time.sleep(0.05)
    else:
        wait_port(port)
    if name == "ctstatus":
        # let the refresher pre-sign everything before measuring
        deadline = time.monotonic() + 120
        while b"signed" not in (work / "ctstatus.log").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def verify(name: str, fx: dict[str, Path | str | int]) -> str:
    out = sh("openssl", "ocsp", "-issuer", fx["issuer"], "-cert", fx["target"], "-no_nonce",
             "-url", f"http://127.0.0.1:{PORTS[name]}/ocsp", "-CAfile", fx["chain"],
             "-timeout", "10")  # fmt: skip
    text = out.stdout + out.stderr
    ok = "Response verify OK" in text and f"{fx['target']}: good" in text
    return "verified good" if ok else f"NOT VERIFIED: {text.strip()[:200]}"


# ----------------------------------------------------------------------------------------- wrk


@dataclass
class Result:
    server: str
    method: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: str = ""
    per_cpu: float = 0.0
    runs: list[float] = field(default_factory=list)


def lua(work: Path, fx: dict[str, Path | str | int], method: str) -> Path:
    path = work / f"{method.lower()}.lua"
    if method == "POST":
        body = "".join(f"\\{b}" for b in Path(str(fx["request"])).read_bytes())
        script = (
            f'wrk.method = "POST"\nwrk.body = "{body}"\n'
            'wrk.headers["Content-Type"] = "application/ocsp-request"\n'
        )
    else:
        script = 'wrk.method = "GET"\n'
    path.write_text(NO_PROBE + script)
    return path


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Run = tuple[float, float, float, int, str, float]


def run_wrk(url: str, script: Path, connections: int, duration: int, pid: int) -> Run:
    """(req/s, p50 ms, p99 ms, non-2xx, socket errors, requests per CPU-second of the server)."""
    cpu_before = cpu_seconds(pid)
    out = sh(*NICE, "taskset", "-c", WRK_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
             "--latency", "-s", script, url).stdout  # fmt: skip
    cpu = cpu_seconds(pid) - cpu_before
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"\s(50|99)%\s+([\d.]+\w+)", out))
    p50 = _ms(*re.match(r"([\d.]+)(\w+)", lat["50"]).groups())  # type: ignore[union-attr]
    p99 = _ms(*re.match(r"([\d.]+)(\w+)", lat["99"]).groups())  # type: ignore[union-attr]
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    per_cpu = total / cpu if cpu > 0 else 0.0
    return (
        rps,
        p50,
        p99,
        int(non.group(1)) if non else 0,
        errors.group(0) if errors else "",
        per_cpu,
    )


# ---------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", default="8,64,256", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every run; report medians")
    parser.add_argument("--serials", type=int, default=1000)
    parser.add_argument("--servers", default="ctstatus,cfssl,openssl")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    for tool in ("wrk", "cfssl", "openssl", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(
                f"{tool} is missing (Debian: apt-get install wrk golang-cfssl openssl util-linux)"
            )
    if not args.in_netns:
        if os.geteuid() == 0 and shutil.which("unshare"):
            command = [sys.executable, __file__, *sys.argv[1:], "--in-netns"]
            inner = "ip link set lo up && exec " + " ".join(map(_quote, command))
            os.execvp("unshare", ["unshare", "--net", "sh", "-c", inner])  # noqa: S606
        print("warning: not root: no network namespace; openssl ocsp binds every interface")

    connections = [int(c) for c in args.connections.split(",")]
    servers = args.servers.split(",")
    work = Path(tempfile.mkdtemp(prefix="ocsp-bench-"))
    print(f"# OCSP benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, work dir {work}")
    print(f"# {os.cpu_count()} CPUs; servers pinned to CPU {SERVER_CPU}, wrk to CPU {WRK_CPU}; "
          f"{args.duration} s per run, {args.rounds} round(s)")  # fmt: skip
    t0 = time.monotonic()
    fx = make_fixture(work, args.serials)
    print(f"# fixture: {args.serials} certificates in {time.monotonic() - t0:.1f} s")

    # Start every server once and verify it; then interleave the runs (round by round, server
    # by server) so that noise from anything else on the machine spreads over all of them.
    procs = {name: start(name, fx, work) for name in servers}
    for name in servers:
        print(f"# {name}: {verify(name, fx)}")
        if name == "openssl":
            stop(procs[name])  # the check's connection may have wedged it
    plan = [
        (name, method, count)
        for name in servers
        for method in (["POST"] if name == "cfssl" else ["POST", "GET"])
        for count in connections
    ]
    measured: dict[tuple[str, str, int], list[Run]] = {key: [] for key in plan}
    for round_ in range(args.rounds):
        for name, method, count in plan:
            script = lua(work, fx, method)
            path = "/ocsp" if method == "POST" else str(fx["get_path"])
            if name == "openssl" and method == "GET":
                path = path.removeprefix("/ocsp")  # it only takes the request at the root
            url = f"http://127.0.0.1:{PORTS[name]}{path}"
            if name == "openssl":  # it wedges after wrk's connections close: a fresh one
                procs[name] = start(name, fx, work)
            else:
                run_wrk(url, script, count, 2, procs[name].pid)  # warm-up
            run = run_wrk(url, script, count, args.duration, procs[name].pid)
            if name == "openssl":
                stop(procs[name])
            measured[(name, method, count)].append(run)
            rps, p50, p99, non, errors, per_cpu = run
            print(f"[{round_ + 1}/{args.rounds}] {name:9} {method:4} c={count:<4} "
                  f"{rps:>9.0f} req/s  {per_cpu:>9.0f} req/CPU-s  p50 {p50:6.2f} ms  "
                  f"p99 {p99:6.2f} ms  non-2xx {non} {errors}", flush=True)  # fmt: skip
    for name, proc in procs.items():
        if name != "openssl":
            stop(proc)
    results: list[Result] = []
    for (name, method, count), runs in measured.items():
        median = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        per_cpu = statistics.median(r[5] for r in runs)
        results.append(
            Result(name, method, count, *median[:5], per_cpu=per_cpu, runs=[r[0] for r in runs])
        )

    print()
    print("| server | method | connections | req/s | req/CPU-s | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        rps = (
            f"{r.rps:.0f}"
            if len(r.runs) == 1
            else f"{r.rps:.0f} (runs {', '.join(f'{x:.0f}' for x in r.runs)})"
        )
        print(f"| {r.server} | {r.method} | {r.connections} | {rps} | {r.per_cpu:.0f} "
              f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.non_2xx} |")  # fmt: skip

    def get(server: str, method: str, count: int) -> Result | None:
        return next(
            (r for r in results if (r.server, r.method, r.connections) == (server, method, count)),
            None,
        )

    print()
    for count in connections:
        ours_post, ours_get = get("ctstatus", "POST", count), get("ctstatus", "GET", count)
        cfssl, openssl = get("cfssl", "POST", count), get("openssl", "POST", count)
        parts = [f"c={count}:"]
        if ours_post and cfssl:
            parts.append(f"ctstatus/cfssl POST {ours_post.rps / cfssl.rps:.2f}x")
            parts.append(f"(per CPU-s {ours_post.per_cpu / cfssl.per_cpu:.2f}x)")
        if ours_post and openssl:
            parts.append(f"ctstatus/openssl POST {ours_post.rps / openssl.rps:.2f}x")
        if ours_post and ours_get:
            parts.append(f"ctstatus GET/POST {ours_get.rps / ours_post.rps:.2f}x")
        if ours_post and ours_get:
            parts.append(
                f"ctstatus p99 POST {ours_post.p99_ms:.2f} ms, GET {ours_get.p99_ms:.2f} ms"
            )
        print("  ".join(parts))
    if args.keep:
        print(f"# kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(str(arg))


if __name__ == "__main__":
    main()
