"""Pieces every log reader may need, kept in one place so the readers agree; not a reader itself.

Option checks, bad-line reports, civil times, numbers and durations, request targets and headers.
Helpers raise `ValueError` saying what was wrong; each reader adds which field it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import quote_from_bytes

from esr.replay.record import BadLine

__all__ = [
    "CACHE_MAX",
    "COMMON_METHODS",
    "DECIMAL",
    "HOP_BY_HOP",
    "MONTHS",
    "MONTH_NAMES",
    "PLAIN_DECIMAL",
    "TEXT_CUT",
    "TOKEN",
    "UNSENDABLE",
    "BadTimeOfDay",
    "Memo",
    "Unreadable",
    "bad_line",
    "check_choice",
    "check_options",
    "decimal",
    "duration_ms",
    "end_to_end",
    "json_kind",
    "optional_count",
    "quote_wire",
    "shift",
    "show",
    "split_absolute",
    "utc_seconds",
    "valid_time_of_day",
    "wire_target",
]

TEXT_CUT = 200  # characters of a bad line kept for the report
CACHE_MAX = 1 << 16  # entries a `Memo` holds before it starts over

COMMON_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110), e.g. a method; use fullmatch
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTHS = {name.lower(): number for number, name in enumerate(MONTH_NAMES, 1)}
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade",
})  # fmt: skip

DECIMAL = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?")  # lenient: "+1", "2." (numbers in JSON strings)
PLAIN_DECIMAL = re.compile(r"(-?)(\d+)(?:\.(\d+))?")  # as AWS writes seconds: "-1", "0.004"

UNSENDABLE = re.compile(r"[^\x21-\x7e]")
# Everything printable but space and '#' may stand raw in a request target.
_WIRE_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) != "#")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class Unreadable(Exception):
    """A line that cannot become a record; the message says what was expected."""


class BadTimeOfDay(ValueError):
    """An hour, minute or second out of range; apart from a bad date, which readers word differently."""


# -- options and reports -----------------------------------------------------------------------
def check_options(reader: str, options: dict[str, object], known: tuple[str, ...] = ()) -> None:
    """Reject options a reader does not take, naming the ones it does, so a typo is not ignored."""
    if options:
        unknown = ", ".join(sorted(options))
        takes = f"known: {', '.join(known)}" if known else "it takes none"
        raise ValueError(f"unknown option(s) for the {reader} reader: {unknown}; {takes}")


def check_choice(option: str, value: object, choices: tuple[str, ...]) -> None:
    """Reject a value outside `choices`, listing them."""
    if value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(choices)}, not {value!r}")


def bad_line(reason: str, where: str, text: str) -> BadLine:
    """A `BadLine` holding only the head of the text: a report need not carry a megabyte line."""
    return BadLine(reason, where, text[:TEXT_CUT])


def show(text: str) -> str:
    """`text` quoted for a message, cut to 60 characters."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def json_kind(value: Any, array: str = "an array") -> str:
    """What a decoded JSON value is, for messages ("an object", "null", ...)."""
    if isinstance(value, list):
        return array
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    return "a number"


class Memo(dict[str, Any]):
    """Values computed once per distinct text (log times repeat line after line); emptied when full,
    so memory stays bounded whatever the input."""

    __slots__ = ("compute", "limit")

    def __init__(self, compute: Callable[[str], Any], limit: int = CACHE_MAX) -> None:
        super().__init__()
        self.compute = compute
        self.limit = limit

    def __missing__(self, key: str) -> Any:
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.compute(key)
        return value


# -- times -------------------------------------------------------------------------------------
def valid_time_of_day(hour: int, minute: int, second: int) -> bool:
    """Hour 00-23, minute 00-59, second 00-60 (a leap second is allowed)."""
    return hour <= 23 and minute <= 59 and second <= 60


def utc_seconds(
    year: int, month: int, day: int, hour: int, minute: int, second: int, frac: str | None = None, offset: int = 0
) -> float:
    """Unix seconds of a civil time `offset` seconds east of UTC, exact to the last fractional digit
    written (`frac` is the digits after the point); a float sum would lose microseconds.

    ValueError names a bad date; `BadTimeOfDay` says the time of day is out of range.
    """
    days = date(year, month, day).toordinal() - _EPOCH_ORDINAL  # ValueError names the bad part
    if not valid_time_of_day(hour, minute, second):
        raise BadTimeOfDay("time of day out of range (hour 00-23, minute 00-59, second 00-60)")
    whole = days * 86_400 + hour * 3_600 + minute * 60 + second - offset
    if not frac:
        return float(whole)
    scale = 10 ** len(frac)
    return (whole * scale + int(frac)) / scale


# -- numbers -----------------------------------------------------------------------------------
def decimal(text: str, pattern: re.Pattern[str] = DECIMAL) -> tuple[int, int] | None:
    """`"-12.345"` -> (-12345, 3): the exact value as an integer and its decimal places; None when
    `pattern` (sign, whole, fraction groups) does not match. Exact, so no float rounding creeps in."""
    match = pattern.fullmatch(text)
    if match is None:
        return None
    sign, whole, frac = match.groups()
    frac = frac or ""
    number = int(whole + frac)
    return (-number if sign == "-" else number), len(frac)


def shift(number: int, exponent: int) -> float:
    """number * 10**exponent, correctly rounded to a float."""
    if exponent >= 0:
        return float(number * 10**exponent)
    return number / 10**-exponent


def duration_ms(text: str, unit: str, whole_unit: str) -> float:
    """A logged duration ("0.004", "1520") in milliseconds. `unit` is "s", "ms", "us" or "auto":
    a number with a decimal point is then seconds and a whole number is in `whole_unit`."""
    if unit == "auto":
        unit = "s" if "." in text else whole_unit
    if unit == "s":
        return round(float(text) * 1000.0, 3)
    if unit == "us":
        return float(text) / 1000.0
    return float(text)


def optional_count(text: str, digits: int | None = None) -> int | None:
    """`-` -> None; ASCII digits (at most `digits` of them) -> their value; ValueError otherwise."""
    if text == "-":
        return None
    if text.isascii() and text.isdigit() and (digits is None or len(text) <= digits):
        return int(text)
    raise ValueError(f"{text[:40]!r} is not a whole number")


# -- request targets and headers ---------------------------------------------------------------
def split_absolute(rest: str) -> tuple[str, str]:
    """What follows `scheme://` in an absolute URL -> (authority, target as sent to an origin server):
    `h:8080/a?x=1` -> ("h:8080", "/a?x=1"), `h?x=1` -> ("h", "/?x=1"), `h` -> ("h", "/")."""
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
    return authority, target


def quote_wire(data: bytes) -> str:
    """Bytes of a target, percent-encoding all that may not stand raw in a request line."""
    return quote_from_bytes(data, safe=_WIRE_SAFE)


def wire_target(target: str) -> str:
    """Percent-encode what cannot be sent raw (spaces, controls, non-ASCII as UTF-8, undecodable
    bytes); UnicodeEncodeError for a lone surrogate that stands for no byte."""
    if UNSENDABLE.search(target) is None:
        return target
    return quote_wire(target.encode("utf-8", "surrogateescape"))


def end_to_end(headers: list[tuple[str, str]], hop_by_hop: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """The headers without hop-by-hop ones (those in `hop_by_hop` and those Connection names): the
    sender frames each request itself."""
    named = {
        token.strip().lower() for name, value in headers if name.lower() == "connection" for token in value.split(",")
    }
    return tuple(
        (name, value) for name, value in headers if name.lower() not in hop_by_hop and name.lower() not in named
    )
