"""The transport seam: what every `Sender` does and gives back.

A sender sends a `PreparedRequest` and returns a `Response`, never raising for a failed
request: the error kind (timeout, connect, protocol, 4xx, 5xx) is in the response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import msgspec

from esr.core.journey import PreparedRequest

__all__ = ["Response", "Sender", "classify_status"]


class Response(msgspec.Struct, frozen=True):
    status: int  # 0 when no response arrived
    headers: Mapping[str, str]
    body: bytes
    error: str | None  # timeout, connect, protocol, 4xx, 5xx or None


class Sender(Protocol):
    async def send(self, request: PreparedRequest, headers: dict[str, str]) -> Response: ...

    async def close(self) -> None: ...


def classify_status(status: int) -> str | None:
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx"
    return None
