"""Bearer tokens: one that may launch and abort runs, one read-only observer token.

Unset tokens are generated when the server starts and written to files under ESR_HOME (mode
0600), where the local client finds them, as Jupyter does.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Tokens", "mask", "read_token"]

TOKEN_FILE = "token"
OBSERVER_FILE = "observer-token"


def mask(token: str) -> str:
    return token[:4] + "…" if len(token) > 8 else "…"


def _load_or_create(home: Path, env: str, name: str) -> str:
    token = os.environ.get(env)
    if token:
        return token
    path = home / name
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token


def read_token(home: Path) -> str | None:
    """The launch token for a local client: ESR_TOKEN, else the server's token file."""
    token = os.environ.get("ESR_TOKEN")
    if token:
        return token
    path = home / TOKEN_FILE
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


@dataclass(frozen=True, slots=True)
class Tokens:
    admin: str
    observer: str

    @classmethod
    def from_environment(cls, home: Path) -> Tokens:
        return cls(_load_or_create(home, "ESR_TOKEN", TOKEN_FILE),
                   _load_or_create(home, "ESR_OBSERVER_TOKEN", OBSERVER_FILE))

    def role(self, header: str | None) -> str | None:
        """'admin', 'observer' or None for an Authorization header."""
        if not header or not header.startswith("Bearer "):
            return None
        given = header[7:].strip()
        if hmac.compare_digest(given, self.admin):
            return "admin"
        if hmac.compare_digest(given, self.observer):
            return "observer"
        return None
