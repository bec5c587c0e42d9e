"""The README's curl lines, run as written (only ``S=`` points at the test's stack) against a
real ``ctstatus up --demo``: what a new user pastes must work."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.stack.conftest import Up

README = Path(__file__).parents[2] / "README.md"


def readme_api_lines() -> str:
    text = README.read_text()
    section = text.split("## Using it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    [block] = [b for b in blocks if "$API/certificates" in b]
    return block


def test_the_readme_curl_lines_work(demo_stack: Up, tmp_path: Path) -> None:
    script = readme_api_lines()
    assert script.startswith("S=ctstatus-state")
    script = script.replace("S=ctstatus-state", f"S={demo_stack.state}", 1)
    for attempt in range(3):  # the demo's faulty moments make a 503; a new order then
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script.replace("order-1", f"order-{attempt}")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if "CT policy" not in (tmp_path / "issued.json").read_text():
            break
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    serial = lines[0]
    first = json.loads((tmp_path / "issued.json").read_text())["serial"]
    assert serial == first, run.stdout  # the retry with the same request_id: the same serial
    assert lines[1] == "issuing-ca issued"
    assert "chain.pem: good" in run.stdout  # openssl ocsp, before the revocation
    assert "Response verify OK" in run.stderr
    assert "revoked keyCompromise" in run.stdout
    assert lines[-4:] == ["reserve", "precert_signed", "issued", "revoke"]
