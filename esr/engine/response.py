"""The transport seam: what every `Sender` does and gives back.

A sender sends a `PreparedRequest` and returns a `Response`, never raising for a failed
request: the error kind (timeout, connect, protocol, 4xx, 5xx) is in the response. Every
sender reads a user and password in its target's URL as curl does: HTTP Basic
authentication on each request that does not set its own `Authorization`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import unquote, urlsplit

import msgspec

from esr.core.journey import PreparedRequest
from esr.core.targets import shown_url

__all__ = ["Response", "Sender", "basic_credentials", "classify_status", "sets_authorization"]


class Response(msgspec.Struct, frozen=True):
    status: int  # 0 when no response arrived
    headers: Mapping[str, str]
    body: bytes
    error: str | None  # timeout, connect, protocol, 4xx, 5xx or None


def basic_credentials(url: str) -> tuple[str, str | None]:
    """`url` without its user and password, and the `Authorization` value they make (HTTP Basic,
    RFC 7617, UTF-8, percent-escapes decoded); None for a URL without them."""
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    if not userinfo:
        return url, None
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return shown_url(url), f"Basic {token}"


def sets_authorization(headers: Mapping[str, str]) -> bool:
    """Whether a request brings its own `Authorization` (it then wins over the URL's)."""
    return any(name.lower() == "authorization" for name in headers)


class Sender(Protocol):
    async def send(self, request: PreparedRequest, headers: dict[str, str]) -> Response: ...

    async def close(self) -> None: ...


def classify_status(status: int) -> str | None:
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx"
    return None
