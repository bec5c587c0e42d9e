"""A CA whose responder misbehaves in each way the incidents describe: the watcher, following a
real CT log and asking over real HTTP, reports each with its stable code, and nothing else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctstatus.watch.config import WatchConfig
from ctstatus.watch.runner import Watcher

from .conftest import Logs, MisbehavingApp, Served, WatchCa, start_logs, stop_logs

LOG = "alpha"
CASES = {
    # mode of the OCSP URL, mode of the CRL URL -> the codes expected on the certificate
    "good": ("good", "ok", set()),
    "incident": ("notknown", "ok", {"ocsp.unauthorized"}),
    "unknown": ("unknown", "ok", {"ocsp.unknown"}),
    "malformed": ("malformed", "ok", {"ocsp.malformed"}),
    "sha256-certid": ("sha256id", "ok", {"ocsp.certid_hash_algorithm"}),
    "expired": ("expired", "ok", {"ocsp.next_update_passed"}),
    "bad-signature": ("badsig", "ok", {"ocsp.bad_signature"}),
    "http-404": ("404", "ok", {"transport.http_status"}),
    "hangs": ("hang", "ok", {"transport.timeout"}),
    "crl-revoked-ocsp-good": ("good", "revoked", {"cross.crl_revoked_ocsp_good"}),
    "hold": ("hold", "ok", {"ocsp.certificate_hold", "cross.ocsp_revoked_not_in_crl"}),
    "no-source": (None, None, {"cross.no_status_source"}),
}


@pytest.fixture(scope="module")
def watched(
    tmp_path_factory: pytest.TempPathFactory, bad_ca: tuple[WatchCa, Served, MisbehavingApp]
) -> Iterator[tuple[Watcher, dict[str, int], Logs]]:
    ca, _, _ = bad_ca
    work = tmp_path_factory.mktemp("misbehaving")
    logs = start_logs(work / "logs", [ca.root])
    serials = {}
    for name, (ocsp_mode, crl_mode, _) in CASES.items():
        leaf = ca.precert(ocsp_mode, crl_mode)
        if crl_mode == "revoked":
            ca.revoked_in_crl.add(leaf.serial)
        logs.submit(LOG, [leaf.precert, ca.issuing_der])
        serials[name] = leaf.serial
    liar = ca.precert("liar", "ok")
    logs.submit(LOG, [liar.precert, ca.issuing_der])
    logs.publish(LOG)
    config = WatchConfig(
        database=f"sqlite:///{work / 'watch.db'}",
        log_list=str(logs.log_list),
        start="beginning",
        grace_seconds=0,
        timeout_seconds=1,
        alerts={"stdout": False},
    )
    watcher = Watcher(config, work)
    yield watcher, serials, logs
    watcher.close()
    stop_logs(logs)


def test_each_misbehaviour_has_its_code(watched: tuple[Watcher, dict[str, int], Logs]) -> None:
    watcher, serials, _ = watched
    result = asyncio.run(watcher.run_once())
    assert result.follow[0].verified_size == len(CASES) + 1
    assert result.checks.checked == len(CASES) + 1
    problems = watcher.store.problems(open_only=True)
    by_serial: dict[str, set[str]] = {}
    for problem in problems:
        by_serial.setdefault(problem.subject.rsplit(":", 1)[-1], set()).add(problem.code)
    for name, (_, _, expected) in CASES.items():
        assert by_serial.get(format(serials[name], "x"), set()) == expected, name
    probes = {p.subject: p.code for p in problems if p.subject.startswith("probe:")}
    assert list(probes.values()) == ["ocsp.random_serial_good"], probes
    assert probes.popitem()[0].endswith("/ocsp/liar")
    # Evidence: the raw response and the timings are kept.
    unknown = next(p for p in problems if p.code == "ocsp.unknown")
    assert unknown.evidence["response"]["body_length"] > 0
    assert "elapsed_ms" in unknown.evidence["response"]
    json.dumps([p.to_json() for p in problems])  # the report's JSON form


def test_a_second_pass_opens_nothing_new(watched: tuple[Watcher, dict[str, int], Logs]) -> None:
    watcher, _, _ = watched
    before = {p.id for p in watcher.store.problems(open_only=True)}
    # Everything is due again (recheck): force it by moving the due times.
    with watcher.store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE watch_certs SET due_at = 0")
    result = asyncio.run(watcher.run_once())
    assert result.new_problems == 0
    assert {p.id for p in watcher.store.problems(open_only=True)} == before


def test_config_path_is_relative(tmp_path: Path) -> None:
    from ctstatus.watch.runner import _database_url

    assert _database_url("sqlite:///w.db", tmp_path) == f"sqlite:///{tmp_path}/w.db"
