"""JSON lines for events: the one place that knows how events are encoded and decoded.

Events are msgspec Structs tagged by `type`, so one typed decoder turns a line into the right
event class (and checks every field) in one pass.
"""

from __future__ import annotations

from typing import Union

import msgspec

from esr.core.errors import RunLogError
from esr.core.events import EVENT_TYPES, SCHEMA_VERSION, Event

__all__ = ["decode", "encode"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Union[tuple(EVENT_TYPES.values())])  # noqa: UP007


def encode(event: Event) -> bytes:
    """One JSON line (with its newline) for `event`."""
    return _encoder.encode(event) + b"\n"


def decode(line: bytes | str, where: str = "") -> Event:
    """The event in one JSON line; `where` (file:line) goes into the error message."""
    try:
        event: Event = _decoder.decode(line)
    except msgspec.ValidationError as exc:
        _check_version(line, where)
        known = ", ".join(EVENT_TYPES)
        raise RunLogError(f"{where}: not a valid event ({exc}); known event types: {known}") from None
    except msgspec.DecodeError as exc:
        raise RunLogError(f"{where}: not a JSON event ({exc})") from None
    if event.v > SCHEMA_VERSION:
        _newer(event.v, where)
    return event


class _Versioned(msgspec.Struct):
    v: int = SCHEMA_VERSION


def _check_version(line: bytes | str, where: str) -> None:
    """An event that does not fit may simply be from a newer ESR: say so."""
    try:
        version = msgspec.json.decode(line, type=_Versioned).v
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    if version > SCHEMA_VERSION:
        _newer(version, where)


def _newer(version: int, where: str) -> None:
    raise RunLogError(f"{where}: event schema v{version} is newer than this ESR (v{SCHEMA_VERSION}); upgrade ESR")
