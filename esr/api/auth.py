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
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from esr.bus.runlog import is_run_id
from esr.core.errors import EsrError

__all__ = ["LinkToken", "TokenError", "Tokens", "check_link_ttl", "mask", "read_token"]

Role = Literal["admin", "observer", "trainee"]  # admin: the launch token; the others: signed links
LINK_ROLES: tuple[Role, ...] = ("observer", "trainee")
MIN_TOKEN_BYTES = 16
MAX_LINK_TTL_S = 30 * 86400

TOKEN_FILE = "token"
OBSERVER_FILE = "observer-token"


class TokenError(EsrError):
    """A token the server must not start with (too short, or the two the same)."""


def mask(token: str) -> str:
    return token[:4] + "…" if len(token) > 8 else "…"


def _load_or_create(home: Path, given: str | None, name: str) -> str:
    if given:
        return given
    path = home / name
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token


def read_token(home: Path, given: str | None = None) -> str | None:
    """The launch token for a local client: `given` (ESR_TOKEN), else the server's token file."""
    if given:
        return given
    path = home / TOKEN_FILE
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


@dataclass(frozen=True, slots=True)
class Tokens:
    """The server's tokens. `open`: the local sandbox's playground mode (loopback only), where a
    request without any token may do what the launch token may; a token given is still checked.

    Each is at least 16 bytes (the launch token also keys the links' signatures: an empty one
    would make every link forgeable), and the two differ."""

    admin: str
    observer: str
    open: bool = False

    def __post_init__(self) -> None:
        for what, env, name, value in (("launch token", "ESR_TOKEN", TOKEN_FILE, self.admin),
                                       ("observer token", "ESR_OBSERVER_TOKEN", OBSERVER_FILE, self.observer)):
            size = len(value.encode())
            if size < MIN_TOKEN_BYTES:
                raise TokenError(
                    f"the {what} ({env}, else $ESR_HOME/{name}) is {size} bytes; it must be at least "
                    f"{MIN_TOKEN_BYTES}: unset {env} and delete the file to have one generated, or set {env} to "
                    "e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(24))'")
        if _same(self.admin, self.observer):
            raise TokenError("the launch and observer tokens must differ (ESR_TOKEN, ESR_OBSERVER_TOKEN)")

    @classmethod
    def load(cls, home: Path, *, admin: str | None = None, observer: str | None = None) -> Tokens:
        """The tokens given (ESR_TOKEN, ESR_OBSERVER_TOKEN), else those in `home`, written there
        (readable by the owner only) the first time."""
        return cls(_load_or_create(home, admin, TOKEN_FILE), _load_or_create(home, observer, OBSERVER_FILE))

    def from_header(self, header: str | None) -> LinkToken | None:
        """What an Authorization header allows (`Bearer TOKEN`, the scheme in any case); None when
        it is malformed or wrong. No header at all is the launch token's right in the playground."""
        if not header:
            return EVERY_RUN_ADMIN if self.open else None
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        return self.check(given.strip())

    def check(self, given: str, now: float | None = None) -> LinkToken | None:
        """What a token allows: the static tokens any run, a link token its run until it expires.
        Anything malformed (any length, any characters) is None, never an exception."""
        if _same(given, self.admin):
            return EVERY_RUN_ADMIN
        if _same(given, self.observer):
            return LinkToken("*", "observer", 0)
        parts = given.split(".")
        if len(parts) < 5 or parts[0] != "esr1":
            return None
        run_id, (expires, role, signature) = ".".join(parts[1:-3]), parts[-3:]  # run ids may hold dots
        if role not in LINK_ROLES or not is_run_id(run_id) or not (expires.isascii() and expires.isdigit()):
            return None
        if not _same(signature, self._sign(run_id, expires, role)):
            return None
        if int(expires) < (time.time() if now is None else now):
            return None
        return LinkToken(run_id, role, int(expires))

    def link(self, run_id: str, role: str, ttl_s: float = 7 * 86400, now: float | None = None) -> str:
        """A signed token for one run's dashboard, valid for `ttl_s` seconds (1 s to 30 days)."""
        if role not in LINK_ROLES:
            raise ValueError(f"a link is for one of {', '.join(LINK_ROLES)}, not {role!r}")
        check_link_ttl(ttl_s)
        expires = str(int((time.time() if now is None else now) + ttl_s))
        return f"esr1.{run_id}.{expires}.{role}.{self._sign(run_id, expires, role)}"

    def _sign(self, run_id: str, expires: str, role: str) -> str:
        digest = hmac.new(self.admin.encode(), f"{run_id}|{expires}|{role}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def check_link_ttl(ttl_s: float) -> None:
    """A link lives a finite number of seconds between 1 and 30 days; ValueError otherwise."""
    if not (math.isfinite(ttl_s) and 1 <= ttl_s <= MAX_LINK_TTL_S):
        raise ValueError(f"ttl_s is a number of seconds between 1 and {MAX_LINK_TTL_S} (30 days), e.g. 86400")


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that takes any text (hmac's refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class LinkToken:
    run_id: str  # "*": every run
    role: Role
    expires: int  # Unix seconds; 0: never

    def allows(self, run_id: str) -> bool:
        return self.run_id in ("*", run_id)


EVERY_RUN_ADMIN = LinkToken("*", "admin", 0)
