"""Domain control validation for the ACME front door (BR §3.2.2.4, RFC 8555 §8, RFC 8737,
CAA per RFC 8659/8657 and BR §3.2.2.8)."""

from .errors import ValidationError
from .identifier import CHALLENGES, allowed_challenges, check_identifier
from .record import ValidationRecord
from .settings import ValidationSettings
from .validator import Validator

__all__ = [
    "CHALLENGES",
    "ValidationError",
    "ValidationRecord",
    "ValidationSettings",
    "Validator",
    "allowed_challenges",
    "check_identifier",
]
