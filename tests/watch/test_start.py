"""The ``start`` and ``log_start`` settings: what is accepted, what is refused, which log gets
which (following from them is tested on the synthetic log, test_synthetic_log.py)."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from ctstatus.errors import ConfigError
from ctstatus.watch.config import WatchConfig, load_watch_config
from ctstatus.watch.runner import log_starts
from ctstatus.watch.start import BEGINNING, END, StartAt, parse_start

from .synthlog import SyntheticLog


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("end", END),
        ("beginning", BEGINNING),
        (0, StartAt("index", index=0)),
        (2**40, StartAt("index", index=2**40)),
        ("2026-12-01T00:00:00Z", StartAt("time", time_ms=1_796_083_200_000)),
        ("2026-12-01T01:00:00+01:00", StartAt("time", time_ms=1_796_083_200_000)),
        (datetime(2026, 12, 1, tzinfo=UTC), StartAt("time", time_ms=1_796_083_200_000)),
    ],
)
def test_accepted(value: object, expected: StartAt) -> None:
    assert parse_start(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("start", 'not "end"'),
        ("2026-12-01", 'not "end"'),  # a date is not a point in time
        ("2026-12-01T00:00:00", "no UTC offset"),
        (datetime(2026, 12, 1), "no UTC offset"),
        (-1, "negative"),
        (True, "must be"),
        (1.5, "must be"),
    ],
)
def test_refused(value: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_start(value)


def test_toml_takes_an_index_a_native_datetime_and_names_a_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "watch.toml"
    path.write_text(
        'log_list = "l.json"\nstart = 2026-12-01T00:00:00Z\n'
        '[log_start]\n"Some Log" = 12345\n"https://ct.example/x/" = "beginning"\n'
    )
    config, _ = load_watch_config(path)
    assert parse_start(config.start) == StartAt("time", time_ms=1_796_083_200_000)
    assert config.log_start == {"Some Log": 12345, "https://ct.example/x/": "beginning"}
    assert WatchConfig(log_list="l.json").start == "end"  # the default for a new log
    path.write_text('log_list = "l.json"\nstart = "yesterday"\n')
    with pytest.raises(ConfigError, match="start"):
        load_watch_config(path)
    assert tomllib.loads("s = 2026-12-01T00:00:00Z")["s"].tzinfo is not None
    with pytest.raises(ValidationError):
        WatchConfig(log_list="l.json", log_start={"x": "soon"})


def test_log_start_by_description_url_or_id(tmp_path: Path) -> None:
    from ctstatus.ct.loglist import log_list_document, parse_log_list

    logs = [SyntheticLog(0, name=f"s{n}") for n in range(3)]
    for n, log in enumerate(logs):
        log.base = f"http://127.0.0.1:{1000 + n}"
    listed = [logs[0].as_log(tiled=False), logs[1].as_log(tiled=True), logs[2].as_log(tiled=False)]
    log_list = parse_log_list(json.dumps(log_list_document(listed)))
    config = WatchConfig(
        log_list="x",
        start=100,
        log_start={listed[0].description: "beginning", listed[1].log_id_b64: "end"},
    )
    assert log_starts(config, log_list) == {
        listed[0].log_id_b64: BEGINNING,
        listed[1].log_id_b64: END,
        listed[2].log_id_b64: StartAt("index", index=100),
    }
    typo = WatchConfig(log_list="x", log_start={"https://ct.example.invalid/": "end"})
    with pytest.raises(ConfigError, match="no log of the log list"):
        log_starts(typo, log_list)
    twice = WatchConfig(
        log_list="x",
        log_start={listed[2].description: "end", (listed[2].url or "").rstrip("/"): 5},
    )
    with pytest.raises(ConfigError, match="twice"):
        log_starts(twice, log_list)
