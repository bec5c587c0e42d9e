"""ACME profiles (draft-ietf-acme-profiles): the one place certificate lifetimes are chosen.

``tlsserver``: 45 days with OCSP and CRL URLs. ``shortlived``: 6 days without an OCSP URL.
BR §4.9.1.1 lets short-lived certificates (at most 7 days from 2026-03-15) go unrevoked and
§7.1.2.7 makes both the OCSP URL (a MAY since SC-063) and the CRLDP optional for them, but
pkilint's Microsoft lint (msft.end_entity.revocation_information_absent) errors when both are
absent, so the CRLDP stays: the certificate is still revocable through the CRL.
"""

from __future__ import annotations

from dataclasses import dataclass

#: BR short-lived certificate bound (days, from 2026-03-15; spec-digest §4.2).
SHORT_LIVED_MAX_DAYS = 7


@dataclass(frozen=True)
class Profile:
    name: str
    lifetime_days: int
    ocsp_url: bool
    description: str


PROFILES: dict[str, Profile] = {
    "tlsserver": Profile("tlsserver", 45, True, "TLS server, 45 days, OCSP and CRL URLs"),
    "shortlived": Profile(
        "shortlived", 6, False, "TLS server, 6 days (BR short-lived), CRL but no OCSP URL"
    ),
}
DEFAULT_PROFILE = "tlsserver"


def check_profiles() -> None:
    """A short-lived profile without revocation URLs must stay within the BR bound."""
    for profile in PROFILES.values():
        if not profile.ocsp_url and profile.lifetime_days > SHORT_LIVED_MAX_DAYS:
            raise ValueError(f"profile {profile.name} omits the OCSP URL but is not short-lived")


check_profiles()
