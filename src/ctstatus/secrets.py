"""Where secrets come from: an environment variable or a file, never the config file itself.

The config names the *source* (``{ env = "CTSTATUS_KEY_PASSPHRASE" }`` or
``{ file = "/run/secrets/ca-passphrase" }``); the value is read only when a key or database is
opened, and :class:`Secret` keeps it out of ``repr`` and logs.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from ctstatus.errors import ConfigError


class Secret:
    """A secret value that never shows itself in ``repr``/``str`` (and so never in logs)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


class SecretSource(BaseModel):
    """Exactly one of ``env`` (variable name) or ``file`` (path, relative to the instance)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: object) -> object:
        if isinstance(value, str | bytes | int):
            raise ValueError(
                "secrets are never written in the config file: use "
                '{ env = "VARIABLE" } or { file = "PATH" }'
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError('give exactly one of env = "VARIABLE" or file = "PATH"')
        return self

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def resolve(self, base_dir: Path, what: str) -> Secret:
        """Read the secret now; a missing variable or unreadable file is a clear ConfigError."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(
                    f"the {what} is to come from environment variable {self.env}, which is not set",
                    f"export {self.env}=… or point the config at a file instead",
                )
            return Secret(value)
        assert self.file is not None
        path = self.file if self.file.is_absolute() else base_dir / self.file
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the {what} from {path}: {exc.strerror or exc}",
                "check the path and its permissions",
            ) from None
        value = text.rstrip("\r\n")
        if not value:
            raise ConfigError(f"the {what} file {path} is empty", "write the secret into it")
        return Secret(value)
