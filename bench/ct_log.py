"""Benchmark the CT log server: add-pre-chain submissions/s and get-entries entries/s.

    .venv/bin/python bench/ct_log.py [--seconds 10] [--connections 64] [--profile]

Starts ``ctstatus log serve`` (one log) pinned to core 0 with ``taskset``, generates unique
precertificates, and drives the server with ``wrk`` (Debian ``wrk``) pinned to core 1: first
``add-pre-chain`` with a different precertificate in every request, then ``get-entries`` with
random start offsets (each answered with up to ``get_entries_cap`` entries). Afterwards it checks
that the tree grew by exactly the number of 200 answers. ``--profile`` records the server with
py-spy (``pip install py-spy``) and prints its top functions. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyspy import collapsed_stacks, print_self_time  # bench/pyspy.py

DER = serialization.Encoding.DER

SUBMIT_LUA = r"""
local bodies = {}
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines(args[1]) do table.insert(bodies, line) end
  counter = id * math.floor(#bodies / tonumber(args[2]))
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
end
"""

ENTRIES_LUA = r"""
local size = 0
local batch = 1000
function init(args)
  size = tonumber(args[1])
  batch = tonumber(args[2])
  math.randomseed(12345 + os.time())
end
function request()
  local start = math.random(0, size - batch)
  return wrk.format("GET", wrk.path .. "?start=" .. start .. "&end=" .. (start + batch - 1))
end
"""


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, x509.Certificate]:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())

    def ca(subject: str, issuer: str, public: ec.EllipticCurvePublicKey) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256())
        )

    root = ca("bench root", "bench root", root_key.public_key())
    issuing = ca("bench issuing CA", "bench root", key.public_key())
    return key, root, issuing


def precert_bodies(
    key: ec.EllipticCurvePrivateKey, issuing: x509.Certificate, count: int
) -> list[str]:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    issuing_b64 = base64.b64encode(issuing.public_bytes(DER)).decode()
    bodies = []
    for i in range(count):
        precert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(issuing.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=90))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(f"h{i}.bench.example.com")]),
                critical=True,
            )
            .add_extension(x509.PrecertPoison(), critical=True)
            .sign(key, hashes.SHA256())
        )
        der = base64.b64encode(precert.public_bytes(DER)).decode()
        bodies.append(json.dumps({"chain": [der, issuing_b64]}))
    return bodies


def run_wrk(
    script: Path, url: str, seconds: int, connections: int, threads: int, *args: str
) -> dict[str, float]:
    command = [
        "taskset", "-c", "1", "wrk", "-t", str(threads), "-c", str(connections),
        "-d", f"{seconds}s", "--latency", "-s", str(script), url, "--", *args,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    print(output)
    requests = float(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    p50 = re.search(r"50%\s+(\S+)", output)
    p99 = re.search(r"99%\s+(\S+)", output)
    return {
        "requests": requests,
        "rate": rate,
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
        "p50": p50.group(1) if p50 else "?",  # type: ignore[dict-item]
        "p99": p99.group(1) if p99 else "?",  # type: ignore[dict-item]
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--precerts", type=int, default=40_000)
    parser.add_argument("--profile", action="store_true", help="record the server with py-spy")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    os.sched_setaffinity(0, {1})  # keep this process off the server's core

    work = Path(tempfile.mkdtemp(prefix="ctlog-bench-"))
    key, root, issuing = make_ca()
    root_pem = work / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    from ctstatus.ctlog.setup import init_log_server
    from ctstatus.secrets import Secret

    result = init_log_server(
        work / "logs", count=1, roots=[root_pem], port=0, passphrase=Secret("bench")
    )
    started = time.perf_counter()
    bodies = precert_bodies(key, issuing, options.precerts)
    print(f"generated {len(bodies)} precertificates in {time.perf_counter() - started:.1f} s")
    body_file = work / "bodies.txt"
    body_file.write_text("\n".join(bodies) + "\n")
    (work / "submit.lua").write_text(SUBMIT_LUA)
    (work / "entries.lua").write_text(ENTRIES_LUA)

    log_list = result.config.parent / "loglist.json"
    command = [sys.executable, "-m", "ctstatus", "log", "serve", "--config", str(result.config)]
    server = subprocess.Popen(["taskset", "-c", "0", *command], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not log_list.exists():
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the log server did not start")
            time.sleep(0.05)
        url = json.loads(log_list.read_text())["operators"][0]["logs"][0]["url"]
        base, log_name = url.rstrip("/").rsplit("/", 1)
        client = httpx.Client(timeout=30)
        client.get(url + "ct/v1/get-sth").raise_for_status()

        spy = None
        if options.profile:
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(server.pid), "--format", "raw", "--gil",
                 "-o", str(work / "profile.txt"), "--duration", str(options.seconds)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        threads = 2
        cpu_before, wall_before = cpu_seconds(server.pid), time.monotonic()
        submit = run_wrk(
            work / "submit.lua",
            url + "ct/v1/add-pre-chain",
            options.seconds,
            options.connections,
            threads,
            str(body_file),
            str(threads),
        )
        submit_cpu = (cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - wall_before)
        if spy is not None:
            spy.wait()
            print_profile(work / "profile.txt")
        sth = client.post(f"{base}/admin/{log_name}/sth").json()
        accepted = submit["requests"] - submit["non_2xx"]
        print(
            f"add-pre-chain: {submit['rate']:.0f} submissions/s "
            f"({options.connections} connections, p50 {submit['p50']}, p99 {submit['p99']}); "
            f"tree size {sth['tree_size']}, 200s {accepted:.0f}, non-2xx {submit['non_2xx']:.0f}; "
            f"server CPU {100 * submit_cpu:.0f}% of one core"
        )
        if submit["requests"] > len(bodies):
            print("warning: more requests than precertificates; some were resubmissions")

        size = int(sth["tree_size"])
        cap = 1000
        cpu_before, wall_before = cpu_seconds(server.pid), time.monotonic()
        entries = run_wrk(
            work / "entries.lua",
            url + "ct/v1/get-entries",
            options.seconds,
            8,
            threads,
            str(size),
            str(cap),
        )
        entries_cpu = (cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - wall_before)
        print(
            f"get-entries: {entries['rate']:.1f} requests/s x {cap} = "
            f"{entries['rate'] * cap:.0f} entries/s (8 connections, p50 {entries['p50']}); "
            f"server CPU {100 * entries_cpu:.0f}% of one core"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def print_profile(path: Path) -> None:
    """Self and inclusive time per function from py-spy's raw (collapsed stack) output."""
    stacks = collapsed_stacks(path)
    if not stacks:
        print("(no profile recorded)")
        return
    overall = sum(samples for _, samples in stacks)
    print_self_time(stacks, "py-spy self time (top 20):", top=20, width=140)
    inclusive: dict[str, int] = {}
    for frames, samples in stacks:
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    print("py-spy inclusive time, ctstatus functions (top 20):")
    ours = {f: c for f, c in inclusive.items() if "ctstatus/" in f}
    for frame, samples in sorted(ours.items(), key=lambda item: -item[1])[:20]:
        print(f"  {100 * samples / overall:5.1f}%  {frame[:140]}")


if __name__ == "__main__":
    main()
