"""Browser tests use Playwright with Debian's chromium (never ``playwright install``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.stack.conftest import demo_stack  # noqa: F401 (a fixture)

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    required = os.environ.get("CTSTATUS_REQUIRE_CHROMIUM") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        if required:
            pytest.fail("CTSTATUS_REQUIRE_CHROMIUM=1 but /usr/bin/chromium is absent")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()
