"""Bearer tokens: one that may launch and abort runs, one read-only observer token, and
signed, expiring link tokens for one run.

Unset tokens are generated when the server starts and written to files under ESR_HOME (mode
0600), where the local client finds them, as Jupyter does. A link token
(`esr1.RUN_ID.EXPIRES.ROLE.SIGNATURE`, HMAC-SHA256 keyed by the launch token) goes in an
observer or trainee URL: it opens that run's dashboard and nothing else, and a
state-changing request with it gets 403 like any observer's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LinkToken", "Tokens", "mask", "read_token"]

LINK_ROLES = ("observer", "trainee")

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
    """The server's tokens. `open`: the local sandbox's playground mode (loopback only), where a
    request without any token may do what the launch token may; a token given is still checked."""

    admin: str
    observer: str
    open: bool = False

    @classmethod
    def from_environment(cls, home: Path) -> Tokens:
        return cls(_load_or_create(home, "ESR_TOKEN", TOKEN_FILE),
                   _load_or_create(home, "ESR_OBSERVER_TOKEN", OBSERVER_FILE))

    def role(self, header: str | None) -> str | None:
        """'admin', 'observer' or None for an Authorization header (a link token counts as an
        observer here: it never launches or aborts)."""
        if not header and self.open:
            return "admin"
        if not header or not header.startswith("Bearer "):
            return None
        token = self.check(header[7:].strip())
        return None if token is None else ("admin" if token.role == "admin" else "observer")

    def check(self, given: str, now: float | None = None) -> LinkToken | None:
        """What a token allows: the static tokens any run, a link token its run until it expires."""
        if hmac.compare_digest(given, self.admin):
            return LinkToken("*", "admin", 0)
        if hmac.compare_digest(given, self.observer):
            return LinkToken("*", "observer", 0)
        parts = given.split(".")
        if len(parts) != 5 or parts[0] != "esr1" or parts[3] not in LINK_ROLES:
            return None
        _, run_id, expires, role, signature = parts
        if not hmac.compare_digest(signature, self._sign(run_id, expires, role)):
            return None
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return None
        return LinkToken(run_id, role, int(expires))

    def link(self, run_id: str, role: str, ttl_s: float = 7 * 86400, now: float | None = None) -> str:
        """A signed token for one run's dashboard, valid for `ttl_s` seconds."""
        if role not in LINK_ROLES:
            raise ValueError(f"a link is for one of {', '.join(LINK_ROLES)}, not {role!r}")
        expires = str(int((time.time() if now is None else now) + ttl_s))
        return f"esr1.{run_id}.{expires}.{role}.{self._sign(run_id, expires, role)}"

    def _sign(self, run_id: str, expires: str, role: str) -> str:
        digest = hmac.new(self.admin.encode(), f"{run_id}|{expires}|{role}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class LinkToken:
    run_id: str  # "*": every run
    role: str  # admin, observer or trainee
    expires: int  # Unix seconds; 0: never

    def allows(self, run_id: str) -> bool:
        return self.run_id in ("*", run_id)
