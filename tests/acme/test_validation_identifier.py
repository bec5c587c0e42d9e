"""check_identifier and allowed_challenges: what names we take and which challenges they get."""

from __future__ import annotations

import pytest

from ctstatus.acme.validation import (
    ValidationError,
    ValidationRecord,
    allowed_challenges,
    check_identifier,
)


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("example.com", "example.com"),
        ("WWW.Example.COM", "www.example.com"),
        ("*.example.com", "*.example.com"),
        ("foo.github.io", "foo.github.io"),
        ("*.foo.github.io", "*.foo.github.io"),
        ("example.co.uk", "example.co.uk"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("*.bücher.de", "*.xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("例え.jp", "xn--r8jz45g.jp"),
        ("1.example.com", "1.example.com"),
        ("a-b.example.com", "a-b.example.com"),
    ],
)
def test_accepted_names_are_normalized(name: str, normalized: str) -> None:
    assert check_identifier(name) == normalized


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("com", "public suffix"),
        ("*.com", "public suffix"),
        ("*.co.uk", "public suffix"),
        ("co.uk", "public suffix"),
        ("github.io", "public suffix"),
        ("*.github.io", "public suffix"),
        ("example.test", "not in the Public Suffix List"),
        ("localhost", "not in the Public Suffix List"),
        ("printer.local", "not in the Public Suffix List"),
        ("192.0.2.1", "IP address"),
        ("::1", "IP address"),
        ("[2001:db8::1]", "IP address"),
        ("a.*.example.com", "leftmost"),
        ("*a.example.com", "leftmost"),
        ("**.example.com", "leftmost"),
        ("*", "leftmost"),
        ("example.com.", "trailing dot"),
        ("a..example.com", "empty label"),
        ("-a.example.com", "starts or ends with '-'"),
        ("a-.example.com", "starts or ends with '-'"),
        ("a_b.example.com", "characters other than"),
        ("a b.example.com", "characters other than"),
        ("ab--cd.example.com", "positions 3-4"),
        ("xn--zz.example.com", "not valid punycode"),
        ("a" * 64 + ".example.com", "longer than 63"),
        (".".join(["a" * 60] * 5) + ".com", "longer than 253"),
        ("example.123", "numeric"),
        ("", "empty"),
        ("\u2603\u0300.com", "IDNA 2008"),
    ],
)
def test_refused_names_say_why(name: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_identifier(name)
    assert caught.value.problem == "rejectedIdentifier"
    assert why in caught.value.detail
    assert caught.value.type_urn == "urn:ietf:params:acme:error:rejectedIdentifier"


def test_wildcards_get_dns_01_only() -> None:
    assert allowed_challenges(check_identifier("*.example.com")) == ("dns-01",)
    assert allowed_challenges(check_identifier("example.com")) == (
        "http-01",
        "dns-01",
        "tls-alpn-01",
    )


def test_unknown_problem_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown ACME problem type"):
        ValidationError("notAProblem", "x")


def test_record_serializes_for_the_audit_log(frozen_clock: object) -> None:
    from datetime import UTC, datetime

    record = ValidationRecord(
        method="http-01",
        domain="example.com",
        validated_at=datetime(2026, 1, 1, tzinfo=UTC),
        resolver="127.0.0.1:53",
        urls=("http://example.com:80/.well-known/acme-challenge/t",),
        addresses_resolved=("127.0.0.1",),
        address_used="127.0.0.1",
        port=80,
    )
    assert record.to_json()["validated_at"] == "2026-01-01T00:00:00+00:00"
    assert record.to_json()["urls"] == ["http://example.com:80/.well-known/acme-challenge/t"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resolve": {"example.com": "127.0.0.1:8080"}}, "is not an IP address"),
        ({"dns_servers": ("dns.example.com",)}, "is not IP, IP:PORT"),
        ({"dns_servers": ("127.0.0.1:0",)}, "is not IP, IP:PORT"),
        ({"http_port": 0}, "http_port = 0 is not a TCP port"),
        ({"tls_alpn_port": 70000}, "not a TCP port"),
        ({"timeout_seconds": 0}, "must be positive"),
    ],
)
def test_settings_refuse_what_would_fail_later(changes: dict[str, object], message: str) -> None:
    from ctstatus.acme.validation import ValidationSettings

    with pytest.raises(ValueError, match=message):
        ValidationSettings(**changes)  # type: ignore[arg-type]


def test_settings_accept_the_documented_forms() -> None:
    from ctstatus.acme.validation import ValidationSettings

    settings = ValidationSettings(
        dns_servers=("127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353"),
        resolve={"example.com": "::1", "*.example.com": "127.0.0.1"},
    )
    assert len(settings.dns_servers) == 4
