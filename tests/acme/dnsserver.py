"""The loopback authoritative DNS server for ACME tests.

It lives in the package (ctstatus.acme.validation.testdns) because ``ctstatus up --demo`` needs
a DNS server too (no internet means no CAA answers, and a failed CAA look-up refuses issuance);
this module is the name the tests import it by. See tests/acme/conftest.py for the fixtures.
"""

from ctstatus.acme.validation.testdns import (
    FAULTS,
    TYPES,
    Record,
    TestDNSServer,
    Zone,
    control_request,
    running,
)

__all__ = ["FAULTS", "TYPES", "Record", "TestDNSServer", "Zone", "control_request", "running"]
