"""The dashboard in a real browser over ``ctstatus up --demo``: an abandoned precertificate is
shown revoked with our responder's OCSP answer, a serial's timeline reads end to end, and the
screenshots in docs/screenshots/ come from here: they are written there when
``CTSTATUS_SCREENSHOTS=docs/screenshots`` is set (else to a temporary directory, so a test run
leaves the work tree as it was)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from tests.stack.conftest import Up

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(
    os.environ.get("CTSTATUS_SCREENSHOTS") or Path(tempfile.gettempdir()) / "ctstatus-screenshots"
)


def _page(browser: Any) -> Any:
    return browser.new_page(viewport={"width": 1360, "height": 900})


def wait_for_abandoned(page: Any, up: Up, deadline_s: float = 90) -> Any:
    """Reload the overview until an abandoned precertificate shows as revoked."""
    deadline = time.monotonic() + deadline_s
    while True:
        page.goto(up.web + "/")
        rows = page.locator("tr.abandoned-row").filter(has_text="revoked")
        if rows.count() and "revoked" in rows.first.locator(".ocsp-answer").inner_text():
            return rows.first
        if time.monotonic() > deadline:
            raise AssertionError("no abandoned precertificate shown as revoked:\n" + up.log())
        page.wait_for_timeout(1000)  # the demo abandons every 4th issuance (1 s apart)


def test_abandoned_precertificate_is_revoked_with_its_ocsp_answer(
    browser: Any, demo_stack: Up
) -> None:
    page = _page(browser)
    row = wait_for_abandoned(page, demo_stack)
    answer = row.locator(".ocsp-answer").inner_text()
    assert "revoked" in answer
    assert "since" in answer  # the revocation time from the OCSP response itself
    assert "CT policy not met" in row.locator("td").last.inner_text()  # the "Why" column
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    row.locator("a").click()
    page.wait_for_selector("#timeline")
    assert "revoked" in page.locator("#ledger-state").inner_text()
    assert "revoked" in page.locator("#ocsp-now").inner_text()
    timeline = page.locator("#timeline").inner_text()
    for step in ("reserve", "precert signed", "abandon", "revoke", "OCSP now: revoked"):
        assert step in timeline, timeline
    page.close()


def test_a_serial_search_shows_its_timeline(browser: Any, demo_stack: Up) -> None:
    page = _page(browser)
    deadline = time.monotonic() + 60
    while True:  # an issued certificate the watcher has already seen in a log
        page.goto(demo_stack.web + "/")
        links = page.locator("a[href^='/serial/']")
        serial = None
        if links.count():
            serial = links.first.get_attribute("href").rsplit("/", 1)[1]
        if serial:
            page.goto(f"{demo_stack.web}/serial/{serial}")
            if "in log" in page.locator("#timeline").inner_text():
                break
        if time.monotonic() > deadline:
            raise AssertionError("the watcher never showed a log entry for " + str(serial))
        page.wait_for_timeout(1000)  # the watcher polls every 2 s
    page.goto(demo_stack.web + "/serial")
    page.fill("form.lookup input[name=q]", serial)
    page.click("form.lookup button")
    page.wait_for_selector("#timeline")
    text = page.locator("#timeline").inner_text()
    assert "reserve" in text
    assert "precertificate in log" in text
    assert "alpha" in text  # the only log that accepted it
    page.screenshot(path=str(SCREENSHOTS / "serial.png"), full_page=True)

    page.goto(demo_stack.web + "/serial?q=not-hex")
    assert "is not a serial number" in page.content()
    page.close()


def test_problems_page_filters(browser: Any, demo_stack: Up) -> None:
    page = _page(browser)
    page.goto(demo_stack.web + "/problems")
    assert page.locator("h2").first.inner_text().startswith("Problems per CA")
    page.screenshot(path=str(SCREENSHOTS / "problems.png"), full_page=True)
    page.close()
