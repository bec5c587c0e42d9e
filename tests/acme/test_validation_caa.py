"""CAA (RFC 8659, RFC 8657, BR §3.2.2.8) against the loopback DNS server."""

from __future__ import annotations

import asyncio

import pytest
from tests.acme.conftest import CAA_IDENTITY
from tests.acme.dnsserver import TestDNSServer

from ctstatus.acme.validation import ValidationError, ValidationSettings, Validator

ACCOUNT = "https://acme.ctstatus.example/acme/acct/17"


def check(
    settings: ValidationSettings,
    domain: str,
    *,
    wildcard: bool = False,
    account: str = ACCOUNT,
    method: str = "http-01",
) -> None:
    asyncio.run(
        Validator(settings).check_caa(domain, wildcard=wildcard, account_uri=account, method=method)
    )


def refused(settings: ValidationSettings, domain: str, **kwargs: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        check(settings, domain, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_no_caa_anywhere_permits(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("www.example.com", "A", "127.0.0.1")
    check(validation_settings, "www.example.com")  # NODATA at www, NXDOMAIN above
    check(validation_settings, "nothing.example.com")  # NXDOMAIN everywhere


def test_issue_naming_us_permits(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", '0 issue "other.example"')
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY.upper()}"')
    check(validation_settings, "example.com")


def test_issue_naming_someone_else_forbids(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", '0 issue "letsencrypt.org"')
    error = refused(validation_settings, "example.com")
    assert error.problem == "caa"
    assert "letsencrypt.org" in error.detail
    assert CAA_IDENTITY in error.detail


def test_empty_issuer_forbids_everyone(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", '0 issue ";"')
    error = refused(validation_settings, "example.com")
    assert error.problem == "caa"
    assert "no CA may issue" in error.detail


def test_no_configured_identity_forbids_when_issue_records_exist(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    import dataclasses

    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}"')
    settings = dataclasses.replace(validation_settings, caa_identities=())
    assert "no CAA identity configured" in refused(settings, "example.com").detail


def test_tree_climbing_finds_the_parent_records(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", '0 issue "other.example"')
    dns_server.zone.add("b.example.com", "A", "127.0.0.1")
    error = refused(validation_settings, "a.b.example.com")
    assert error.problem == "caa"
    assert "records at example.com" in error.detail


def test_the_closest_records_win(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", '0 issue "other.example"')
    dns_server.zone.add("www.example.com", "CAA", f'0 issue "{CAA_IDENTITY}"')
    check(validation_settings, "www.example.com")


def test_records_with_only_iodef_permit(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", '0 iodef "mailto:security@example.com"')
    check(validation_settings, "example.com")


def test_cname_target_records_apply(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("www.example.com", "CNAME", "cdn.example.net")
    dns_server.zone.add("cdn.example.net", "CAA", '0 issue "other.example"')
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}"')
    error = refused(validation_settings, "www.example.com")
    assert error.problem == "caa"
    assert "records at www.example.com" in error.detail


def test_cname_to_a_name_without_caa_climbs_the_original_name(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("www.example.com", "CNAME", "cdn.example.net")
    dns_server.zone.add("cdn.example.net", "A", "127.0.0.1")
    dns_server.zone.add("example.net", "CAA", f'0 issue "{CAA_IDENTITY}"')
    dns_server.zone.add("example.com", "CAA", '0 issue "other.example"')
    assert "records at example.com" in refused(validation_settings, "www.example.com").detail


def test_issuewild_governs_wildcards(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}"')
    dns_server.zone.add("example.com", "CAA", '0 issuewild "other.example"')
    check(validation_settings, "example.com")
    error = refused(validation_settings, "example.com", wildcard=True, method="dns-01")
    assert error.problem == "caa"
    assert "issuewild" in error.detail
    assert refused(validation_settings, "*.example.com", method="dns-01").problem == "caa"


def test_issue_governs_wildcards_without_issuewild(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}"')
    check(validation_settings, "*.example.com", method="dns-01")


def test_issuewild_naming_us_does_not_permit_plain_names(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", '0 issue ";"')
    dns_server.zone.add("example.com", "CAA", f'0 issuewild "{CAA_IDENTITY}"')
    check(validation_settings, "*.example.com", method="dns-01")
    assert refused(validation_settings, "example.com").problem == "caa"


def test_accounturi_must_match(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}; accounturi={ACCOUNT}"')
    check(validation_settings, "example.com")
    error = refused(validation_settings, "example.com", account=ACCOUNT + "9")
    assert error.problem == "caa"
    assert "accounturi" in error.detail


def test_validationmethods_must_include_the_method(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add(
        "example.com", "CAA", f'0 issue "{CAA_IDENTITY}; validationmethods=dns-01,tls-alpn-01"'
    )
    check(validation_settings, "example.com", method="dns-01")
    check(validation_settings, "example.com", method="tls-alpn-01")
    error = refused(validation_settings, "example.com", method="http-01")
    assert error.problem == "caa"
    assert "validationmethods" in error.detail


def test_one_matching_record_is_enough(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}; accounturi=https://x/1"')
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}; accounturi={ACCOUNT}"')
    check(validation_settings, "example.com")


def test_unknown_parameters_are_ignored(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}; policy=ev"')
    check(validation_settings, "example.com")


@pytest.mark.parametrize(
    "value",
    [
        f"{CAA_IDENTITY}; accounturi",  # no '='
        f"{CAA_IDENTITY}; accounturi={ACCOUNT}; accounturi={ACCOUNT}",  # twice
        "not a domain!",
        f"{CAA_IDENTITY}; -bad=1",
    ],
)
def test_malformed_values_do_not_permit(
    dns_server: TestDNSServer, validation_settings: ValidationSettings, value: str
) -> None:
    dns_server.zone.add("example.com", "CAA", f'0 issue "{value}"')
    error = refused(validation_settings, "example.com")
    assert error.problem == "caa"
    assert "malformed" in error.detail


def test_critical_unknown_tag_forbids(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}"')
    dns_server.zone.add("example.com", "CAA", '128 tbs "unknown"')
    error = refused(validation_settings, "example.com")
    assert error.problem == "caa"
    assert "critical" in error.detail
    assert "tbs" in error.detail


def test_noncritical_unknown_tag_and_critical_known_tag_are_fine(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", f'128 issue "{CAA_IDENTITY}"')
    dns_server.zone.add("example.com", "CAA", '0 tbs "unknown"')
    check(validation_settings, "example.com")


def test_tags_are_case_insensitive(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("example.com", "CAA", '0 ISSUE "other.example"')
    assert refused(validation_settings, "example.com").problem == "caa"


@pytest.mark.parametrize("fault", ["SERVFAIL", "REFUSED"])
def test_failed_lookup_refuses(
    dns_server: TestDNSServer, validation_settings: ValidationSettings, fault: str
) -> None:
    dns_server.zone.add("example.com", "CAA", f'0 issue "{CAA_IDENTITY}"')
    dns_server.zone.fault("www.example.com", fault)
    error = refused(validation_settings, "www.example.com")
    assert error.problem == "dns"
    assert fault in error.detail
    assert "refuses issuance" in error.detail


def test_failed_lookup_at_a_parent_refuses(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.fault("example.com", "SERVFAIL")
    assert refused(validation_settings, "www.example.com").problem == "dns"


def test_failure_above_the_relevant_records_does_not_matter(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("www.example.com", "CAA", f'0 issue "{CAA_IDENTITY}"')
    dns_server.zone.fault("example.com", "SERVFAIL")
    check(validation_settings, "www.example.com")


def test_lookup_timeout_refuses(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    import dataclasses

    dns_server.zone.fault("example.com", "DROP")
    settings = dataclasses.replace(validation_settings, timeout_seconds=0.3)
    error = refused(settings, "example.com")
    assert error.problem == "dns"
    assert "timed out" in error.detail


def test_idn_is_looked_up_by_a_label(
    dns_server: TestDNSServer, validation_settings: ValidationSettings
) -> None:
    dns_server.zone.add("xn--bcher-kva.de", "CAA", '0 issue "other.example"')
    assert refused(validation_settings, "bücher.de").problem == "caa"


def test_public_suffix_is_refused(validation_settings: ValidationSettings) -> None:
    assert refused(validation_settings, "*.com").problem == "rejectedIdentifier"
