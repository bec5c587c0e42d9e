"""Debian's certspotter with ``-start_at_end`` on the synthetic 2^31-entry log, as our peer.

certspotter rebuilds the log's right edge from the last leaf's audit path and checks it
against the signed root, then downloads what the log appends and checks the new root: the
synthetic log's proofs must satisfy a monitor we did not write, and it must find the watched
entries appended after its start (and only those).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests import certspotter as spotter
from tests.certspotter import certspotter_binary

from .conftest import MisbehavingApp, Served, WatchCa
from .synthlog import SIZE, SyntheticLog
from .test_synthetic_log import FILLER, FIRST_REAL, add_entries, synth  # noqa: F401

pytestmark = pytest.mark.certspotter


@pytest.fixture(scope="module")
def certspotter() -> str:
    return certspotter_binary()


def _problems(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if ("error" in line.lower() or "misbehav" in line.lower())
        and "context canceled" not in line
    ]


def test_certspotter_starts_at_the_end_and_finds_the_new_watched_entries(
    certspotter: str,
    synth: SyntheticLog,  # noqa: F811
    bad_ca: tuple[WatchCa, Served, MisbehavingApp],
    tmp_path: Path,
) -> None:
    ca = bad_ca[0]
    log_list = synth.write_log_list(tmp_path / "loglist.json", tiled=False)
    url = synth.base + "/"
    start = FILLER + FIRST_REAL

    def started(stderr: str, _events: int) -> bool:
        return f"starting from {start}" in stderr or "error" in stderr.lower()

    first = spotter.run_certspotter(
        certspotter, log_list, tmp_path, ".example.com", done=started, seconds=30,
        extra_args=["-start_at_end"],
    )  # fmt: skip
    assert f"brand new log {url} (starting from {start})" in first.stderr, first.stderr
    assert _problems(first.stderr) == [], first.stderr
    assert first.events == []
    assert synth.requests["get-entries"] <= 1  # the last leaf, never the 2^31 prefix

    serials = add_entries(synth, ca, watched=5, unwatched=SIZE - synth.size - 5)
    assert synth.size == SIZE

    def found(stderr: str, events: int) -> bool:
        return events >= len(serials) or "does not match" in stderr

    second = spotter.run_certspotter(
        certspotter, log_list, tmp_path, ".example.com", done=found, seconds=90,
        extra_args=["-start_at_end"],
    )  # fmt: skip
    assert _problems(second.stderr) == [], second.stderr
    reported = {e["SERIAL"].lower().lstrip("0") for e in second.events}
    assert reported == {s.lstrip("0") for s in serials}, second.events
    assert {int(e["ENTRY_INDEX"]) for e in second.events} == set(serials.values())
    assert all("example.org" not in e.get("DNS_NAMES", "") for e in second.events)
