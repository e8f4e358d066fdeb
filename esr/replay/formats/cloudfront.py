"""Amazon CloudFront standard (access) logs: W3C extended format, tab-separated.

    #Version: 1.0
    #Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status ...
    2019-12-04	21:02:31	LAX1	392	192.0.2.100	GET	d111111abcdef8.cloudfront.net	/index.html	200 ...

Columns are found by the `#Fields` line when there is one (a file may change them midway), else by
the documented default order. `date`/`time` are when CloudFront finished the response (UTC, whole
seconds). CloudFront percent-encodes `%`, spaces and other characters in every value, so values are
decoded once: the path and query come back as the client sent them on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes

from esr.replay.formats._aws_common import majority, method_token, seconds_to_ms
from esr.replay.formats._common import (
    Unreadable,
    bad_line,
    check_options,
    optional_count,
    quote_wire,
    utc_seconds,
    valid_time_of_day,
)
from esr.replay.record import LogRecord, Parsed, Skipped

__all__ = ["DEFAULT_FIELDS", "NAME", "parse", "sniff"]

NAME = "cloudfront"
SAMPLE = (  # a line (or file) of this format, for `esr replay --list-formats`
    '#Version: 1.0',
    '#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem '
    'sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) '
    'x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken',
    '2024-03-04\t09:00:01\tFRA56-P1\t1536\t203.0.113.7\tGET\td111111abcdef8.cloudfront.net\t/claims\t200\t-\tcurl/8.5.0\tid=3\t-\tMiss\tSOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==\tclaims.example.com\thttps\t210\t0.082',
)

DEFAULT_FIELDS: tuple[str, ...] = (
    "date", "time", "x-edge-location", "sc-bytes", "c-ip", "cs-method", "cs(Host)", "cs-uri-stem",
    "sc-status", "cs(Referer)", "cs(User-Agent)", "cs-uri-query", "cs(Cookie)", "x-edge-result-type",
    "x-edge-request-id", "x-host-header", "cs-protocol", "cs-bytes", "time-taken", "x-forwarded-for",
    "ssl-protocol", "ssl-cipher", "x-edge-response-result-type", "cs-protocol-version", "fle-status",
    "fle-encrypted-fields", "c-port", "time-to-first-byte", "x-edge-detailed-result-type",
    "sc-content-type", "sc-content-len", "sc-range-start", "sc-range-end",
)  # fmt: skip
_REQUIRED = ("date", "time", "cs-method", "cs-uri-stem")
_DEFAULT_MIN_COLUMNS = 12  # date .. cs-uri-query: in every CloudFront layout
_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)")
_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?")
_DATA = re.compile(r"\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\t[^\t]*\t")


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where each column we read sits in a data line."""

    names: tuple[str, ...]
    min_columns: int
    declared_at: int | None  # line of the #Fields line, None for the default order
    date: int
    time: int
    method: int
    stem: int
    query: int | None
    status: int | None
    bytes: int | None
    client: int | None
    host_header: int | None
    cs_host: int | None
    user_agent: int | None
    referer: int | None
    time_taken: int | None


def _columns(names: tuple[str, ...], declared_at: int | None) -> _Columns:
    index = {name: i for i, name in enumerate(names)}
    lacking = [name for name in _REQUIRED if name not in index]
    if lacking:
        raise ValueError(f"the #Fields line has no {', '.join(lacking)} column: cannot read requests without it")
    return _Columns(
        names=names,
        min_columns=len(names) if declared_at is not None else _DEFAULT_MIN_COLUMNS,
        declared_at=declared_at,
        date=index["date"],
        time=index["time"],
        method=index["cs-method"],
        stem=index["cs-uri-stem"],
        query=index.get("cs-uri-query"),
        status=index.get("sc-status"),
        bytes=index.get("sc-bytes"),
        client=index.get("c-ip"),
        host_header=index.get("x-host-header"),
        cs_host=index.get("cs(Host)"),
        user_agent=index.get("cs(User-Agent)"),
        referer=index.get("cs(Referer)"),
        time_taken=index.get("time-taken"),
    )


_DEFAULT_COLUMNS = _columns(DEFAULT_FIELDS, None)


def sniff(head: list[str]) -> bool:
    """A `#Fields:` line naming CloudFront's x-edge columns, or mostly `date<TAB>time<TAB>edge` lines."""
    for line in head:
        if line.startswith("#Fields:") and ("x-edge-location" in line or "x-edge-request-id" in line):
            return True
    return majority([line for line in head if not line.startswith("#")], _DATA)


def parse(lines: Iterable[tuple[int, str]], source: str, **options: object) -> Iterator[Parsed]:
    """Yield a record per CloudFront log line; `#` directives are skipped (and `#Fields` obeyed)."""
    check_options(NAME, options)
    return _parse(lines, source)


def _parse(lines: Iterable[tuple[int, str]], source: str) -> Iterator[Parsed]:
    columns: _Columns | None = _DEFAULT_COLUMNS
    unusable = ""
    for lineno, text in lines:
        where = f"{source}:{lineno}"
        if not text.strip():
            yield Skipped("blank line", where)
            continue
        if text[0] == "#":
            if text.startswith("#Fields:"):
                try:
                    columns = _columns(tuple(text[len("#Fields:") :].split()), lineno)
                except ValueError as exc:
                    columns = None
                    unusable = f"{exc} (#Fields at line {lineno})"
                    yield bad_line(str(exc), where, text)
                    continue
            yield Skipped("W3C directive", where)
            continue
        if columns is None:
            yield bad_line(f"no usable column list: {unusable}", where, text)
            continue
        try:
            yield _entry(text.split("\t"), columns, where)
        except Unreadable as exc:
            yield bad_line(str(exc), where, text)


def _entry(cols: list[str], columns: _Columns, where: str) -> Parsed:
    if len(cols) < columns.min_columns:
        if columns.declared_at is not None:
            declared = f"as the #Fields line at line {columns.declared_at} declares"
            expected = f"{columns.min_columns} tab-separated fields, {declared}"
        else:
            layout = "date time x-edge-location .. cs-uri-query"
            expected = f"at least {columns.min_columns} tab-separated fields ({layout})"
        hint = "; this line has no tabs (were they turned into spaces?)" if len(cols) == 1 and " " in cols[0] else ""
        raise Unreadable(f"too few fields: expected {expected}, got {len(cols)}{hint}")

    def field_error(i: int | None, message: str) -> Unreadable:
        return Unreadable(f"field {i + 1} ({columns.names[i]}): {message}" if i is not None else message)

    def value(i: int | None) -> str | None:
        if i is None or i >= len(cols):
            return None
        text = cols[i]
        return None if text in ("", "-") else text

    method_text = value(columns.method)
    stem = value(columns.stem)
    if method_text is None or stem is None:
        return Skipped("no request (cs-method or cs-uri-stem is '-')", where)
    try:
        method = method_token(method_text)
    except ValueError as exc:
        raise field_error(columns.method, str(exc)) from None
    path = _wire(stem)
    if not path.startswith("/"):
        raise field_error(columns.stem, f"expected a path starting with '/', got {stem[:80]!r}")
    query = value(columns.query)
    target = f"{path}?{_wire(query)}" if query is not None else path

    date_match = _DATE.fullmatch(cols[columns.date])
    if date_match is None:
        raise field_error(columns.date, f"expected a UTC date like 2019-12-04, got {cols[columns.date][:40]!r}")
    time_match = _TIME.fullmatch(cols[columns.time])
    if time_match is None:
        raise field_error(columns.time, f"expected a UTC time like 21:02:31, got {cols[columns.time][:40]!r}")
    hour, minute, second = (int(part) for part in time_match.group(1, 2, 3))
    frac = time_match.group(4)
    if not valid_time_of_day(hour, minute, second):
        raise field_error(columns.time, f"expected hour 00-23, minute 00-59, second 00-60, got {cols[columns.time]!r}")
    year, month, day = (int(part) for part in date_match.groups())
    try:
        time = utc_seconds(year, month, day, hour, minute, second, frac)
    except ValueError as exc:
        raise field_error(columns.date, f"{cols[columns.date]!r}: {exc}") from None

    status = None
    status_text = value(columns.status)
    if status_text is not None and status_text != "000":  # 000: the viewer hung up before any response
        if not (status_text.isascii() and status_text.isdigit() and len(status_text) == 3):
            raise field_error(columns.status, f"expected an HTTP status like 200 (or 000), got {status_text[:40]!r}")
        status = int(status_text)
    size = None
    size_text = value(columns.bytes)
    if size_text is not None:
        try:
            size = optional_count(size_text)
        except ValueError:
            raise field_error(columns.bytes, f"expected a byte count, got {size_text[:40]!r}") from None
    duration_ms = None
    taken = value(columns.time_taken)
    if taken is not None:
        try:
            duration_ms = seconds_to_ms(taken)
        except ValueError as exc:
            raise field_error(columns.time_taken, str(exc)) from None
        if duration_ms < 0:
            raise field_error(columns.time_taken, f"expected seconds >= 0, got {taken!r}")

    headers: list[tuple[str, str]] = []
    user_agent = value(columns.user_agent)
    if user_agent is not None:
        headers.append(("User-Agent", unquote(user_agent)))
    referer = value(columns.referer)
    if referer is not None:
        headers.append(("Referer", unquote(referer)))
    return LogRecord(
        time=time,
        method=method,
        target=target,
        source=where,
        status=status,
        duration_ms=duration_ms,
        bytes=size,
        client=value(columns.client),
        host=value(columns.host_header) or value(columns.cs_host),
        headers=tuple(headers),
    )


def _wire(logged: str) -> str:
    """Undo CloudFront's log encoding; re-encode only what cannot stand raw in a request target."""
    if "%" not in logged and logged.isascii() and " " not in logged and "#" not in logged:
        return logged
    return quote_wire(unquote_to_bytes(logged))
