"""Pieces the AWS readers share (ALB, Classic ELB, CloudFront); not a reader itself.

ALB and Classic ELB logs differ only in where their fields sit, so one reader serves both, driven
by a `BalancerLog` layout. Helpers raise `ValueError` with what was wrong; the readers add which
field it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from esr.replay.formats._common import (
    PLAIN_DECIMAL,
    TOKEN,
    Unreadable,
    bad_line,
    decimal,
    optional_count,
    shift,
    split_absolute,
    utc_seconds,
    wire_target,
)
from esr.replay.record import LogRecord, Parsed, Skipped

__all__ = [
    "BalancerLog",
    "host_without_default_port",
    "iso_z_time",
    "majority",
    "method_token",
    "read_balancer_log",
    "seconds_to_ms",
    "split_fields",
    "split_request_line",
    "strip_port",
    "sum_seconds_to_ms",
]

_FIELD = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"|([^ ]+)')
_ESCAPE = re.compile(r"\\(.)")
_ISO_Z = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")
_TYPE = re.compile(r"[a-z][a-z0-9]*")
_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443", "h2": "443", "grpcs": "443"}


def split_fields(line: str) -> list[str]:
    """Space-separated fields where `"..."` keeps spaces together; quotes are removed, `\\"` unescaped."""
    return [bare or (_ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted) for quoted, bare in _FIELD.findall(line)]


def iso_z_time(text: str) -> float:
    """`2024-03-04T09:00:01.123456Z` -> Unix seconds."""
    match = _ISO_Z.fullmatch(text)
    if match is None:
        raise ValueError(f"expected an ISO 8601 UTC time like 2024-03-04T09:00:01.123456Z, got {text[:40]!r}")
    y, mo, d, h, mi, s, frac = match.groups()
    try:
        return utc_seconds(int(y), int(mo), int(d), int(h), int(mi), int(s), frac)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def _seconds(text: str) -> tuple[int, int]:
    scaled = decimal(text, PLAIN_DECIMAL)
    if scaled is None:
        raise ValueError(f"expected a number of seconds like 0.004, got {text[:40]!r}")
    return scaled


def seconds_to_ms(text: str) -> float:
    """`"0.082"` (seconds, as AWS logs write them) -> 82.0 ms, exactly as written."""
    number, places = _seconds(text)
    return shift(number, 3 - places)


def sum_seconds_to_ms(texts: Iterable[str]) -> float | None:
    """The sum of several second counts in ms; None when any is negative (`-1`: no target reached)."""
    parts = [_seconds(text) for text in texts]
    if any(number < 0 for number, _ in parts):
        return None
    places = max(p for _, p in parts)
    total = sum(number * 10 ** (places - p) for number, p in parts)
    return shift(total, 3 - places)


def method_token(text: str) -> str:
    """An HTTP method, upper case."""
    if not TOKEN.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not an HTTP method")
    return text.upper()


def strip_port(address: str) -> str | None:
    """`192.0.2.1:443` / `[2001:db8::1]:443` / `2001:db8::1:443` -> the address without its port."""
    if address in ("", "-"):
        return None
    if address.startswith("["):
        end = address.find("]")
        return address[1:end] if end > 0 else address
    host, sep, port = address.rpartition(":")
    if sep and host and port.isdigit():
        return host
    return address


def host_without_default_port(authority: str, scheme: str) -> str:
    """`example.com:443` under https -> `example.com`; a non-default port is part of the Host header."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError(f"host {authority!r} has an unclosed '['")
        host, rest = authority[: end + 1], authority[end + 1 :]
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise ValueError(f"host {authority!r}: expected ':port' after ']'")
    else:
        host, sep, port_text = authority.rpartition(":")
        if not sep:
            host, port = authority, None
        else:
            port = port_text
    if port is not None:
        if not port.isascii() or not port.isdigit():
            raise ValueError(f"port {port!r} in {authority!r} is not a number")
        if port != _DEFAULT_PORTS.get(scheme.lower()):
            return f"{host}:{port}"
    if not host:
        raise ValueError(f"{authority!r} has no host name")
    return host


def split_request_line(line: str) -> tuple[str, str, str | None] | None:
    """`GET https://example.com:443/claims?x=1 HTTP/1.1` -> ("GET", "/claims?x=1", "example.com").

    None when the load balancer logged no request (`-`, `- - -`, `- http://host:80- -`).
    """
    line = line.strip()
    method, sep, rest = line.partition(" ")
    if method in ("", "-"):
        return None
    if not sep:
        raise ValueError(f"expected 'METHOD URL PROTOCOL', got {line[:80]!r}")
    url, sep, protocol = rest.rpartition(" ")
    if not sep or not protocol.startswith("HTTP/"):
        url = rest  # no protocol word: HTTP/0.9 style or a truncated line
    if not url or url == "-":
        raise ValueError(f"expected 'METHOD URL PROTOCOL', got {line[:80]!r}")
    method = method_token(method)
    if url[0] == "/":
        return method, wire_target(url), None
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"URL {url[:80]!r} is neither absolute (scheme://host:port/path) nor a path")
    authority, target = split_absolute(rest)
    host = host_without_default_port(authority, scheme) if authority else None
    return method, wire_target(target), host


def majority(head: list[str], pattern: re.Pattern[str]) -> bool:
    """More than half of the non-blank head lines start like `pattern` (the last may be cut short)."""
    lines = [line for line in head if line.strip()]
    hits = sum(1 for line in lines if pattern.match(line))
    return hits > 0 and hits * 2 > len(lines)


@dataclass(frozen=True, slots=True)
class BalancerLog:
    """Where a load balancer's access log keeps each field a record needs, by position."""

    names: tuple[str, ...]  # the documented field names, for messages
    layout: str  # the fields before the processing times, for "too few fields"
    no_request: str  # why a line without a request line is skipped
    time: int
    client: int
    seconds: tuple[int, int, int]  # request, target/backend and response processing times
    status: int
    bytes: int
    request: int
    user_agent: int
    kind: int | None = None  # ALB's request type (http, https, h2, ...)
    creation_time: int | None = None  # ALB's request_creation_time, preferred to `time` when asked
    domain: int | None = None  # ALB's domain_name (SNI), the host when the URL names none


def read_balancer_log(
    lines: Iterable[tuple[int, str]], source: str, log: BalancerLog, by_creation: bool = False
) -> Iterator[Parsed]:
    """A record per ALB or Classic ELB entry laid out as `log` says."""
    for lineno, text in lines:
        where = f"{source}:{lineno}"
        if not text.strip():
            yield Skipped("blank line", where)
            continue
        try:
            yield _balancer_entry(split_fields(text), where, log, by_creation)
        except Unreadable as exc:
            yield bad_line(str(exc), where, text)


def _field_error(log: BalancerLog, index: int, message: str) -> Unreadable:
    return Unreadable(f"field {index + 1} ({log.names[index]}): {message}")


def _balancer_entry(fields: list[str], where: str, log: BalancerLog, by_creation: bool) -> Parsed:
    if len(fields) <= log.request:
        raise Unreadable(
            f"too few fields: expected at least {log.request + 1} space-separated fields ({log.layout} "
            f"3 processing times, 2 status codes, 2 byte counts, \"request\"), got {len(fields)}"
        )
    if log.kind is not None and not _TYPE.fullmatch(kind := fields[log.kind]):
        expected = "a request type like http, https, h2, grpcs, ws or wss"
        raise _field_error(log, log.kind, f"expected {expected}, got {kind[:40]!r}")
    time_index = log.time
    created = log.creation_time
    if by_creation and created is not None and len(fields) > created and fields[created] != "-":
        time_index = created
    try:
        time = iso_z_time(fields[time_index])
    except ValueError as exc:
        raise _field_error(log, time_index, str(exc)) from None
    try:
        request = split_request_line(fields[log.request])
    except ValueError as exc:
        raise _field_error(log, log.request, str(exc)) from None
    if request is None:
        return Skipped(log.no_request, where)
    method, target, host = request
    try:
        duration_ms = sum_seconds_to_ms([fields[index] for index in log.seconds])
    except ValueError:
        raise _first_bad_seconds(log, fields) from None
    status = _optional_int(log, fields, log.status, "an HTTP status code like 200")
    size = _optional_int(log, fields, log.bytes, "a byte count")
    if host is None and log.domain is not None and len(fields) > log.domain and fields[log.domain] not in ("", "-"):
        host = fields[log.domain]
    user_agent = fields[log.user_agent] if len(fields) > log.user_agent else "-"
    return LogRecord(
        time=time,
        method=method,
        target=target,
        source=where,
        status=status,
        duration_ms=duration_ms,
        bytes=size,
        client=strip_port(fields[log.client]),
        host=host,
        headers=(("User-Agent", user_agent),) if user_agent not in ("", "-") else (),
    )


def _first_bad_seconds(log: BalancerLog, fields: list[str]) -> Unreadable:
    for index in log.seconds:
        try:
            seconds_to_ms(fields[index])
        except ValueError as exc:
            return _field_error(log, index, str(exc))
    raise AssertionError("no bad processing time found")


def _optional_int(log: BalancerLog, fields: list[str], index: int, expected: str) -> int | None:
    text = fields[index]
    try:
        return optional_count(text)
    except ValueError:
        raise _field_error(log, index, f"expected {expected} or '-', got {text[:40]!r}") from None
