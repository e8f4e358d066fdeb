"""Pieces the AWS readers share (ALB, Classic ELB, CloudFront); not a reader itself.

Helpers raise `ValueError` with what was wrong; the readers add which field it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from urllib.parse import quote_from_bytes

__all__ = [
    "TEXT_CUT",
    "WIRE_SAFE",
    "host_without_default_port",
    "iso_z_time",
    "majority",
    "method_token",
    "seconds_to_ms",
    "split_fields",
    "split_request_line",
    "strip_port",
    "sum_seconds_to_ms",
    "utc_seconds",
    "wire_target",
]

TEXT_CUT = 200

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_FIELD = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"|([^ ]+)')
_ESCAPE = re.compile(r"\\(.)")
_ISO_Z = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")
_DECIMAL = re.compile(r"(-?)(\d+)(?:\.(\d+))?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNSENDABLE = re.compile(r"[^\x21-\x7e]")
# Everything printable but space and '#' may stand raw in a request target.
WIRE_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) != "#")
_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443", "h2": "443", "grpcs": "443"}


def split_fields(line: str) -> list[str]:
    """Space-separated fields where `"..."` keeps spaces together; quotes are removed, `\\"` unescaped."""
    return [bare or (_ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted) for quoted, bare in _FIELD.findall(line)]


def utc_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int, frac: str | None) -> float:
    """Unix seconds of a UTC civil time, exact to the last fractional digit written."""
    days = date(year, month, day).toordinal() - _EPOCH_ORDINAL  # ValueError names the bad part
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError("time of day out of range (hour 00-23, minute 00-59, second 00-60)")
    whole = days * 86_400 + hour * 3_600 + minute * 60 + second
    if not frac:
        return float(whole)
    scale = 10 ** len(frac)
    return (whole * scale + int(frac)) / scale


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


def _decimal(text: str) -> tuple[int, int]:
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise ValueError(f"expected a number of seconds like 0.004, got {text[:40]!r}")
    sign, whole, frac = match.groups()
    frac = frac or ""
    number = int(whole + frac)
    return (-number if sign else number), len(frac)


def _to_ms(number: int, places: int) -> float:
    if places >= 3:
        return number / 10 ** (places - 3)
    return float(number * 10 ** (3 - places))


def seconds_to_ms(text: str) -> float:
    """`"0.082"` (seconds, as AWS logs write them) -> 82.0 ms, exactly as written."""
    number, places = _decimal(text)
    return _to_ms(number, places)


def sum_seconds_to_ms(texts: Iterable[str]) -> float | None:
    """The sum of several second counts in ms; None when any is negative (`-1`: no target reached)."""
    parts = [_decimal(text) for text in texts]
    if any(number < 0 for number, _ in parts):
        return None
    places = max(p for _, p in parts)
    total = sum(number * 10 ** (places - p) for number, p in parts)
    return _to_ms(total, places)


def wire_target(target: str) -> str:
    """Percent-encode what cannot be sent raw (spaces, controls, non-ASCII, undecodable bytes)."""
    if _UNSENDABLE.search(target) is None:
        return target
    return quote_from_bytes(target.encode("utf-8", "surrogateescape"), safe=WIRE_SAFE)


def method_token(text: str) -> str:
    """An HTTP method, upper case."""
    if not _TOKEN.fullmatch(text):
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
    cut = len(rest)
    for mark in "/?":
        at = rest.find(mark)
        if 0 <= at < cut:
            cut = at
    authority, target = rest[:cut], rest[cut:]
    if not target:
        target = "/"
    elif target[0] == "?":
        target = "/" + target
    host = host_without_default_port(authority, scheme) if authority else None
    return method, wire_target(target), host


def majority(head: list[str], pattern: re.Pattern[str]) -> bool:
    """More than half of the non-blank head lines start like `pattern` (the last may be cut short)."""
    lines = [line for line in head if line.strip()]
    hits = sum(1 for line in lines if pattern.match(line))
    return hits > 0 and hits * 2 > len(lines)
