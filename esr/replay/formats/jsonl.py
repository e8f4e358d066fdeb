"""JSON-lines access logs: one JSON object per line, fields found through a `FieldMap`.

Caddy's JSON access log, nginx's `log_format ... escape=json` layouts and ESR's own generic layout
come as presets; any other layout is read with a hand-written `FieldMap` of dotted paths.

    parse(lines, "access.log")                    # preset picked from the first object
    parse(lines, "access.log", preset="caddy")
    parse(lines, "access.log", field_map=FieldMap(time="@timestamp", method="http.method",
                                                  path="url.path", query="url.query"))

Times without a UTC offset (naive RFC 3339 under `time_format="auto"`, strptime patterns without
`%z`) are taken as UTC: the reader cannot know the zone the server wrote them in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from esr.replay.formats._common import (
    COMMON_METHODS,
    MONTHS,
    TOKEN,
    UNSENDABLE,
    BadTimeOfDay,
    Unreadable,
    bad_line,
    check_options,
    decimal,
    json_kind,
    shift,
    split_absolute,
    utc_seconds,
    wire_target,
)
from esr.replay.record import LogRecord, Parsed, Skipped

__all__ = ["NAME", "PRESETS", "FieldMap", "parse", "sniff"]

NAME = "json"
SAMPLE = (  # a line (or file) of this format, for `esr replay --list-formats`
    '{"ts":1709542801.5,"request":{"method":"GET","uri":"/claims?id=3","host":"claims.example"},"status":200,"duration":0.045}',
)

_TIME_KEYWORDS = ("auto", "epoch_s", "epoch_ms", "epoch_us", "rfc3339")
_EPOCH_DIGITS = {"epoch_s": 0, "epoch_ms": 3, "epoch_us": 6}
_DURATION_UNITS = ("s", "ms", "us", "ns")
_PATH_FIELDS = ("time", "method", "uri", "path", "query", "status", "duration", "bytes", "client", "host", "headers")
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(?:([Zz])|([+-])(\d\d):?(\d\d))?"
)
_CLF_TIME = re.compile(r"(\d\d)/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d)(?:\.(\d+))? ([+-])(\d\d)(\d\d)")
# Caddy writes these as "REDACTED" unless log_credentials is on; replaying the placeholder only earns 401s.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_REDACTED = "REDACTED"


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Where a layout keeps each request field: dotted paths into the object (`request.method`).

    A path may list alternatives, tried in order: `"request.client_ip|request.remote_ip"`. A key
    that itself contains dots (`"http.method": "GET"`) is found too. Give `uri` (path and query
    together) or `path` with an optional `query`, not both.

    time_format: "auto" (numbers and numeric strings are epoch seconds, milliseconds above 1e11,
    microseconds above 1e14; strings are RFC 3339 or `04/Mar/2024:09:00:01 +0000`), "epoch_s",
    "epoch_ms", "epoch_us", "rfc3339" (UTC offset required), or a `datetime.strptime` pattern.
    duration_unit: the unit of the duration field, "s", "ms", "us" or "ns".
    """

    time: str
    method: str
    uri: str | None = None
    path: str | None = None
    query: str | None = None
    status: str | None = None
    duration: str | None = None
    bytes: str | None = None
    client: str | None = None
    host: str | None = None
    headers: str | None = None
    time_format: str = "auto"
    duration_unit: str = "ms"

    def __post_init__(self) -> None:
        if (self.uri is None) == (self.path is None):
            raise ValueError("a FieldMap needs either uri (path and query together) or path, and not both")
        if self.query is not None and self.path is None:
            raise ValueError("FieldMap.query is only used with FieldMap.path; with uri the query is part of it")
        for name in _PATH_FIELDS:
            spec = getattr(self, name)
            if spec is None:
                continue
            if not isinstance(spec, str) or any(not part.strip() for alt in spec.split("|") for part in alt.split(".")):
                raise ValueError(
                    f"FieldMap.{name} = {spec!r} is not a dotted path like 'request.method' "
                    "(alternatives separated by '|')"
                )
        if self.time_format not in _TIME_KEYWORDS and "%" not in self.time_format:
            raise ValueError(
                f"FieldMap.time_format = {self.time_format!r}: expected one of {', '.join(_TIME_KEYWORDS)} "
                "or a strptime pattern such as '%Y-%m-%d %H:%M:%S%z'"
            )
        if self.duration_unit not in _DURATION_UNITS:
            raise ValueError(
                f"FieldMap.duration_unit = {self.duration_unit!r}: expected one of {', '.join(_DURATION_UNITS)}"
            )


PRESETS: dict[str, FieldMap] = {
    # Caddy's JSON access log (`log { format json }`): `ts` is float Unix seconds by default.
    "caddy": FieldMap(
        time="ts",
        method="request.method",
        uri="request.uri",
        status="status",
        duration="duration",
        bytes="size",
        client="request.client_ip|request.remote_ip",
        host="request.host",
        headers="request.headers",
        duration_unit="s",
    ),
    # nginx `log_format ... escape=json '{"msec":"$msec","request_method":"$request_method",...}'`.
    "nginx": FieldMap(
        time="msec|time_iso8601|time_local",
        method="request_method",
        uri="request_uri",
        status="status",
        duration="request_time",
        bytes="body_bytes_sent",
        client="remote_addr",
        host="host|http_host",
        duration_unit="s",
    ),
    # A plain layout for logs exported from other systems into JSON lines.
    "esr": FieldMap(
        time="time",
        method="method",
        uri="uri",
        status="status",
        duration="duration_ms",
        bytes="bytes",
        client="client",
        host="host",
        headers="headers",
        duration_unit="ms",
    ),
}


class _Plan(NamedTuple):
    build: Callable[[dict[str, Any], str], Parsed]
    matches: Callable[[dict[str, Any]], bool]


def sniff(head: list[str]) -> bool:
    """Most non-blank head lines are JSON objects (a one-line HAR file is not counted)."""
    lines = [line for line in head if line.strip()]
    objects = 0
    for line in lines:
        if not line.lstrip().startswith("{"):
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if type(obj) is dict and not (len(obj) == 1 and isinstance(obj.get("log"), dict)):
            objects += 1
    return objects > 0 and objects * 2 > len(lines)


def parse(
    lines: Iterable[tuple[int, str]],
    source: str,
    *,
    preset: str = "auto",
    field_map: FieldMap | None = None,
    **options: object,
) -> Iterator[Parsed]:
    """Yield a record per JSON object; `preset="auto"` uses the first preset that fits the first object."""
    check_options(NAME, options, ("preset", "field_map"))
    if field_map is not None:
        if preset != "auto":
            raise ValueError("give either preset or field_map, not both")
        if not isinstance(field_map, FieldMap):
            raise TypeError(f"field_map must be a FieldMap, not {type(field_map).__name__}")
        plan: _Plan | None = _compile(field_map, "the field map")
    elif preset == "auto":
        plan = None
    elif preset in PRESETS:
        plan = _compile(PRESETS[preset], f"the '{preset}' preset")
    else:
        raise ValueError(f"unknown JSON preset {preset!r}: expected auto, {', '.join(PRESETS)}, or a field_map")
    return _parse(lines, source, plan)


def _parse(lines: Iterable[tuple[int, str]], source: str, plan: _Plan | None) -> Iterator[Parsed]:
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    build = plan.build if plan is not None else None
    for lineno, text in lines:
        where = f"{source}:{lineno}"
        try:
            obj = loads(text)
        except decode_error as exc:
            if not text.strip():
                yield Skipped("blank line", where)
                continue
            if text.startswith("\ufeff"):
                try:
                    obj = loads(text[1:])
                except decode_error as exc2:
                    yield bad_line(_decode_reason(exc2, 1), where, text)
                    continue
            else:
                yield bad_line(_decode_reason(exc, 0), where, text)
                continue
        if type(obj) is not dict:
            yield bad_line(f"expected one JSON object per line, got {json_kind(obj)}", where, text)
            continue
        if build is None:
            build = _detect(obj)
            if build is None:
                yield bad_line(_no_preset_reason(obj), where, text)
                continue
        try:
            yield build(obj, where)
        except Unreadable as exc:
            yield bad_line(str(exc), where, text)


def _decode_reason(exc: orjson.JSONDecodeError, offset: int) -> str:
    return f"not JSON: {exc.msg} at column {exc.colno + offset}"


def _detect(obj: dict[str, Any]) -> Callable[[dict[str, Any], str], Parsed] | None:
    for name, field_map in PRESETS.items():
        plan = _compile(field_map, f"the '{name}' preset (picked from the first object)")
        if plan.matches(obj):
            return plan.build
    return None


def _no_preset_reason(obj: dict[str, Any]) -> str:
    keys = ", ".join(list(obj)[:12])
    wanted = "; ".join(
        f"{name}: {fm.time}, {fm.method}, {fm.uri or fm.path}" for name, fm in PRESETS.items()
    )
    return (
        f"no JSON preset fits this object: its keys are {keys}; the presets need {wanted}. "
        "Pass preset=... or a field_map"
    )


# -- paths ------------------------------------------------------------------------------------
def _getter(spec: str) -> Callable[[dict[str, Any]], Any]:
    """A function returning the value at the first alternative present (None when none is)."""
    getters = [_path_getter(alt.strip()) for alt in spec.split("|")]
    if len(getters) == 1:
        return getters[0]

    def first(obj: dict[str, Any]) -> Any:
        for get in getters:
            value = get(obj)
            if value is not None:
                return value
        return None

    return first


def _path_getter(path: str) -> Callable[[dict[str, Any]], Any]:
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]
        return lambda obj: obj.get(key)
    if len(parts) == 2:
        outer, inner = parts

        def get2(obj: dict[str, Any]) -> Any:
            nested = obj.get(outer)
            if type(nested) is dict:
                value = nested.get(inner)
                if value is not None:
                    return value
            return obj.get(path)

        return get2

    def get_deep(obj: dict[str, Any]) -> Any:
        node: Any = obj
        for part in parts:
            if type(node) is not dict:
                node = None
                break
            node = node.get(part)
        if node is not None:
            return node
        return obj.get(path)

    return get_deep


# -- the record builder -------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _compile(fm: FieldMap, label: str) -> _Plan:
    get_time = _getter(fm.time)
    get_method = _getter(fm.method)
    get_uri = _getter(fm.uri) if fm.uri is not None else None
    get_path = _getter(fm.path) if fm.path is not None else None
    get_query = _getter(fm.query) if fm.query is not None else None
    get_status = _getter(fm.status) if fm.status is not None else None
    get_duration = _getter(fm.duration) if fm.duration is not None else None
    get_bytes = _getter(fm.bytes) if fm.bytes is not None else None
    get_client = _getter(fm.client) if fm.client is not None else None
    get_host = _getter(fm.host) if fm.host is not None else None
    get_headers = _getter(fm.headers) if fm.headers is not None else None
    to_time = _time_converter(fm.time_format, fm.time)
    to_ms = _DURATION_CONVERTERS[fm.duration_unit]
    target_spec = fm.uri if fm.uri is not None else fm.path
    assert target_spec is not None

    def missing(what: str, spec: str) -> Unreadable:
        return Unreadable(
            f"no {what} at '{spec}' in this object; {label} reads it from there. Pick another preset or a field_map"
        )

    def build(obj: dict[str, Any], where: str) -> Parsed:
        raw_time = get_time(obj)
        if raw_time is None:
            raise missing("time", fm.time)
        method = get_method(obj)
        if method is None:
            raise missing("method", fm.method)
        if get_uri is not None:
            raw_target = get_uri(obj)
            if raw_target is None:
                raise missing("uri", target_spec)
            if type(raw_target) is not str:
                raise Unreadable(
                    f"uri at '{target_spec}' is {json_kind(raw_target)}, expected a string like '/claims?id=3'"
                )
            query = None
        else:
            assert get_path is not None
            raw_target = get_path(obj)
            if raw_target is None:
                raise missing("path", target_spec)
            if type(raw_target) is not str:
                raise Unreadable(
                    f"path at '{target_spec}' is {json_kind(raw_target)}, expected a string like '/claims'"
                )
            query = get_query(obj) if get_query is not None else None
        if type(method) is not str:
            raise Unreadable(f"method at '{fm.method}' is {json_kind(method)}, expected a string like 'GET'")
        if raw_target in ("", "-"):
            if method in ("", "-"):
                return Skipped("empty request (no method, no uri)", where)
            return Skipped("empty request uri", where)
        if method not in COMMON_METHODS:
            method = _method(method, fm.method)
        if raw_target[0] == "/":
            target = raw_target
            uri_host = None
        else:
            target, uri_host = _absolute(raw_target, target_spec)
        if query is not None:
            target = _with_query(target, query, fm.query or "")
        if UNSENDABLE.search(target) is not None:
            target = _wire(target)
        time = to_time(raw_time)

        status = None
        if get_status is not None:
            value = get_status(obj)
            if value is not None:
                status = value if type(value) is int and 0 <= value <= 999 else _status(value, fm.status or "")
        duration_ms = None
        if get_duration is not None:
            value = get_duration(obj)
            if value is not None:
                duration_ms = to_ms(value, fm.duration or "")
        size = None
        if get_bytes is not None:
            value = get_bytes(obj)
            if value is not None:
                size = value if type(value) is int and value >= 0 else _count(value, fm.bytes or "")
        client = _text(get_client(obj), "client", fm.client) if get_client is not None else None
        host = _text(get_host(obj), "host", fm.host) if get_host is not None else None
        headers: tuple[tuple[str, str], ...] = ()
        if get_headers is not None:
            value = get_headers(obj)
            if value is not None:
                headers = _headers(value, fm.headers or "")
        if host is None:
            host = uri_host or _header_host(headers)
        return LogRecord(
            time=time,
            method=method,
            target=target,
            source=where,
            status=status,
            duration_ms=duration_ms,
            bytes=size,
            client=client,
            host=host,
            headers=headers,
        )

    def matches(obj: dict[str, Any]) -> bool:
        target = get_uri(obj) if get_uri is not None else get_path(obj) if get_path is not None else None
        return get_time(obj) is not None and get_method(obj) is not None and target is not None

    return _Plan(build, matches)


def _method(value: str, spec: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise Unreadable(f"method at '{spec}' is empty while the uri is not: expected an HTTP method like 'GET'")
    if not TOKEN.fullmatch(stripped):
        raise Unreadable(
            f"method at '{spec}' is not an HTTP method: got {value[:40]!r}; expected letters and digits, no spaces"
        )
    return stripped.upper()


def _absolute(uri: str, spec: str) -> tuple[str, str | None]:
    """Absolute-form targets (`http://host/x`, as proxies log them) become path plus host."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in ("http", "https", "ws", "wss"):
        raise Unreadable(
            f"uri at '{spec}' is not a path: got {uri[:80]!r}; expected it to start with '/' (or http(s)://)"
        )
    authority, target = split_absolute(rest)
    return target, authority or None


def _wire(target: str) -> str:
    """Percent-encode what cannot be sent raw: spaces, controls, non-ASCII (as UTF-8)."""
    try:
        return wire_target(target)
    except UnicodeEncodeError:
        raise Unreadable(f"target is not text: got {target[:80]!r}; expected a path in UTF-8") from None


def _with_query(path: str, query: Any, spec: str) -> str:
    if type(query) is not str:
        raise Unreadable(f"query at '{spec}' is {json_kind(query)}, expected a string like 'id=3'")
    if query.startswith("?"):
        query = query[1:]
    if not query or query == "-":
        return path
    return f"{path}?{query}"


def _status(value: Any, spec: str) -> int | None:
    if type(value) is str:
        text = value.strip()
        if text in ("", "-"):
            return None
        if text.isascii() and text.isdigit():
            number = int(text)
            if number <= 999:
                return number
    elif type(value) is float and value.is_integer() and 0 <= value <= 999:
        return int(value)
    elif type(value) is int and 0 <= value <= 999:
        return value
    raise Unreadable(f"status at '{spec}' is not a number: got {value!r}; expected an HTTP status like 200")


def _count(value: Any, spec: str) -> int | None:
    if type(value) is str:
        text = value.strip()
        if text in ("", "-"):
            return None
        if text.isascii() and text.isdigit():
            return int(text)
    elif type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    raise Unreadable(f"bytes at '{spec}' is not a byte count: got {value!r}; expected a whole number >= 0")


def _text(value: Any, what: str, spec: str | None) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise Unreadable(f"{what} at '{spec}' is {json_kind(value)}, expected a string")
    if value in ("", "-"):
        return None
    return value


def _headers(value: Any, spec: str) -> tuple[tuple[str, str], ...]:
    if type(value) is not dict:
        raise Unreadable(
            f"headers at '{spec}' is {json_kind(value)}, expected an object of header name to string or list of strings"
        )
    pairs: list[tuple[str, str]] = []
    append = pairs.append
    for name, values in value.items():
        if type(values) is not list:
            values = [values]
        for item in values:
            if type(item) is not str:
                raise Unreadable(
                    f"header {name!r} at '{spec}' is {json_kind(item)}, expected a string or a list of strings"
                )
            if item == _REDACTED and name.lower() in _CREDENTIAL_HEADERS:
                continue
            append((name, item))
    return tuple(pairs)


def _header_host(headers: tuple[tuple[str, str], ...]) -> str | None:
    for name, value in headers:
        if name.lower() == "host":
            return value
    return None


# -- durations ---------------------------------------------------------------------------------
def _duration_converter(unit: str) -> Callable[[Any, str], float | None]:
    power = {"s": 3, "ms": 0, "us": -3, "ns": -6}[unit]

    def to_ms(value: Any, spec: str) -> float | None:
        kind = type(value)
        if kind is float or kind is int:
            if value < 0:
                raise Unreadable(f"duration at '{spec}' is negative: got {value!r}; expected a time in {unit} >= 0")
            if power == 0:
                return float(value)
            if power > 0:
                ms = value * 10**power
                return float(ms) if kind is int else round(ms, 6)
            return value / 10**-power
        if kind is str:
            text = value.strip()
            if text in ("", "-"):
                return None
            scaled = decimal(text)
            if scaled is not None:
                number, digits = scaled
                if number < 0:
                    raise Unreadable(f"duration at '{spec}' is negative: got {value!r}; expected a time in {unit} >= 0")
                return shift(number, power - digits)
        raise Unreadable(f"duration at '{spec}' is not a number: got {value!r}; expected a time in {unit}")

    return to_ms


_DURATION_CONVERTERS = {unit: _duration_converter(unit) for unit in _DURATION_UNITS}


# -- times -------------------------------------------------------------------------------------
def _time_converter(time_format: str, spec: str) -> Callable[[Any], float]:
    if time_format == "auto":
        return lambda value: _auto_time(value, spec)
    if time_format in _EPOCH_DIGITS:
        digits = _EPOCH_DIGITS[time_format]
        return lambda value: _epoch(value, digits, spec, time_format)
    if time_format == "rfc3339":
        return lambda value: _rfc3339(value, spec, need_offset=True)
    return lambda value: _strptime(value, time_format, spec)


def _bad_time(value: Any, spec: str, problem: str, detail: str = "") -> Unreadable:
    shown = repr(value) if not isinstance(value, str) else repr(value[:60])
    return Unreadable(f"time at '{spec}' {problem}: got {shown}" + (f"; {detail}" if detail else ""))


def _auto_time(value: Any, spec: str) -> float:
    kind = type(value)
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _bad_time(value, spec, "is not a finite number")
        magnitude = abs(value)
        if magnitude > 1e14:
            return value / 1e6
        if magnitude > 1e11:
            return value / 1e3
        return value
    if kind is int:
        magnitude = abs(value)
        digits = 6 if magnitude > 10**14 else 3 if magnitude > 10**11 else 0
        return value / 10**digits
    if kind is str:
        text = value.strip()
        scaled = decimal(text)
        if scaled is not None:
            number, places = scaled
            magnitude = abs(number) // 10**places
            digits = 6 if magnitude > 10**14 else 3 if magnitude > 10**11 else 0
            return shift(number, -places - digits)
        if _RFC3339.fullmatch(text):
            return _rfc3339(text, spec, need_offset=False)
        if _CLF_TIME.fullmatch(text):
            return _clf_time(text, spec)
    raise _bad_time(
        value,
        spec,
        "is not a time",
        "expected epoch seconds/ms/µs, RFC 3339 like 2024-03-04T09:00:01.5Z or 04/Mar/2024:09:00:01 +0000, "
        "or set time_format to a strptime pattern",
    )


def _epoch(value: Any, digits: int, spec: str, time_format: str) -> float:
    kind = type(value)
    if kind is int:
        return value / 10**digits
    if kind is float and value == value and abs(value) != float("inf"):
        return value / 10**digits if digits else value
    if kind is str:
        scaled = decimal(value.strip())
        if scaled is not None:
            number, places = scaled
            return shift(number, -places - digits)
    raise _bad_time(value, spec, f"is not a number ({time_format})")


def _rfc3339(value: Any, spec: str, need_offset: bool) -> float:
    match = _RFC3339.fullmatch(value.strip()) if type(value) is str else None
    if match is None:
        raise _bad_time(value, spec, "is not an RFC 3339 time", "expected e.g. 2024-03-04T09:00:01.123Z")
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    if zulu:
        offset = 0
    elif sign:
        if int(off_h) > 23 or int(off_m) > 59:
            raise _bad_time(value, spec, "has a UTC offset out of range", "expected -23:59 to +23:59")
        offset = (int(off_h) * 60 + int(off_m)) * 60
        if sign == "-":
            offset = -offset
    elif need_offset:
        raise _bad_time(
            value, spec, "has no UTC offset", "RFC 3339 needs Z or ±hh:mm; time_format='auto' reads such times as UTC"
        )
    else:
        offset = 0
    return _utc(value, spec, int(year), int(month), int(day), int(hour), int(minute), int(second), frac, offset)


def _clf_time(text: str, spec: str) -> float:
    match = _CLF_TIME.fullmatch(text)
    assert match is not None
    day, month_name, year, hour, minute, second, frac, sign, off_h, off_m = match.groups()
    month = MONTHS.get(month_name.lower())
    if month is None:
        raise _bad_time(text, spec, "has an unknown month name", "expected Jan to Dec")
    offset = (int(off_h) * 60 + int(off_m)) * 60
    if sign == "-":
        offset = -offset
    return _utc(text, spec, int(year), month, int(day), int(hour), int(minute), int(second), frac, offset)


def _utc(
    value: Any,
    spec: str,
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    frac: str | None,
    offset: int,
) -> float:
    try:
        return utc_seconds(year, month, day, hour, minute, second, frac, offset)
    except BadTimeOfDay:
        raise _bad_time(
            value, spec, "is not a valid time of day", "expected hour 00-23, minute 00-59, second 00-60"
        ) from None
    except ValueError as exc:
        raise _bad_time(value, spec, "is not a valid date", str(exc)) from None


def _strptime(value: Any, pattern: str, spec: str) -> float:
    if type(value) is not str:
        raise _bad_time(value, spec, "is not a string", f"time_format {pattern!r} reads strings")
    try:
        parsed = datetime.strptime(value.strip(), pattern)
    except ValueError as exc:
        raise _bad_time(value, spec, f"does not match time_format {pattern!r}", str(exc)) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()
