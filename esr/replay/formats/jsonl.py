"""JSON-lines access logs: one JSON object per line, fields found through a `FieldMap`.

Presets (`PRESETS`, each with a sample line in `PRESET_SAMPLES`) cover Caddy, nginx
`escape=json` layouts, ESR's own generic layout, Traefik, Envoy, Cloudflare Logpush, Elastic Common
Schema, the Google Cloud HTTP(S) load balancer, Fastly and Azure Front Door; any other layout is read
with a `FieldMap` of dotted paths, written by hand or from `--field-map` text (`parse_field_map`).

    parse(lines, "access.log")                    # preset picked from the first object
    parse(lines, "access.log", preset="traefik")
    parse(lines, "access.log", field_map=parse_field_map("time=ts,method=req.verb,path=req.uri"))

Epoch times are told apart by magnitude (seconds, milliseconds, microseconds, nanoseconds); a file
whose epoch times change unit part-way has those lines refused. `notes` (a dict) receives, per
file, the preset used and the kinds of time seen, for the replay plan.

Times without a UTC offset (naive RFC 3339 under `time_format="auto"`, strptime patterns without
`%z`) are taken as UTC: the reader cannot know the zone the server wrote them in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
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

__all__ = ["NAME", "PRESETS", "PRESET_SAMPLES", "FieldMap", "parse", "parse_field_map", "sniff"]

NAME = "json"
SAMPLE = (  # a line (or file) of this format, for `esr replay --list-formats`
    '{"ts":1709542801.5,"request":{"method":"GET","uri":"/claims?id=3","host":"claims.example"},"status":200,"duration":0.045}',
)

_TIME_KEYWORDS = ("auto", "epoch_s", "epoch_ms", "epoch_us", "rfc3339")
_EPOCH_DIGITS = {"epoch_s": 0, "epoch_ms": 3, "epoch_us": 6}
# The kinds of time a file is noted to hold; epoch units are told apart by magnitude.
_EPOCH_KINDS = {0: "epoch seconds", 3: "epoch milliseconds", 6: "epoch microseconds", 9: "epoch nanoseconds"}
_RFC3339_KIND = "RFC 3339"
_CLF_KIND = "common log time"
_EPOCH_UNIT_KINDS = frozenset(_EPOCH_KINDS.values())
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
    together), or `path` with an optional `query`, or both: `uri` is read when the object has it,
    else `path` and `query`. Either may hold an absolute URL; its host becomes the record's host.

    time_format: "auto" (numbers and numeric strings are epoch seconds, milliseconds above 1e11,
    microseconds above 1e14, nanoseconds above 1e17; strings are RFC 3339 or
    `04/Mar/2024:09:00:01 +0000`), "epoch_s",
    "epoch_ms", "epoch_us", "rfc3339" (UTC offset required), or a `datetime.strptime` pattern.
    duration_unit: the unit of the duration field, "s", "ms", "us" or "ns"; a string may end in
    that unit (`"0.058927s"`, as Google Cloud writes latencies).
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
        if self.uri is None and self.path is None:
            raise ValueError("a FieldMap needs uri (path and query together) or path (with an optional query)")
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
    # Traefik `accessLog.format: json`; `time` is the log line's own time, to the second.
    "traefik": FieldMap(
        time="StartUTC|StartLocal|time",
        method="RequestMethod",
        uri="RequestPath",
        status="DownstreamStatus|OriginStatus",
        duration="Duration",
        bytes="DownstreamContentSize",
        client="ClientHost",
        host="RequestHost",
        duration_unit="ns",
    ),
    # Envoy `json_format` with the names of its default format (as Istio writes them); `path` is
    # %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% there, the original path is preferred when logged apart.
    "envoy": FieldMap(
        time="start_time",
        method="method",
        uri="x-envoy-original-path|path",
        status="response_code",
        duration="duration",
        bytes="bytes_sent",
        client="downstream_remote_address",
        host="authority",
        duration_unit="ms",
    ),
    # Cloudflare Logpush, http_requests dataset; EdgeStartTimestamp is RFC 3339 or Unix s/ns,
    # by the job's timestamp_format. No total request time is logged (only time to first byte).
    "cloudflare": FieldMap(
        time="EdgeStartTimestamp",
        method="ClientRequestMethod",
        uri="ClientRequestURI",
        status="EdgeResponseStatus",
        bytes="EdgeResponseBytes",
        client="ClientIP",
        host="ClientRequestHost",
    ),
    # Elastic Common Schema: nested objects or flattened dotted keys; event.duration is nanoseconds.
    "ecs": FieldMap(
        time="@timestamp",
        method="http.request.method",
        uri="url.original|url.full",
        path="url.path",
        query="url.query",
        status="http.response.status_code",
        duration="event.duration",
        bytes="http.response.body.bytes",
        client="client.ip|source.ip",
        host="url.domain",
        duration_unit="ns",
    ),
    # Google Cloud HTTP(S) load balancer request logs (Cloud Logging LogEntry); requestUrl is a full
    # URL, latency a protobuf Duration ("0.058927s"), responseSize an int64 string.
    "gcp-lb": FieldMap(
        time="timestamp",
        method="httpRequest.requestMethod",
        uri="httpRequest.requestUrl",
        status="httpRequest.status",
        duration="httpRequest.latency",
        bytes="httpRequest.responseSize",
        client="httpRequest.remoteIp",
        duration_unit="s",
    ),
    # Fastly's JSON logging format (its "useful log formats" guide); time_elapsed is
    # %{time.elapsed.usec}V, in microseconds.
    "fastly": FieldMap(
        time="timestamp",
        method="request_method|method",
        uri="url",
        status="response_status|status",
        duration="time_elapsed",
        bytes="response_body_size",
        client="client_ip",
        host="host",
        duration_unit="us",
    ),
    # Azure Front Door access log (FrontDoorAccessLog; classic FrontdoorAccessLog has the same
    # names): requestUri is a full URL, timeTaken seconds, numbers are strings.
    "azure-frontdoor": FieldMap(
        time="time",
        method="properties.httpMethod",
        uri="properties.requestUri",
        status="properties.httpStatusCode",
        duration="properties.timeTaken",
        bytes="properties.responseBytes",
        client="properties.clientIp|properties.clientIP",
        host="properties.hostName",
        duration_unit="s",
    ),
}

# Preset name -> (the product and log, one line as it writes it), for `esr replay --list-formats`.
PRESET_SAMPLES: dict[str, tuple[str, str]] = {
    "caddy": (
        "Caddy JSON access log (log { format json })",
        '{"level":"info","ts":1709542801.5241024,"logger":"http.log.access","msg":"handled request",'
        '"request":{"remote_ip":"203.0.113.7","client_ip":"203.0.113.7","proto":"HTTP/2.0","method":"GET",'
        '"host":"claims.example.com","uri":"/claims?id=3","headers":{"User-Agent":["curl/8.5.0"]}},'
        '"duration":0.000929675,"size":512,"status":200}',
    ),
    "nginx": (
        "nginx log_format ... escape=json with the variables' own names",
        '{"msec":"1709542801.123","time_iso8601":"2024-03-04T10:00:01+01:00","remote_addr":"203.0.113.7",'
        '"request_method":"GET","request_uri":"/claims/42?expand=1","status":"200","body_bytes_sent":"512",'
        '"request_time":"0.005","host":"claims.example.com"}',
    ),
    "esr": (
        "ESR's plain layout for logs converted to JSON lines",
        '{"time":"2024-03-04T09:00:01.250Z","method":"GET","uri":"/claims?id=3","status":200,"duration_ms":4.5,'
        '"bytes":512,"client":"203.0.113.7","host":"claims.example.com"}',
    ),
    "traefik": (
        "Traefik access log, format json",
        '{"ClientHost":"203.0.113.7","DownstreamContentSize":512,"DownstreamStatus":200,"Duration":4512345,'
        '"OriginStatus":200,"RequestHost":"claims.example.com","RequestMethod":"GET","RequestPath":"/claims?id=3",'
        '"RequestProtocol":"HTTP/1.1","RouterName":"claims@docker","StartUTC":"2024-03-04T09:00:01.25Z",'
        '"level":"info","msg":"","time":"2024-03-04T09:00:01Z"}',
    ),
    "envoy": (
        "Envoy JSON access log (json_format, as Istio lays it out)",
        '{"start_time":"2024-03-04T09:00:01.250Z","method":"GET","path":"/claims/42?expand=1",'
        '"protocol":"HTTP/1.1","response_code":200,"response_flags":"-","bytes_sent":512,"duration":12,'
        '"downstream_remote_address":"203.0.113.7:51234","authority":"claims.example.com",'
        '"upstream_host":"10.0.0.5:8080"}',
    ),
    "cloudflare": (
        "Cloudflare Logpush, http_requests dataset",
        '{"ClientIP":"203.0.113.7","ClientRequestHost":"claims.example.com","ClientRequestMethod":"GET",'
        '"ClientRequestURI":"/claims?id=3","EdgeResponseBytes":1024,"EdgeResponseStatus":200,'
        '"EdgeStartTimestamp":1709542801250000000,"RayID":"85f1b2c3d4e5f607"}',
    ),
    "ecs": (
        "Elastic Common Schema (ECS) HTTP events",
        '{"@timestamp":"2024-03-04T09:00:01.250Z","event":{"duration":4512345},"http":{"request":{"method":"GET"},'
        '"response":{"status_code":200}},"url":{"original":"/claims?id=3","domain":"claims.example.com"},'
        '"source":{"ip":"203.0.113.7"}}',
    ),
    "gcp-lb": (
        "Google Cloud HTTP(S) load balancer request log (Cloud Logging)",
        '{"httpRequest":{"latency":"0.058927s","remoteIp":"203.0.113.7","requestMethod":"GET",'
        '"requestUrl":"https://claims.example.com/claims?id=3","responseSize":"1467","status":200},'
        '"resource":{"type":"http_load_balancer"},"severity":"INFO","timestamp":"2024-03-04T09:00:01.250000Z"}',
    ),
    "fastly": (
        "Fastly real-time log streaming, JSON format",
        '{"timestamp":"2024-03-04T09:00:01+0000","client_ip":"203.0.113.7","host":"claims.example.com",'
        '"url":"/claims?id=3","request_method":"GET","response_status":200,"response_body_size":1467,'
        '"time_elapsed":58927}',
    ),
    "azure-frontdoor": (
        "Azure Front Door access log (FrontDoorAccessLog)",
        '{"time":"2024-03-04T09:00:01.2500000Z","category":"FrontDoorAccessLog","properties":{"httpMethod":"GET",'
        '"requestUri":"https://claims.example.com:443/claims?id=3","hostName":"claims.example.com",'
        '"clientIp":"203.0.113.7","httpStatusCode":"200","responseBytes":"1467","timeTaken":"0.059"}}',
    ),
}

# `--field-map` keys: a field's dotted path each, but duration_unit (a unit).
_MAP_KEYS = ("time", "method", "path", "query", "status", "duration", "duration_unit", "bytes", "client", "host",
             "headers")
_MAP_NEEDS = {
    "time": "the time of the request",
    "method": "the HTTP method",
    "path": "the request path, with or without its query, or a full URL",
}
_MAP_EXAMPLE = "time=ts,method=verb,path=uri"
_MAP_HINT = {"time": "ts", "method": "verb", "path": "uri", "client": "client_ip"}


def parse_field_map(text: str, base: FieldMap | None = None) -> FieldMap:
    """`--field-map` text (`time=ts,method=req.verb,path=req.uri,status=code,duration=took,duration_unit=s`)
    as a `FieldMap`. Over `base` (a preset) the entries given replace the preset's; `path` replaces
    where the preset reads the path and query from. ValueError says what is wrong and what is expected."""
    if not text.strip():
        raise ValueError(f"--field-map is empty; expected e.g. {_MAP_EXAMPLE}")
    given: dict[str, str] = {}
    written: dict[str, str] = {}
    for raw in text.split(","):
        pair = raw.strip()
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or "=" in value:
            raise ValueError(f"--field-map: {pair!r} is not KEY=FIELD; expected e.g. {_MAP_EXAMPLE}")
        if key not in _MAP_KEYS:
            raise ValueError(
                f"--field-map: unknown key {key!r} in {pair!r}; expected {', '.join(_MAP_KEYS[:-1])} or {_MAP_KEYS[-1]}"
            )
        if key in given:
            raise ValueError(f"--field-map: {key} is given twice ({written[key]!r}, {pair!r})")
        if key == "duration_unit":
            if value not in _DURATION_UNITS:
                raise ValueError(f"--field-map: duration_unit={value!r}; expected s, ms, us or ns")
        elif not value:
            raise ValueError(
                f"--field-map: {key}= names no field; expected a field name such as {key}={_MAP_HINT.get(key, key)}"
            )
        elif any(not part.strip() for alt in value.split("|") for part in alt.split(".")):
            raise ValueError(
                f"--field-map: {key}={value!r} is not a field path; expected a name, dotted for nested objects "
                "(request.method)"
            )
        given[key], written[key] = value, pair
    if base is None:
        lacking = [key for key in _MAP_NEEDS if key not in given]
        if lacking:
            raise ValueError(
                f"--field-map needs {', '.join(lacking)} ({'; '.join(_MAP_NEEDS[key] for key in lacking)}); give "
                f"time, method and path, e.g. {_MAP_EXAMPLE}, or start from a --preset"
            )
        return FieldMap(**given)  # type: ignore[arg-type]
    changes: dict[str, str | None] = dict(given)
    if "path" in given:
        changes["uri"] = None
        changes.setdefault("query", None)
    elif "query" in given and base.path is None:
        raise ValueError(
            f"--field-map: query={given['query']} needs path=FIELD too: the preset reads the path and query "
            f"together from '{base.uri}'"
        )
    return replace(base, **changes)  # type: ignore[arg-type]


class _Plan(NamedTuple):
    build: Callable[[dict[str, Any], str, _FileTimes], Parsed]
    matches: Callable[[dict[str, Any]], bool]


class _FileTimes:
    """The kinds of time one file held so far (noted for the plan), and its epoch unit: the first
    epoch time fixes it, and a later one in another unit is refused."""

    __slots__ = ("epoch", "epoch_where", "kinds", "last")

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.last: str | None = None
        self.epoch: str | None = None
        self.epoch_where = ""

    def see(self, kind: str, where: str, value: Any, spec: str) -> None:
        if kind in _EPOCH_UNIT_KINDS:
            if self.epoch is None:
                self.epoch, self.epoch_where = kind, where
            elif kind != self.epoch:
                raise Unreadable(
                    f"time at '{spec}' mixes epoch units: {kind} here (got {value!r}) but {self.epoch} at "
                    f"{self.epoch_where}; expected one unit per file"
                )
        if kind not in self.kinds:
            self.kinds.append(kind)
        self.last = kind


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
    notes: dict[str, dict[str, Any]] | None = None,
    **options: object,
) -> Iterator[Parsed]:
    """Yield a record per JSON object; `preset="auto"` uses the first preset that fits the first object.

    `notes`, when given, gets `notes[source] = {"preset": name or "field map" (None while none fits),
    "timestamps": [kinds of time seen, e.g. "epoch milliseconds", "RFC 3339"]}`, kept current as
    lines are read."""
    check_options(NAME, options, ("preset", "field_map", "notes"))
    if field_map is not None:
        if preset != "auto":
            raise ValueError("give either preset or field_map, not both")
        if not isinstance(field_map, FieldMap):
            raise TypeError(f"field_map must be a FieldMap, not {type(field_map).__name__}")
        plan: _Plan | None = _compile(field_map, "the field map")
        name: str | None = "field map"
    elif preset == "auto":
        plan, name = None, None
    elif preset in PRESETS:
        plan, name = _compile(PRESETS[preset], f"the '{preset}' preset"), preset
    else:
        raise ValueError(f"unknown JSON preset {preset!r}: expected auto, {', '.join(PRESETS)}, or a field_map")
    return _parse(lines, source, plan, name, notes)


def _parse(
    lines: Iterable[tuple[int, str]],
    source: str,
    plan: _Plan | None,
    name: str | None,
    notes: dict[str, dict[str, Any]] | None,
) -> Iterator[Parsed]:
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    build = plan.build if plan is not None else None
    times = _FileTimes()
    note: dict[str, Any] = {"preset": name, "timestamps": times.kinds}
    if notes is not None:
        notes[source] = note
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
            detected = _detect(obj)
            if detected is None:
                yield bad_line(_no_preset_reason(obj), where, text)
                continue
            note["preset"], build = detected
        try:
            yield build(obj, where, times)
        except Unreadable as exc:
            yield bad_line(str(exc), where, text)


def _decode_reason(exc: orjson.JSONDecodeError, offset: int) -> str:
    return f"not JSON: {exc.msg} at column {exc.colno + offset}"


def _detect(obj: dict[str, Any]) -> tuple[str, Callable[[dict[str, Any], str, _FileTimes], Parsed]] | None:
    for name, field_map in PRESETS.items():
        plan = _compile(field_map, f"the '{name}' preset (picked from the first object)")
        if plan.matches(obj):
            return name, plan.build
    return None


def _no_preset_reason(obj: dict[str, Any]) -> str:
    keys = ", ".join(list(obj)[:12])
    return (
        f"no JSON preset fits this object: its keys are {keys}; pass --preset NAME ({', '.join(PRESETS)}) "
        "or --field-map time=FIELD,method=FIELD,path=FIELD"
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
    assert fm.uri is not None or fm.path is not None
    if fm.uri is not None and fm.path is not None:
        missing_target = ("uri", f"{fm.uri}|{fm.path}")
    else:
        missing_target = ("uri", fm.uri) if fm.uri is not None else ("path", fm.path or "")

    def missing(what: str, spec: str) -> Unreadable:
        key = "path" if what in ("uri", "path") else what
        return Unreadable(
            f"no {what} at '{spec}' in this object; {label} reads it from there: pick another --preset, "
            f"or name the field with --field-map {key}=FIELD"
        )

    def build(obj: dict[str, Any], where: str, times: _FileTimes) -> Parsed:
        raw_time = get_time(obj)
        if raw_time is None:
            raise missing("time", fm.time)
        method = get_method(obj)
        if method is None:
            raise missing("method", fm.method)
        raw_target = get_uri(obj) if get_uri is not None else None
        query = None
        if raw_target is not None:
            target_spec = fm.uri or ""
            if type(raw_target) is not str:
                raise Unreadable(
                    f"uri at '{target_spec}' is {json_kind(raw_target)}, expected a string like '/claims?id=3'"
                )
        elif get_path is not None and (raw_target := get_path(obj)) is not None:
            target_spec = fm.path or ""
            if type(raw_target) is not str:
                raise Unreadable(
                    f"path at '{target_spec}' is {json_kind(raw_target)}, expected a string like '/claims'"
                )
            query = get_query(obj) if get_query is not None else None
        else:
            raise missing(*missing_target)
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
        time, kind = to_time(raw_time)
        if kind is not times.last:
            times.see(kind, where, raw_time, fm.time)

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
        has_target = (get_uri is not None and get_uri(obj) is not None) or (
            get_path is not None and get_path(obj) is not None
        )
        return has_target and get_time(obj) is not None and get_method(obj) is not None

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
            if text.endswith(unit):  # "0.058927s", a protobuf Duration in JSON
                text = text[: -len(unit)]
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
def _time_converter(time_format: str, spec: str) -> Callable[[Any], tuple[float, str]]:
    """value -> (Unix seconds, the kind of time it was, as `_FileTimes` notes it)."""
    if time_format == "auto":
        return lambda value: _auto_time(value, spec)
    if time_format in _EPOCH_DIGITS:
        digits = _EPOCH_DIGITS[time_format]
        kind = _EPOCH_KINDS[digits]
        return lambda value: (_epoch(value, digits, spec, time_format), kind)
    if time_format == "rfc3339":
        return lambda value: (_rfc3339(value, spec, need_offset=True), _RFC3339_KIND)
    pattern_kind = f"pattern {time_format}"
    return lambda value: (_strptime(value, time_format, spec), pattern_kind)


def _bad_time(value: Any, spec: str, problem: str, detail: str = "") -> Unreadable:
    shown = repr(value) if not isinstance(value, str) else repr(value[:60])
    return Unreadable(f"time at '{spec}' {problem}: got {shown}" + (f"; {detail}" if detail else ""))


def _epoch_digits(magnitude: float) -> int:
    """Decimal digits below the second in an epoch number this large: 0 for seconds (up to 1e11,
    year 5138), 3 for milliseconds, 6 for microseconds (above 1e14), 9 for nanoseconds (above 1e17)."""
    return 9 if magnitude > 1e17 else 6 if magnitude > 1e14 else 3 if magnitude > 1e11 else 0


def _auto_time(value: Any, spec: str) -> tuple[float, str]:
    kind = type(value)
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _bad_time(value, spec, "is not a finite number")
        digits = _epoch_digits(abs(value))
        if not digits:
            return value, _EPOCH_KINDS[0]
        # 1.70954280125e18 is not exact as a float; its shortest repr is what the log wrote
        return float(Decimal(repr(value)).scaleb(-digits)), _EPOCH_KINDS[digits]
    if kind is int:
        digits = _epoch_digits(abs(value))
        return value / 10**digits, _EPOCH_KINDS[digits]
    if kind is str:
        text = value.strip()
        scaled = decimal(text)
        if scaled is not None:
            number, places = scaled
            digits = _epoch_digits(abs(number) // 10**places)
            return shift(number, -places - digits), _EPOCH_KINDS[digits]
        if _RFC3339.fullmatch(text):
            return _rfc3339(text, spec, need_offset=False), _RFC3339_KIND
        if _CLF_TIME.fullmatch(text):
            return _clf_time(text, spec), _CLF_KIND
    raise _bad_time(
        value,
        spec,
        "is not a time",
        "expected epoch seconds, milliseconds, microseconds or nanoseconds, RFC 3339 like 2024-03-04T09:00:01.5Z "
        "or 04/Mar/2024:09:00:01 +0000, or set time_format to a strptime pattern",
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
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
