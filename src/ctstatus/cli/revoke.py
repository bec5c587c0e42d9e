"""``ctstatus revoke``: revoke a serial in the ledger (journaled), then sign its new response."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from ctstatus.cli.common import console, open_instance

if TYPE_CHECKING:
    from ctstatus.instance import Instance
    from ctstatus.ledger import Issuer, SerialRecord


class Reason(enum.StrEnum):
    """The CRL reasons BR §7.2.2 allows for TLS certificates, by their RFC 5280 names."""

    unspecified = "unspecified"
    keyCompromise = "keyCompromise"
    affiliationChanged = "affiliationChanged"
    superseded = "superseded"
    cessationOfOperation = "cessationOfOperation"
    privilegeWithdrawn = "privilegeWithdrawn"


def revoke_command(
    serial: Annotated[
        str, typer.Argument(help="The serial number in hex (0x and colons allowed).")
    ],
    reason: Annotated[Reason, typer.Option(help="Why (BR §7.2.2; certificateHold is refused).")],
    issuer: Annotated[
        str | None, typer.Option(help="The issuing CA's name (default: [ca.issuing] name).")
    ] = None,
    revoked_at: Annotated[
        datetime | None,
        typer.Option(
            help="When, if earlier than now (e.g. the key compromise), ISO 8601 with a zone."
        ),
    ] = None,
    presign: Annotated[
        bool,
        typer.Option(help="Sign and store the revoked OCSP response at once (needs the key)."),
    ] = True,
) -> None:
    """Revoke a certificate or precertificate-only serial. OCSP answers change within a second
    on running responders, and the CRL within [crl] revocation_delay_seconds."""
    from ctstatus.errors import UserError
    from ctstatus.ledger import RevocationReason, UnknownSerial
    from ctstatus.ledger.serialnum import InvalidSerial, check_serial

    instance = open_instance()
    name = issuer or instance.config.ca.issuing.name
    try:
        number = check_serial(int(serial.lower().removeprefix("0x").replace(":", ""), 16))
    except (ValueError, InvalidSerial):
        raise UserError(f"{serial!r} is not a serial number", "give it in hex") from None
    ledger = instance.open_ledger()
    try:
        registered = ledger.issuer_by_name(name)
        if registered is None:
            raise UserError(f"no issuer {name!r} in the ledger", "see `ctstatus ledger status`")
        try:
            record = ledger.revoke(
                registered.id,
                number,
                RevocationReason[_enum_name(reason.value)],
                revoked_at=revoked_at,
                actor="cli:revoke",
            )
        except UnknownSerial:
            raise UserError(f"issuer {name} has no serial {number:x}") from None
    finally:
        ledger.close()
    console.print(
        f"revoked serial {record.serial_hex} of {name} at {record.revoked_at} ({reason.value})"
    )
    if presign:
        _presign(instance, registered, record)


def _enum_name(camel: str) -> str:
    return "".join(f"_{c}" if c.isupper() else c.upper() for c in camel)


def _presign(instance: Instance, issuer: Issuer, record: SerialRecord) -> None:
    """Best effort: running responders sign it within a poll anyway if this fails."""
    from ctstatus.errors import UserError
    from ctstatus.status import wiring
    from ctstatus.status.db import upsert_responses
    from ctstatus.status.presign import NoSigner

    try:
        wired = wiring.build(instance, publish=False)
    except UserError as exc:
        console.print(f"[yellow]not pre-signed[/] ({exc}); running responders will sign it")
        return
    service = wired.service
    try:
        now = service.clock()
        service.identities.refresh(issuer, now)
        responses = [
            service.presigner.sign(issuer, record, h, now) for h in service.settings.hash_names
        ]
        upsert_responses(wired.engine, responses)
        console.print(f"stored {len(responses)} signed OCSP responses")
    except (UserError, NoSigner) as exc:
        console.print(f"[yellow]not pre-signed[/] ({exc}); running responders will sign it")
    finally:
        service.identities.close()
        wired.close()
