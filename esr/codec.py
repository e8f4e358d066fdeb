"""JSON lines for events: the one place that knows orjson's options and the event schema."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import RunLogError
from .events import EVENT_TYPES, SCHEMA_VERSION, Event

__all__ = ["decode", "encode"]

_OPTIONS = orjson.OPT_APPEND_NEWLINE


def encode(event: Event) -> bytes:
    """One JSON line (with its newline) for `event`."""
    return orjson.dumps(event, option=_OPTIONS)


def decode(line: bytes | str, where: str = "") -> Event:
    """The event in one JSON line; `where` (file:line) goes into the error message."""
    try:
        data: dict[str, Any] = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RunLogError(f"{where}: not a JSON event ({exc})") from None
    if not isinstance(data, dict):
        raise RunLogError(f"{where}: expected a JSON object, got {type(data).__name__}")
    cls = EVENT_TYPES.get(data.pop("type", None))  # type: ignore[arg-type]
    if cls is None:
        raise RunLogError(f"{where}: unknown event type; known: {', '.join(EVENT_TYPES)}")
    if data.get("v", SCHEMA_VERSION) > SCHEMA_VERSION:
        raise RunLogError(f"{where}: event schema v{data['v']} is newer than this ESR (v{SCHEMA_VERSION})")
    try:
        return cls(**data)
    except TypeError as exc:
        raise RunLogError(f"{where}: malformed {cls.__name__} event ({exc})") from None
