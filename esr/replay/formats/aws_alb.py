"""AWS Application Load Balancer access logs (the `.log.gz` files ALB writes to S3).

    type time elb client:port target:port request_processing_time target_processing_time
    response_processing_time elb_status_code target_status_code received_bytes sent_bytes
    "request" "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name"
    "chosen_cert_arn" matched_rule_priority request_creation_time "actions_executed" ...

AWS appends fields over the years, so only the fields up to `"request"` are required and any
trailing ones are ignored. The record's time is `request_creation_time` (when ALB received the
request); `time` is when it answered, and is used only when the former is absent or `-`.
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

NAME = "alb"

_FIELD_NAMES = (
    "type", "time", "elb", "client:port", "target:port", "request_processing_time",
    "target_processing_time", "response_processing_time", "elb_status_code", "target_status_code",
    "received_bytes", "sent_bytes", "request", "user_agent", "ssl_cipher", "ssl_protocol",
    "target_group_arn", "trace_id", "domain_name", "chosen_cert_arn", "matched_rule_priority",
    "request_creation_time",
)  # fmt: skip
_MIN_FIELDS = 13  # through "request"
_TYPE = re.compile(r"[a-z][a-z0-9]*")
_HEAD = re.compile(r"[a-z][a-z0-9]* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z \S+ ")


class _Bad(Exception):
    pass


def sniff(head: list[str]) -> bool:
    """Lines start `<type> <ISO time>Z <elb> `, e.g. `https 2024-03-04T09:00:01.123456Z app/...`."""
    return majority(head, _HEAD)


def parse(
    lines: Iterable[tuple[int, str]],
    source: str,
    *,
    time_field: str = "request_creation_time",
    **options: object,
) -> Iterator[Parsed]:
    """Yield a record per ALB entry; `time_field="time"` dates requests by when ALB answered instead."""
    if options:
        unknown = ", ".join(sorted(options))
        raise ValueError(f"unknown option(s) for the {NAME} reader: {unknown}; known: time_field")
    if time_field not in ("request_creation_time", "time"):
        raise ValueError(f"time_field {time_field!r}: expected 'request_creation_time' or 'time'")
    return _parse(lines, source, time_field == "request_creation_time")


def _field_error(index: int, message: str) -> _Bad:
    return _Bad(f"field {index + 1} ({_FIELD_NAMES[index]}): {message}")


def _parse(lines: Iterable[tuple[int, str]], source: str, by_creation: bool) -> Iterator[Parsed]:
    for lineno, text in lines:
        where = f"{source}:{lineno}"
        if not text.strip():
            yield Skipped("blank line", where)
            continue
        try:
            yield _entry(split_fields(text), where, by_creation)
        except _Bad as exc:
            yield BadLine(str(exc), where, text[:TEXT_CUT])


def _entry(fields: list[str], where: str, by_creation: bool) -> Parsed:
    if len(fields) < _MIN_FIELDS:
        raise _Bad(
            f"too few fields: expected at least {_MIN_FIELDS} space-separated fields (type time elb client:port "
            f"target:port 3 processing times, 2 status codes, 2 byte counts, \"request\"), got {len(fields)}"
        )
    if not _TYPE.fullmatch(fields[0]):
        raise _field_error(0, f"expected a request type like http, https, h2, grpcs, ws or wss, got {fields[0][:40]!r}")
    time_index = 21 if by_creation and len(fields) > 21 and fields[21] != "-" else 1
    try:
        time = iso_z_time(fields[time_index])
    except ValueError as exc:
        raise _field_error(time_index, str(exc)) from None
    try:
        request = split_request_line(fields[12])
    except ValueError as exc:
        raise _field_error(12, str(exc)) from None
    if request is None:
        return Skipped("no request line (the load balancer could not read a request)", where)
    method, target, host = request
    try:
        duration_ms = sum_seconds_to_ms(fields[5:8])
    except ValueError:
        raise _first_bad_seconds(fields, (5, 6, 7)) from None
    status = _optional_int(fields, 8, "an HTTP status code like 200")
    size = _optional_int(fields, 11, "a byte count")
    if host is None and len(fields) > 18 and fields[18] not in ("", "-"):
        host = fields[18]
    user_agent = fields[13] if len(fields) > 13 else "-"
    return LogRecord(
        time=time,
        method=method,
        target=target,
        source=where,
        status=status,
        duration_ms=duration_ms,
        bytes=size,
        client=strip_port(fields[3]),
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
