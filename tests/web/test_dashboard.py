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


def _number(text: str) -> int:
    return int(text.strip() or "0")


def test_abandoned_counts_agree_and_say_why_in_full(browser: Any, demo_stack: Up) -> None:
    """The card, the states table and the issuers table count abandoned precertificates from
    one query; the row names the certificate's domains and shows the whole cause, wrapped."""
    import httpx

    page = _page(browser)
    row = wait_for_abandoned(page, demo_stack)
    card = _number(page.locator("#abandoned-card").inner_text())
    assert card > 0
    assert _number(page.locator("#ever-abandoned").inner_text()) == card
    per_issuer = [_number(t) for t in page.locator(".issuer-abandoned").all_inner_texts()]
    assert sum(per_issuer) == card
    names = row.locator("td.names").inner_text()
    assert names.startswith("demo-"), names
    assert names.endswith(".example.com"), names
    serial = row.locator("a").get_attribute("href").rsplit("/", 1)[1]
    journal = httpx.get(f"{demo_stack.web}/api/v1/serials/{serial}", timeout=30).json()["journal"]
    [cause] = [e["detail"]["cause"] for e in journal if e["to"] == "abandoned"]
    why = row.locator("td.why")
    assert why.inner_text().strip() == cause  # not cut short
    assert why.evaluate("e => getComputedStyle(e).whiteSpace") == "normal"  # wrapped
    page.close()


def test_search_by_domain_any_case_and_wildcards(browser: Any, demo_stack: Up) -> None:
    import secrets

    import httpx
    from tests.stack.test_api import auth, csr_for

    label = "wild-" + secrets.token_hex(3)
    for _ in range(3):  # the demo's faulty moments
        issued = httpx.post(
            f"{demo_stack.web}/api/v1/certificates",
            json={"csr": csr_for(f"*.{label}.example.com", f"{label}.example.com")},
            headers=auth(demo_stack),
            timeout=60,
        )
        if issued.status_code != 503:
            break
    assert issued.status_code == 201, issued.text
    serial = issued.json()["serial"]
    page = _page(browser)
    for query in (
        f"{label}.example.com".upper(),  # any case
        f"www.{label}.example.com",  # covered by the wildcard
        f"*.{label}.example.com",  # the wildcard itself
    ):
        page.goto(demo_stack.web + "/")
        page.fill("form.search input[name=q]", query)
        page.press("form.search input[name=q]", "Enter")
        page.wait_for_selector("#found")
        links = page.locator("#found a").all_inner_texts()
        assert [int(s, 16) for s in links] == [int(serial, 16)], (query, links)
        assert f"*.{label}.example.com" in page.locator("#found td.names").inner_text()
    page.goto(f"{demo_stack.web}/serial?q=nothing-{label}.example.com")
    assert "no certificate of issuing-ca names" in page.content()
    page.goto(f"{demo_stack.web}/serial/{serial}")
    assert f"*.{label}.example.com" in page.locator("#names").inner_text()
    page.close()


def test_the_demo_fault_shows_as_a_problem_per_ca(browser: Any, demo_stack: Up) -> None:
    """``up --demo`` makes one log sign bad tree heads once a minute; the watcher reports it,
    and the overview and the problems page count it for that log."""
    page = _page(browser)
    deadline = time.monotonic() + 120
    while True:
        page.goto(demo_stack.web + "/problems")
        rows = page.locator("#per-ca tbody tr").filter(has_text="log:")
        if rows.count() and _number(rows.first.locator("td").nth(1).inner_text()) > 0:
            break
        if time.monotonic() > deadline:
            raise AssertionError("the demo's log fault never showed:\n" + demo_stack.log())
        page.wait_for_timeout(1000)  # the fault starts 45 s into each minute
    assert "log.bad_sth" in page.locator("#problems").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "problems-fault.png"), full_page=True)
    page.goto(demo_stack.web + "/")
    assert "log:" in page.locator(".cards").inner_text()
    page.close()


def test_the_serial_page_names_the_crl_the_watcher_checked(browser: Any, demo_stack: Up) -> None:
    page = _page(browser)
    row = wait_for_abandoned(page, demo_stack)
    href = row.locator("a").get_attribute("href")
    deadline = time.monotonic() + 90
    while True:
        page.goto(demo_stack.web + href)
        checked = page.locator("#watch-checks td.crl-checked").all_inner_texts()
        if any("/crl/" in c for c in checked):
            break
        if time.monotonic() > deadline:
            raise AssertionError("no CRL named in the watcher's checks:\n" + demo_stack.log())
        page.wait_for_timeout(1000)  # the watcher polls every 2 s
    text = next(c for c in checked if "/crl/" in c)
    assert "number " in text, text
    assert "thisUpdate 20" in text, text
    assert "http://pki.example.com/crl/issuing-ca/" in text, text
    page.close()
