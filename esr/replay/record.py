"""What log readers yield: one `LogRecord` per request, or why a line gave none.

Every reader module in `esr.replay.formats` has the same three names:

    NAME: str                                   e.g. "combined"
    sniff(head: list[str]) -> bool              True if the first lines look like this format
    parse(lines: Iterable[tuple[int, str]], source: str, **options) -> Iterator[Parsed]

`lines` are (line number, text without its line ending), from one file; `source` is the file's
name for messages. A reader is pure: no file access, no clock reads, no network.

`parse` yields, per line (or per entry, for HAR and GoReplay files):
- `LogRecord`: a request to replay, with its original time (Unix seconds, UTC);
- `Skipped`: a well-formed line with nothing to replay (a `"-"` or empty request line, a
  comment or header line of the format), counted, not an error;
- `BadLine`: a malformed line, with the reason (what was expected) and where it is.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

__all__ = ["BadLine", "LogRecord", "Parsed", "Skipped"]


@dataclass(frozen=True, slots=True)
class LogRecord:
    time: float  # when the request arrived (or completed, if the log says so), Unix seconds UTC
    method: str  # upper case
    target: str  # path and query as sent, always starting with "/" ("/claims?id=3")
    source: str  # "file:line" (or "file#entry" for HAR and GoReplay), for reports and errors
    status: int | None = None  # the original response status, when the log has it
    duration_ms: float | None = None  # the original request time, when the log has it
    bytes: int | None = None  # response bytes, when the log has it
    client: str | None = None  # client address or host name
    host: str | None = None  # the Host / vhost the request went to
    headers: tuple[tuple[str, str], ...] = ()  # request headers, when the log has them (HAR, GoReplay)
    body: builtins.bytes | None = field(default=None, repr=False)  # request body, when the log has it
    # the zone the log wrote this time in, seconds east of UTC, when the line says (CLF's -0700):
    # a --from/--to time without a zone is read on this clock; None: UTC. Not part of equality:
    # the same instant written in another zone is the same request
    utc_offset: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str  # e.g. "empty request line", "W3C directive"
    source: str


@dataclass(frozen=True, slots=True)
class BadLine:
    reason: str  # what was wrong and what was expected, e.g. "time '32/Oct/2024:..': day out of range"
    source: str  # "file:line"
    text: str  # the line (cut to 200 characters), for the report


Parsed = LogRecord | Skipped | BadLine
