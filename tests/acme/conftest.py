"""Fixtures for the ACME tests: a loopback DNS server, and validation settings that use it.

``dns_server`` is a started :class:`TestDNSServer` (UDP+TCP on 127.0.0.1, HTTP control on
``dns_server.control_url``), fresh for each test. A certbot ``--manual-auth-hook`` adds its TXT
record with::

    python -m ctstatus.acme.validation.testdns add --control URL TXT \\
        "_acme-challenge.$CERTBOT_DOMAIN" "$CERTBOT_VALIDATION"
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ctstatus.acme.validation import ValidationSettings
from ctstatus.clock import FrozenClock

from tests.acme.dnsserver import TestDNSServer

CAA_IDENTITY = "ca.ctstatus.example"


@pytest.fixture
def dns_server() -> Iterator[TestDNSServer]:
    server = TestDNSServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def validation_settings(dns_server: TestDNSServer) -> ValidationSettings:
    """Loopback-only settings resolving through ``dns_server``; tests replace ports as needed."""
    return ValidationSettings(
        dns_servers=(dns_server.address,),
        loopback_only=True,
        timeout_seconds=5.0,
        caa_identities=(CAA_IDENTITY,),
    )


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
