"""dns-01 (RFC 8555 §8.4) against the loopback DNS server, and the server itself."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys

import pytest
from tests.acme.dnsserver import TestDNSServer, control_request

from ctstatus.acme.validation import ValidationError, ValidationSettings, Validator
from ctstatus.acme.validation.validator import dns_01_txt_value
from ctstatus.clock import FrozenClock

KEY_AUTH = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


def run_dns01(settings: ValidationSettings, domain: str, clock: FrozenClock | None = None):  # type: ignore[no-untyped-def]
    validator = Validator(settings, clock=clock) if clock else Validator(settings)
    return asyncio.run(validator.dns_01(domain, KEY_AUTH))


def problem(settings: ValidationSettings, domain: str) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        run_dns01(settings, domain)
    return caught.value


def test_txt_value_is_base64url_sha256_without_padding() -> None:
    # RFC 8555 §8.4's example key authorization digest, computed independently.
    import base64
    import hashlib

    digest = hashlib.sha256(KEY_AUTH.encode()).digest()
    assert dns_01_txt_value(KEY_AUTH) == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert "=" not in dns_01_txt_value(KEY_AUTH)
    assert len(dns_01_txt_value(KEY_AUTH)) == 43


def test_dns01_finds_the_record_among_others(
    dns_server: TestDNSServer, validation_settings: ValidationSettings, clock: FrozenClock
) -> None:
    name = "_acme-challenge.www.example.com"
    dns_server.zone.add(name, "TXT", "some other validation")
    dns_server.zone.add(name, "TXT", dns_01_txt_value(KEY_AUTH))
    record = run_dns01(validation_settings, "WWW.example.com", clock)
    assert record.method == "dns-01"
    assert record.domain == "www.example.com"
    assert record.query_name == name
    assert record.resolver == dns_server.address
    assert record.validated_at == clock()


def test_dns01_wildcard_looks_at_the_base_name(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("_acme-challenge.example.org", "TXT", dns_01_txt_value(KEY_AUTH))
    record = run_dns01(validation_settings, "*.example.org")
    assert record.domain == "*.example.org"
    assert record.query_name == "_acme-challenge.example.org"


def test_dns01_follows_a_cname_delegation(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("_acme-challenge.example.com", "CNAME", "example.com.acme.example.net")
    dns_server.zone.add("example.com.acme.example.net", "TXT", dns_01_txt_value(KEY_AUTH))
    assert run_dns01(validation_settings, "example.com").query_name == (
        "_acme-challenge.example.com"
    )


def test_dns01_idn_is_asked_by_its_a_label(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("_acme-challenge.xn--bcher-kva.de", "TXT", dns_01_txt_value(KEY_AUTH))
    assert run_dns01(validation_settings, "bücher.de").domain == "xn--bcher-kva.de"


def test_dns01_sees_records_over_tcp_when_udp_truncates(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    name = "_acme-challenge.example.com"
    for i in range(30):
        dns_server.zone.add(name, "TXT", f"{i:03d}" + "x" * 200)
    dns_server.zone.add(name, "TXT", dns_01_txt_value(KEY_AUTH))
    assert run_dns01(validation_settings, "example.com").query_name == name


def test_dns01_nxdomain(dns_server: TestDNSServer, validation_settings: ValidationSettings) -> None:
    error = problem(validation_settings, "example.com")
    assert error.problem == "dns"
    assert "NXDOMAIN" in error.detail
    assert "_acme-challenge.example.com" in error.detail


def test_dns01_no_txt_record(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("_acme-challenge.example.com", "A", "127.0.0.1")
    error = problem(validation_settings, "example.com")
    assert error.problem == "unauthorized"
    assert "no TXT record at _acme-challenge.example.com" in error.detail


def test_dns01_wrong_value(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("_acme-challenge.example.com", "TXT", dns_01_txt_value("other"))
    error = problem(validation_settings, "example.com")
    assert error.problem == "incorrectResponse"
    assert dns_01_txt_value("other") in error.detail
    assert dns_01_txt_value(KEY_AUTH) in error.detail


@pytest.mark.parametrize("fault", ["SERVFAIL", "REFUSED"])
def test_dns01_server_failure(
    dns_server: TestDNSServer, validation_settings: ValidationSettings, fault: str
) -> None:
    dns_server.zone.add("_acme-challenge.example.com", "TXT", dns_01_txt_value(KEY_AUTH))
    dns_server.zone.fault("_acme-challenge.example.com", fault)
    error = problem(validation_settings, "example.com")
    assert error.problem == "dns"
    assert fault in error.detail


def test_dns01_timeout(dns_server: TestDNSServer, validation_settings: ValidationSettings) -> None:
    dns_server.zone.fault("_acme-challenge.example.com", "DROP")
    settings = dataclasses.replace(validation_settings, timeout_seconds=0.3)
    error = problem(settings, "example.com")
    assert error.problem == "dns"
    assert "timed out" in error.detail


def test_dns01_refuses_a_public_suffix_before_asking(
    validation_settings: ValidationSettings,
) -> None:
    assert problem(validation_settings, "*.com").problem == "rejectedIdentifier"


def test_record_added_through_http_control_is_served(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    value = dns_01_txt_value(KEY_AUTH)
    name = "_acme-challenge.example.com"
    control_request(
        dns_server.control_url, "POST", "/records", {"name": name, "type": "TXT", "value": value}
    )
    assert run_dns01(validation_settings, "example.com").query_name == name
    listed = control_request(dns_server.control_url, "GET", "/records", {})
    assert listed["records"] == [{"name": name, "type": "TXT", "value": value, "ttl": 60}]
    control_request(dns_server.control_url, "DELETE", "/records", {"name": name})
    assert problem(validation_settings, "example.com").problem == "dns"


def test_record_added_by_the_hook_command_is_served(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    """What a certbot --manual-auth-hook runs, as a real subprocess."""
    hook = [sys.executable, "-m", "ctstatus.acme.validation.testdns"]
    name = "_acme-challenge.example.com"
    value = dns_01_txt_value(KEY_AUTH)
    subprocess.run(
        [*hook, "add", "--control", dns_server.control_url, "TXT", name, value],
        check=True,
        timeout=60,
    )
    assert run_dns01(validation_settings, "example.com").query_name == name
    subprocess.run(
        [*hook, "remove", "--control", dns_server.control_url, "TXT", name, value],
        check=True,
        timeout=60,
    )
    assert problem(validation_settings, "example.com").problem == "dns"
    bad = subprocess.run(
        [*hook, "add", "--control", dns_server.control_url, "A", "x.example.com", "not-an-ip"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "testdns:" in bad.stderr


def test_zone_refuses_bad_records_up_front() -> None:
    from tests.acme.dnsserver import Zone

    zone = Zone()
    with pytest.raises(ValueError, match="not one of"):
        zone.add("example.com", "MX", "10 mail.example.com")
    with pytest.raises(ValueError, match="bad A record"):
        zone.add("example.com", "A", "::1")
    with pytest.raises(ValueError, match="not one of"):
        zone.fault("example.com", "EXPLODE")


def test_server_binds_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        TestDNSServer("0.0.0.0")  # noqa: S104 - asserting that it is refused


def test_serve_command_answers_until_stopped(validation_settings: ValidationSettings) -> None:
    """`testdns serve` as a real process: preloaded records, then one added by its control."""
    value = dns_01_txt_value(KEY_AUTH)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ctstatus.acme.validation.testdns",
            "serve",
            "--port",
            "0",
            "--control-port",
            "0",
            "--record",
            "TXT",
            "_acme-challenge.example.com",
            value,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert line[0] == "dns"
        assert line[2] == "control"
        settings = dataclasses.replace(validation_settings, dns_servers=(line[1],))
        assert run_dns01(settings, "example.com").resolver == line[1]
        control_request(
            line[3],
            "POST",
            "/records",
            {"name": "_acme-challenge.example.org", "type": "TXT", "value": value},
        )
        assert run_dns01(settings, "example.org").query_name == "_acme-challenge.example.org"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("order", ["control-first", "control-last"])
def test_hook_command_takes_values_that_start_with_a_dash(
    dns_server: TestDNSServer, validation_settings: ValidationSettings, order: str
) -> None:
    """base64url TXT values start with '-' one time in 32 (a certbot run found it)."""
    from ctstatus.acme.validation.testdns import main

    key_auth = next(f"k{i}" for i in range(10_000) if dns_01_txt_value(f"k{i}").startswith("-"))
    value = dns_01_txt_value(key_auth)
    name = "_acme-challenge.example.com"
    control = ["--control", dns_server.control_url]
    record = ["TXT", name, value]
    argv = ["add", *control, *record] if order == "control-first" else ["add", *record, *control]
    assert main(argv) == 0
    record_seen = asyncio.run(Validator(validation_settings).dns_01("example.com", key_auth))
    assert record_seen.query_name == name
    assert main(["remove", *control, *record]) == 0
    assert dns_server.zone.records() == []
