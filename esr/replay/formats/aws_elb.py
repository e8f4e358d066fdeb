"""AWS Classic Load Balancer (ELB) access logs.

    time elb client:port backend:port request_processing_time backend_processing_time
    response_processing_time elb_status_code backend_status_code received_bytes sent_bytes
    "request" "user_agent" ssl_cipher ssl_protocol

`time` is when the load balancer received the request. Older logs end after `"request"`; TCP and
SSL listeners log `"- - - "` as the request, which is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from esr.replay.formats._aws_common import (
    TEXT_CUT,
    iso_z_time,
    majority,
    seconds_to_ms,
    split_fields,
    split_request_line,
    strip_port,
    sum_seconds_to_ms,
)
from esr.replay.record import BadLine, LogRecord, Parsed, Skipped

__all__ = ["NAME", "parse", "sniff"]

NAME = "elb"

_FIELD_NAMES = (
    "time", "elb", "client:port", "backend:port", "request_processing_time", "backend_processing_time",
    "response_processing_time", "elb_status_code", "backend_status_code", "received_bytes", "sent_bytes",
    "request", "user_agent", "ssl_cipher", "ssl_protocol",
)  # fmt: skip
_MIN_FIELDS = 12  # through "request"
_HEAD = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z \S+ \S+:\d+ (?:\S+:\d+|-) -?\d")


class _Bad(Exception):
    pass


def sniff(head: list[str]) -> bool:
    """Lines start `<ISO time>Z <name> <client:port> <backend:port or -> <seconds>`."""
    return majority(head, _HEAD)


def parse(lines: Iterable[tuple[int, str]], source: str, **options: object) -> Iterator[Parsed]:
    """Yield a record per Classic ELB entry."""
    if options:
        unknown = ", ".join(sorted(options))
        raise ValueError(f"unknown option(s) for the {NAME} reader: {unknown}; it takes none")
    return _parse(lines, source)


def _parse(lines: Iterable[tuple[int, str]], source: str) -> Iterator[Parsed]:
    for lineno, text in lines:
        where = f"{source}:{lineno}"
        if not text.strip():
            yield Skipped("blank line", where)
            continue
        try:
            yield _entry(split_fields(text), where)
        except _Bad as exc:
            yield BadLine(str(exc), where, text[:TEXT_CUT])


def _field_error(index: int, message: str) -> _Bad:
    return _Bad(f"field {index + 1} ({_FIELD_NAMES[index]}): {message}")


def _entry(fields: list[str], where: str) -> Parsed:
    if len(fields) < _MIN_FIELDS:
        raise _Bad(
            f"too few fields: expected at least {_MIN_FIELDS} space-separated fields (time elb client:port "
            f"backend:port 3 processing times, 2 status codes, 2 byte counts, \"request\"), got {len(fields)}"
        )
    try:
        time = iso_z_time(fields[0])
    except ValueError as exc:
        raise _field_error(0, str(exc)) from None
    try:
        request = split_request_line(fields[11])
    except ValueError as exc:
        raise _field_error(11, str(exc)) from None
    if request is None:
        return Skipped("no request line (TCP/SSL listener or unreadable request)", where)
    method, target, host = request
    try:
        duration_ms = sum_seconds_to_ms(fields[4:7])
    except ValueError:
        raise _first_bad_seconds(fields, (4, 5, 6)) from None
    status = _optional_int(fields, 7, "an HTTP status code like 200")
    size = _optional_int(fields, 10, "a byte count")
    user_agent = fields[12] if len(fields) > 12 else "-"
    return LogRecord(
        time=time,
        method=method,
        target=target,
        source=where,
        status=status,
        duration_ms=duration_ms,
        bytes=size,
        client=strip_port(fields[2]),
        host=host,
        headers=(("User-Agent", user_agent),) if user_agent not in ("", "-") else (),
    )


def _first_bad_seconds(fields: list[str], indexes: tuple[int, ...]) -> _Bad:
    for index in indexes:
        try:
            seconds_to_ms(fields[index])
        except ValueError as exc:
            return _field_error(index, str(exc))
    raise AssertionError("no bad processing time found")


def _optional_int(fields: list[str], index: int, expected: str) -> int | None:
    text = fields[index]
    if text == "-":
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    raise _field_error(index, f"expected {expected} or '-', got {text[:40]!r}")
