"""User-facing errors.

Anything a user or operator can fix (bad config, wrong passphrase, unreachable database, absent
token) is raised as a :class:`UserError` with one line saying what is wrong and one saying what to
do. The CLI prints those without a traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can act on: ``message`` says what is wrong, ``hint`` what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class ConfigError(UserError):
    """The configuration file is missing, unreadable or invalid."""


class SigningKeyError(UserError):
    """A signing key cannot be loaded or used (wrong passphrase, corrupt file, token absent)."""


class LedgerError(UserError):
    """The ledger database cannot be reached or is not at the expected schema version."""
