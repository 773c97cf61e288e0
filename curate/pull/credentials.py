"""Credentials for a PACS, read from the environment or a file, never from a config value.

A Hydra config is written into every run folder, so a secret in it would be copied into
each of them. The config names only where the secret is: an environment variable or a
file (which must not be readable by others).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from curate.errors import ConfigError

KINDS = ("none", "basic", "bearer")


@dataclass(frozen=True)
class Credentials:
    """``basic``: ``user:password``; ``bearer``: a token. `repr` never shows the secret."""

    kind: str = "none"
    secret: str = ""

    def __repr__(self) -> str:
        return f"Credentials(kind={self.kind!r})"

    def apply(self, session) -> None:
        """Set them on a ``requests.Session``."""
        if self.kind == "basic":
            user, _, password = self.secret.partition(":")
            session.auth = (user, password)
        elif self.kind == "bearer":
            session.headers["Authorization"] = f"Bearer {self.secret}"


def load_credentials(kind: str = "none", env: str | None = None, file: str | None = None) -> Credentials:
    """The credentials of `kind`, from the environment variable named `env` or the file
    at `file` (one line). A file that others can read is refused: it holds a secret."""
    if kind not in KINDS:
        raise ConfigError(f"auth.kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "none":
        return Credentials()
    if bool(env) == bool(file):
        raise ConfigError(f"auth.kind={kind} needs exactly one of auth.env (a variable's name) or auth.file")
    if env:
        secret = os.environ.get(env)
        if not secret:
            raise ConfigError(f"auth.env names {env}, which is not set in the environment")
    else:
        path = Path(file).expanduser()
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(f"auth.file {path} can be read by others: make it owner-only (chmod 600)")
            secret = path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"auth.file {path} cannot be read: {e.strerror or e}") from None
    if kind == "basic" and ":" not in secret:
        raise ConfigError("basic auth needs the secret as user:password")
    return Credentials(kind, secret)
