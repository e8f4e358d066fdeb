"""esr.replay.formats.jsonl: JSON-lines access logs (Caddy, nginx escape=json, ESR's layout, field maps)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from esr.replay.formats import jsonl
from esr.replay.formats.jsonl import PRESETS, FieldMap
from esr.replay.record import BadLine, LogRecord, Parsed, Skipped

T0 = 1709542801.0  # 2024-03-04T09:00:01Z


def run(lines: list[str], **options: Any) -> list[Parsed]:
    return list(jsonl.parse(enumerate(lines, start=1), "access.log", **options))


def one(line: str | dict[str, Any], **options: Any) -> Parsed:
    text = line if isinstance(line, str) else orjson.dumps(line).decode()
    (result,) = run([text], **options)
    return result


def bad(line: str | dict[str, Any], **options: Any) -> BadLine:
    result = one(line, **options)
    assert isinstance(result, BadLine), result
    return result


def record(line: str | dict[str, Any], **options: Any) -> LogRecord:
    result = one(line, **options)
    assert isinstance(result, LogRecord), result
    return result


_DROP = object()  # marks a key the helpers below remove

# Caddy's JSON access log, as its docs show it (`log { format json }`, Caddy 2.7+).
CADDY_LINE = (
    '{"level":"info","ts":1709542801.5241024,"logger":"http.log.access.log0","msg":"handled request",'
    '"request":{"remote_ip":"10.0.0.5","remote_port":"41342","client_ip":"203.0.113.7","proto":"HTTP/2.0",'
    '"method":"GET","host":"claims.example.com","uri":"/claims?id=3&status=open",'
    '"headers":{"User-Agent":["curl/8.5.0"],"Accept":["*/*"],"Accept-Encoding":["gzip, deflate, br"],'
    '"Authorization":["REDACTED"],"Cookie":["REDACTED"],"X-Trace":["a","b"]},'
    '"tls":{"resumed":false,"version":772,"cipher_suite":4865,"proto":"h2","server_name":"claims.example.com"}},'
    '"bytes_read":0,"user_id":"","duration":0.000929675,"size":10900,"status":200,'
    '"resp_headers":{"Server":["Caddy"],"Content-Type":["application/json"]}}'
)


def caddy(**changes: Any) -> dict[str, Any]:
    obj = orjson.loads(CADDY_LINE)
    request_changes = changes.pop("request", {})
    obj["request"].update(request_changes)
    obj.update(changes)
    for key, value in list(obj["request"].items()):
        if value is _DROP:
            del obj["request"][key]
    for key, value in list(obj.items()):
        if value is _DROP:
            del obj[key]
    return obj



def nginx(**changes: Any) -> dict[str, Any]:
    """log_format json escape=json '{"msec":"$msec","time_iso8601":"$time_iso8601",...}' — all strings."""
    obj: dict[str, Any] = {
        "msec": "1709542801.123",
        "time_iso8601": "2024-03-04T10:00:01+01:00",
        "remote_addr": "203.0.113.7",
        "request_method": "POST",
        "request_uri": "/claims/42/approve?notify=1",
        "status": "201",
        "body_bytes_sent": "512",
        "request_time": "0.005",
        "host": "claims.example.com",
        "http_user_agent": "Mozilla/5.0",
    }
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not _DROP}


def esr(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "time": "2024-03-04T09:00:01.250Z",
        "method": "PUT",
        "uri": "/claims/7",
        "status": 204,
        "duration_ms": 12.5,
        "bytes": 0,
        "client": "198.51.100.4",
        "host": "claims.internal",
        "headers": {"Content-Type": "application/json", "Accept": ["application/json", "text/plain"]},
    }
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not _DROP}


# -- Caddy ---------------------------------------------------------------------------------------
def test_caddy_line_becomes_one_exact_record() -> None:
    assert one(CADDY_LINE, preset="caddy") == LogRecord(
        time=1709542801.5241024,
        method="GET",
        target="/claims?id=3&status=open",
        source="access.log:1",
        status=200,
        duration_ms=0.929675,
        bytes=10900,
        client="203.0.113.7",
        host="claims.example.com",
        headers=(
            ("User-Agent", "curl/8.5.0"),
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate, br"),
            ("X-Trace", "a"),
            ("X-Trace", "b"),
        ),
    )


def test_auto_preset_reads_caddy_the_same_way() -> None:
    assert one(CADDY_LINE) == one(CADDY_LINE, preset="caddy")


def test_caddy_without_client_ip_uses_remote_ip() -> None:
    assert record(caddy(request={"client_ip": _DROP})).client == "10.0.0.5"


def test_caddy_credentials_logged_with_log_credentials_are_kept() -> None:
    rec = record(caddy(request={"headers": {"Authorization": ["Bearer abc"], "Cookie": ["REDACTED", "sid=1"]}}))
    assert rec.headers == (("Authorization", "Bearer abc"), ("Cookie", "sid=1"))


def test_a_redacted_value_of_an_ordinary_header_is_kept() -> None:
    rec = record(caddy(request={"headers": {"X-Note": ["REDACTED"]}}))
    assert rec.headers == (("X-Note", "REDACTED"),)


def test_caddy_iso8601_time_format_is_read_by_auto() -> None:
    assert record(caddy(ts="2024-03-04T10:00:01.524+0100")).time == 1709542801.524


def test_caddy_integer_ts() -> None:
    rec = record(caddy(ts=1709542801))
    assert rec.time == T0
    assert type(rec.time) is float


def test_caddy_zero_duration_and_size() -> None:
    rec = record(caddy(duration=0, size=0))
    assert rec.duration_ms == 0.0
    assert type(rec.duration_ms) is float
    assert rec.bytes == 0


def test_caddy_missing_uri_names_the_path_and_the_preset() -> None:
    line = bad(caddy(request={"uri": _DROP}), preset="caddy")
    assert line.reason == (
        "no uri at 'request.uri' in this object; the 'caddy' preset reads it from there: "
        "pick another --preset, or name the field with --field-map path=FIELD"
    )
    assert line.source == "access.log:1"


def test_caddy_missing_time_and_method() -> None:
    assert bad(caddy(ts=_DROP), preset="caddy").reason.startswith("no time at 'ts' in this object; the 'caddy' preset")
    assert bad(caddy(request={"method": _DROP}), preset="caddy").reason.startswith("no method at 'request.method'")


def test_null_counts_as_missing() -> None:
    assert bad(caddy(ts=None), preset="caddy").reason.startswith("no time at 'ts'")


def test_caddy_optional_fields_may_be_absent() -> None:
    rec = record(
        {"ts": 1709542801.25, "request": {"method": "HEAD", "uri": "/health"}},
        preset="caddy",
    )
    assert rec == LogRecord(time=1709542801.25, method="HEAD", target="/health", source="access.log:1")


def test_caddy_request_that_is_not_an_object_is_missing_fields() -> None:
    assert bad({"ts": 1.0, "request": "GET /"}, preset="caddy").reason.startswith("no method at 'request.method'")


# -- nginx ---------------------------------------------------------------------------------------
def test_nginx_json_line_with_string_values() -> None:
    assert one(nginx(), preset="nginx") == LogRecord(
        time=1709542801.123,
        method="POST",
        target="/claims/42/approve?notify=1",
        source="access.log:1",
        status=201,
        duration_ms=5.0,
        bytes=512,
        client="203.0.113.7",
        host="claims.example.com",
    )


def test_auto_picks_nginx() -> None:
    assert one(nginx()) == one(nginx(), preset="nginx")


def test_nginx_time_iso8601_when_there_is_no_msec() -> None:
    assert record(nginx(msec=_DROP)).time == T0


def test_nginx_time_local_when_there_is_neither() -> None:
    rec = record(nginx(msec=_DROP, time_iso8601=_DROP, time_local="04/Mar/2024:04:00:01 -0500"))
    assert rec.time == T0


def test_nginx_numbers_may_be_unquoted() -> None:
    rec = record(nginx(msec=1709542801.5, status=404, body_bytes_sent=0, request_time=0.25))
    assert (rec.time, rec.status, rec.bytes, rec.duration_ms) == (1709542801.5, 404, 0, 250.0)


def test_nginx_http_host_when_host_is_absent() -> None:
    assert record(nginx(host=_DROP, http_host="claims.example.com:8080")).host == "claims.example.com:8080"


def test_nginx_bad_request_with_empty_method_and_uri_is_skipped() -> None:
    assert one(nginx(request_method="", request_uri="", status="400")) == Skipped(
        "empty request (no method, no uri)", "access.log:1"
    )


def test_empty_uri_with_a_method_is_skipped() -> None:
    assert one(nginx(request_uri="-")) == Skipped("empty request uri", "access.log:1")


def test_empty_method_with_a_uri_is_bad() -> None:
    assert bad(nginx(request_method="")).reason == (
        "method at 'request_method' is empty while the uri is not: expected an HTTP method like 'GET'"
    )


def test_nginx_status_that_is_not_a_number() -> None:
    assert bad(nginx(status="OK")).reason == ("status at 'status' is not a number: got 'OK'; "
                                              "expected an HTTP status like 200")


def test_nginx_dash_values_are_absent() -> None:
    rec = record(nginx(status="-", body_bytes_sent="-", request_time="-", remote_addr="-", host="", http_host="-"))
    assert (rec.status, rec.bytes, rec.duration_ms, rec.client, rec.host) == (None, None, None, None, None)


def test_absolute_form_uri_gives_the_path_and_the_host() -> None:
    rec = record(nginx(request_uri="http://proxy.example.com:8080/claims?id=1", host=_DROP))
    assert (rec.target, rec.host) == ("/claims?id=1", "proxy.example.com:8080")


def test_host_field_wins_over_the_absolute_uri_host() -> None:
    assert record(nginx(request_uri="https://a.example/x")).host == "claims.example.com"


@pytest.mark.parametrize(
    ("uri", "target"),
    [
        ("https://example.com", "/"),
        ("https://example.com?x=1", "/?x=1"),
        ("HTTP://example.com/a/b", "/a/b"),
        ("wss://example.com/socket", "/socket"),
    ],
)
def test_absolute_form_edge_cases(uri: str, target: str) -> None:
    assert record(nginx(request_uri=uri)).target == target


@pytest.mark.parametrize("uri", ["*", "claims/1", "ftp://example.com/x", " /x"])
def test_uri_that_is_not_a_path(uri: str) -> None:
    reason = bad(nginx(request_uri=uri)).reason
    assert reason == f"uri at 'request_uri' is not a path: got {uri!r}; expected it to start with '/' (or http(s)://)"


@pytest.mark.parametrize(
    ("uri", "target"),
    [
        ("/claims/café?q=a b", "/claims/caf%C3%A9?q=a%20b"),
        ("/tab\there", "/tab%09here"),
        ("/a{b}|c?x=\"y\"", '/a{b}|c?x="y"'),
        ("/already%20encoded", "/already%20encoded"),
    ],
)
def test_targets_are_encoded_only_where_they_cannot_be_sent_raw(uri: str, target: str) -> None:
    assert record(nginx(request_uri=uri)).target == target


def test_double_slash_path_is_kept() -> None:
    assert record(nginx(request_uri="//x")).target == "//x"


# -- ESR's generic layout --------------------------------------------------------------------------
def test_esr_layout() -> None:
    assert one(esr()) == LogRecord(
        time=1709542801.25,
        method="PUT",
        target="/claims/7",
        source="access.log:1",
        status=204,
        duration_ms=12.5,
        bytes=0,
        client="198.51.100.4",
        host="claims.internal",
        headers=(("Content-Type", "application/json"), ("Accept", "application/json"), ("Accept", "text/plain")),
    )


def test_esr_epoch_millisecond_time() -> None:
    assert record(esr(time=1709542801250)).time == 1709542801.25


def test_host_falls_back_to_the_host_header() -> None:
    assert record(esr(host=_DROP, headers={"Host": "api.example.com"})).host == "api.example.com"


def test_lowercase_method_is_upper_cased() -> None:
    assert record(esr(method="patch")).method == "PATCH"
    assert record(esr(method=" get ")).method == "GET"


def test_extension_method_is_kept() -> None:
    assert record(esr(method="PROPFIND")).method == "PROPFIND"


def test_whitespace_around_the_method_is_trimmed() -> None:
    assert record(esr(method="GET\t")).method == "GET"


@pytest.mark.parametrize("method", ["GE T", "<script>", "GÉT", "GET\x00"])
def test_method_that_is_not_a_token(method: str) -> None:
    assert bad(esr(method=method)).reason == (
        f"method at 'method' is not an HTTP method: got {method!r}; expected letters and digits, no spaces"
    )


@pytest.mark.parametrize(("value", "kind"), [(5, "a number"), (["GET"], "an array"), (True, "a boolean")])
def test_method_of_the_wrong_type(value: object, kind: str) -> None:
    assert bad(esr(method=value)).reason == f"method at 'method' is {kind}, expected a string like 'GET'"


def test_uri_of_the_wrong_type() -> None:
    assert bad(esr(uri=7)).reason == "uri at 'uri' is a number, expected a string like '/claims?id=3'"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("Accept: */*",
         "headers at 'headers' is a string, expected an object of header name to string or list of strings"),
        ({"Accept": 3}, "header 'Accept' at 'headers' is a number, expected a string or a list of strings"),
        ({"Accept": ["a", None]}, "header 'Accept' at 'headers' is null, expected a string or a list of strings"),
        ({"Accept": {"x": 1}}, "header 'Accept' at 'headers' is an object, expected a string or a list of strings"),
    ],
)
def test_headers_of_the_wrong_shape(headers: object, reason: str) -> None:
    assert bad(esr(headers=headers)).reason == reason


def test_empty_header_list_adds_nothing() -> None:
    assert record(esr(headers={"Accept": []})).headers == ()


@pytest.mark.parametrize(("client", "kind"), [(42, "a number"), ({"ip": "x"}, "an object")])
def test_client_of_the_wrong_type(client: object, kind: str) -> None:
    assert bad(esr(client=client)).reason == f"client at 'client' is {kind}, expected a string"


@pytest.mark.parametrize(("status", "expected"), [(200, 200), ("404", 404), (" 503 ", 503), (200.0, 200), (0, 0),
                                                 ("", None)])
def test_status_forms(status: object, expected: int | None) -> None:
    assert record(esr(status=status)).status == expected


@pytest.mark.parametrize("status", ["2OO", True, 1000, -1, 200.5, "²", [200], "200 OK"])
def test_status_that_is_not_a_number(status: object) -> None:
    assert bad(esr(status=status)).reason == (
        f"status at 'status' is not a number: got {status!r}; expected an HTTP status like 200"
    )


@pytest.mark.parametrize(("size", "expected"), [(0, 0), ("1024", 1024), (2048.0, 2048), ("-", None)])
def test_byte_count_forms(size: object, expected: int | None) -> None:
    assert record(esr(bytes=size)).bytes == expected


@pytest.mark.parametrize("size", [-1, "1k", 1.5, False, "-3"])
def test_byte_count_that_is_not_a_count(size: object) -> None:
    assert bad(esr(bytes=size)).reason == (f"bytes at 'bytes' is not a byte count: got {size!r}; "
                                           "expected a whole number >= 0")


# -- blank, non-JSON and non-object lines ------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_blank_lines_are_skipped(text: str) -> None:
    assert one(text) == Skipped("blank line", "access.log:1")


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ('{"ts": 1709542801.5, "request": {', 34),  # cut short: one past the end
        ('{"ts": 1709542801.5,}', 20),
        ("{'ts': 1}", 2),
        ('{"a": 1} {"b": 2}', 10),
        ('203.0.113.7 - - [04/Mar/2024:09:00:01 +0000] "GET / HTTP/1.1" 200 5', 6),
    ],
)
def test_not_json_says_where(text: str, column: int) -> None:
    # The middle of the reason is the decoder's own wording; the column is what a user looks for.
    line = bad(text)
    assert line.reason.startswith("not JSON: ")
    assert line.reason.endswith(f" at column {column}")
    assert line.text == text


def test_not_json_reason_carries_the_decoder_message() -> None:
    assert bad('{"a": 1} {"b": 2}').reason == "not JSON: unexpected content after document at column 10"


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1, 2]", "an array"), ('"GET /"', "a string"), ("42", "a number"), ("null", "null"), ("true", "a boolean")],
)
def test_json_that_is_not_an_object(text: str, kind: str) -> None:
    assert bad(text).reason == f"expected one JSON object per line, got {kind}"


def test_bad_line_text_is_cut_to_200_characters() -> None:
    text = '{"msg": "' + "x" * 500
    assert bad(text).text == text[:200]


def test_byte_order_mark_before_the_first_object_is_ignored() -> None:
    assert record("\ufeff" + CADDY_LINE).time == 1709542801.5241024


def test_byte_order_mark_before_broken_json_reports_the_column_in_the_line() -> None:
    assert bad('\ufeff{"a": }').reason.endswith(" at column 8")


def test_sources_use_the_given_line_numbers() -> None:
    results = list(jsonl.parse([(7, CADDY_LINE), (9, ""), (12, "{")], "logs/caddy.log"))
    assert [r.source for r in results] == ["logs/caddy.log:7", "logs/caddy.log:9", "logs/caddy.log:12"]


# -- preset selection -------------------------------------------------------------------------------
def test_auto_keeps_trying_until_an_object_fits_a_preset() -> None:
    startup = '{"level":"info","ts":1709542800.1,"msg":"serving initial configuration"}'
    results = run(["", "not json", startup, CADDY_LINE])
    assert isinstance(results[0], Skipped)
    assert isinstance(results[1], BadLine)
    assert isinstance(results[2], BadLine)
    assert results[2].reason == (
        "no JSON preset fits this object: its keys are level, ts, msg; pass --preset NAME (caddy, nginx, esr, "
        "traefik, envoy, cloudflare, ecs, gcp-lb, fastly, azure-frontdoor) "
        "or --field-map time=FIELD,method=FIELD,path=FIELD"
    )
    assert isinstance(results[3], LogRecord)


def test_the_preset_picked_first_stays_for_the_file() -> None:
    results = run([CADDY_LINE, orjson.dumps(esr()).decode()])
    assert isinstance(results[0], LogRecord)
    assert results[1] == BadLine(
        "no time at 'ts' in this object; the 'caddy' preset (picked from the first object) reads it from there: "
        "pick another --preset, or name the field with --field-map time=FIELD",
        "access.log:2",
        orjson.dumps(esr()).decode()[:200],
    )


def test_each_parse_call_picks_its_own_preset() -> None:
    assert isinstance(one(CADDY_LINE), LogRecord)
    assert record(esr()).method == "PUT"
    assert record(nginx()).method == "POST"


def test_explicit_preset_does_not_fall_back() -> None:
    assert bad(esr(), preset="nginx").reason.startswith("no time at 'msec|time_iso8601|time_local' in this object; "
                                                        "the 'nginx' preset")


def test_unknown_preset_is_refused_when_called() -> None:
    with pytest.raises(ValueError, match=r"unknown JSON preset 'apache': expected auto, caddy, nginx, esr, traefik, "
                       r"envoy, cloudflare, ecs, gcp-lb, fastly, azure-frontdoor, or a field_map"):
        jsonl.parse([], "x.log", preset="apache")


def test_preset_and_field_map_together_are_refused() -> None:
    with pytest.raises(ValueError, match="either preset or field_map"):
        jsonl.parse([], "x.log", preset="caddy", field_map=FieldMap(time="t", method="m", uri="u"))


def test_field_map_must_be_a_field_map() -> None:
    with pytest.raises(TypeError, match="field_map must be a FieldMap, not dict"):
        jsonl.parse([], "x.log", field_map={"time": "t"})  # type: ignore[arg-type]


def test_unknown_option_is_refused_when_called() -> None:
    with pytest.raises(ValueError,
                       match=r"unknown option\(s\) for the json reader: fieldmap, tz; known: preset, field_map, notes"):
        jsonl.parse([], "x.log", fieldmap=None, tz="UTC")


def test_bad_line_reasons_start_with_a_category_free_of_the_value() -> None:
    # Reports group bad lines by the text before the first colon.
    first = bad(esr(status="OK")).reason.split(":", 1)[0]
    second = bad(esr(status="2OO")).reason.split(":", 1)[0]
    assert first == second == "status at 'status' is not a number"
    assert bad(esr(time="x")).reason.split(":", 1)[0] == bad(esr(time="y")).reason.split(":", 1)[0]
    assert bad("{").reason.split(":", 1)[0] == "not JSON"


def test_presets_are_field_maps() -> None:
    assert set(PRESETS) >= {"caddy", "nginx", "esr"}
    assert all(isinstance(fm, FieldMap) for fm in PRESETS.values())
    assert PRESETS["caddy"].duration_unit == "s"
    assert PRESETS["esr"].duration_unit == "ms"


# -- field maps ---------------------------------------------------------------------------------------
ECS = FieldMap(
    time="@timestamp",
    method="http.request.method",
    path="url.path",
    query="url.query",
    status="http.response.status_code",
    duration="event.duration",
    bytes="http.response.body.bytes",
    client="source.ip",
    host="url.domain",
    time_format="rfc3339",
    duration_unit="ns",
)


def ecs(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "@timestamp": "2024-03-04T09:00:01.000123Z",
        "http": {"request": {"method": "get"}, "response": {"status_code": 200, "body": {"bytes": 77}}},
        "url": {"path": "/claims", "query": "id=3", "domain": "claims.example.com"},
        "event": {"duration": 1500000},
        "source": {"ip": "192.0.2.10"},
    }
    obj.update(changes)
    return obj


def test_field_map_with_path_and_query_and_deep_paths() -> None:
    assert one(ecs(), field_map=ECS) == LogRecord(
        time=1709542801.000123,
        method="GET",
        target="/claims?id=3",
        source="access.log:1",
        status=200,
        duration_ms=1.5,
        bytes=77,
        client="192.0.2.10",
        host="claims.example.com",
    )


@pytest.mark.parametrize(("query", "target"), [("?id=3", "/claims?id=3"), ("", "/claims"), ("-", "/claims"),
                                               ("?", "/claims")])
def test_query_forms(query: str, target: str) -> None:
    assert record(ecs(url={"path": "/claims", "query": query}), field_map=ECS).target == target


def test_missing_query_is_no_query() -> None:
    assert record(ecs(url={"path": "/claims"}), field_map=ECS).target == "/claims"


def test_query_of_the_wrong_type() -> None:
    line = bad(ecs(url={"path": "/claims", "query": {"id": 3}}), field_map=ECS)
    assert line.reason == "query at 'url.query' is an object, expected a string like 'id=3'"


def test_missing_path_names_the_field_map() -> None:
    assert bad(ecs(url={}), field_map=ECS).reason == (
        "no path at 'url.path' in this object; the field map reads it from there: pick another --preset, "
        "or name the field with --field-map path=FIELD"
    )


def test_flat_keys_with_dots_are_found() -> None:
    flat = {"@timestamp": "2024-03-04T09:00:01Z", "http.request.method": "DELETE", "url.path": "/claims/9"}
    rec = record(flat, field_map=ECS)
    assert (rec.time, rec.method, rec.target) == (T0, "DELETE", "/claims/9")


def test_alternatives_are_tried_in_order() -> None:
    fm = FieldMap(time="when|ts", method="verb|method", uri="uri")
    assert record({"ts": 1709542801, "method": "GET", "uri": "/a"}, field_map=fm).time == T0
    assert record({"when": 1709542802, "ts": 1, "verb": "POST", "uri": "/a"}, field_map=fm).method == "POST"


def test_a_header_inside_the_headers_object_can_be_the_host() -> None:
    fm = FieldMap(time="ts", method="request.method", uri="request.uri", host="request.headers.Host")
    obj = {"ts": 1709542801, "request": {"method": "GET", "uri": "/", "headers": {"Host": "h.example"}}}
    assert record(obj, field_map=fm).host == "h.example"


@pytest.mark.parametrize(
    ("unit", "value", "ms"),
    [
        ("s", 0.25, 250.0),
        ("s", "0.000929675", 0.929675),
        ("s", 2, 2000.0),
        ("ms", 12.5, 12.5),
        ("ms", "7", 7.0),
        ("us", 1500, 1.5),
        ("us", "250", 0.25),
        ("ns", 929675, 0.929675),
        ("ns", "1000000", 1.0),
    ],
)
def test_duration_units(unit: str, value: object, ms: float) -> None:
    fm = FieldMap(time="t", method="m", uri="u", duration="d", duration_unit=unit)
    assert record({"t": 1709542801, "m": "GET", "u": "/", "d": value}, field_map=fm).duration_ms == ms


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-1, "duration at 'd' is negative: got -1; expected a time in s >= 0"),
        ("-0.5", "duration at 'd' is negative: got '-0.5'; expected a time in s >= 0"),
        ("fast", "duration at 'd' is not a number: got 'fast'; expected a time in s"),
        (True, "duration at 'd' is not a number: got True; expected a time in s"),
        ([1], "duration at 'd' is not a number: got [1]; expected a time in s"),
    ],
)
def test_bad_durations(value: object, reason: str) -> None:
    fm = FieldMap(time="t", method="m", uri="u", duration="d", duration_unit="s")
    assert bad({"t": 1709542801, "m": "GET", "u": "/", "d": value}, field_map=fm).reason == reason


# -- times ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1709542801, 1709542801.0),
        (1709542801.5, 1709542801.5),
        (1709542801500, 1709542801.5),
        (1709542801500250, 1709542801.50025),
        (1709542801500.25, 1709542801.50025),
        (0, 0.0),
        ("1709542801", 1709542801.0),
        ("1709542801.123456", 1709542801.123456),
        ("1709542801123", 1709542801.123),
        ("1709542801123456", 1709542801.123456),
        (" 1709542801.5 ", 1709542801.5),
        ("2024-03-04T09:00:01Z", T0),
        ("2024-03-04T09:00:01.5Z", 1709542801.5),
        ("2024-03-04T09:00:01.123456789Z", 1709542801.123456789),
        ("2024-03-04T10:00:01+01:00", T0),
        ("2024-03-04T04:00:01-05:00", T0),
        ("2024-03-04T14:30:01+05:30", T0),
        ("2024-03-04T10:00:01+0100", T0),
        ("2024-03-04T09:00:01+00:00", T0),
        ("2024-03-04 09:00:01Z", T0),
        ("2024-03-04t09:00:01z", T0),
        ("2024-03-04T09:00:01,25Z", 1709542801.25),
        ("2024-03-04T09:00:01", T0),
        ("2024-03-04T00:30:00+01:00", 1709508600.0),
        ("2024-02-29T12:00:00Z", 1709208000.0),
        ("2016-12-31T23:59:60Z", 1483228800.0),
        ("1969-12-31T23:59:59.5Z", -0.5),
        ("04/Mar/2024:09:00:01 +0000", T0),
        ("04/mar/2024:10:00:01 +0100", T0),
        ("04/Mar/2024:09:00:01.250 +0000", 1709542801.25),
    ],
)
def test_auto_time(value: object, seconds: float) -> None:
    assert record(esr(time=value)).time == seconds


@pytest.mark.parametrize(
    ("value", "problem", "detail"),
    [
        ("2024-02-30T00:00:00Z", "is not a valid date", "day is out of range for month"),
        ("2024-13-01T00:00:00Z", "is not a valid date", "month must be in 1..12"),
        ("2024-03-04T24:00:00Z", "is not a valid time of day", "expected hour 00-23, minute 00-59, second 00-60"),
        ("2024-03-04T09:60:00Z", "is not a valid time of day", "expected hour 00-23, minute 00-59, second 00-60"),
        ("2024-03-04T09:00:01+25:00", "has a UTC offset out of range", "expected -23:59 to +23:59"),
        ("04/Foo/2024:09:00:01 +0000", "has an unknown month name", "expected Jan to Dec"),
    ],
)
def test_auto_time_out_of_range(value: str, problem: str, detail: str) -> None:
    assert bad(esr(time=value)).reason == f"time at 'time' {problem}: got {value!r}; {detail}"


@pytest.mark.parametrize("value", ["yesterday", "2024-03-04", "09:00:01", "2024/03/04 09:00:01", "1.7e9", True,
                                   [1709542801], {"s": 1}])
def test_auto_time_unreadable(value: object) -> None:
    reason = bad(esr(time=value)).reason
    assert reason == (
        f"time at 'time' is not a time: got {value!r}; expected epoch seconds, milliseconds, microseconds or "
        "nanoseconds, RFC 3339 like 2024-03-04T09:00:01.5Z or 04/Mar/2024:09:00:01 +0000, or set time_format "
        "to a strptime pattern"
    )


def _timed(time_format: str) -> FieldMap:
    return FieldMap(time="t", method="m", uri="u", time_format=time_format)


@pytest.mark.parametrize(
    ("time_format", "value", "seconds"),
    [
        ("epoch_s", 1709542801, T0),
        ("epoch_s", 1709542801.75, 1709542801.75),
        ("epoch_s", "1709542801.75", 1709542801.75),
        ("epoch_s", 1700, 1700.0),  # no guessing: a small number stays seconds
        ("epoch_ms", 1709542801750, 1709542801.75),
        ("epoch_ms", "1709542801750.5", 1709542801.7505),
        ("epoch_ms", 1709542801750.5, 1709542801.7505),
        ("epoch_us", 1709542801750000, 1709542801.75),
        ("epoch_us", "1709542801000001", 1709542801.000001),
        ("rfc3339", "2024-03-04T09:00:01.75Z", 1709542801.75),
        ("rfc3339", "2024-03-04T11:00:01+02:00", T0),
        ("%d/%m/%Y %H:%M:%S", "04/03/2024 09:00:01", T0),
        ("%Y-%m-%d %H:%M:%S.%f %z", "2024-03-04 10:00:01.250000 +0100", 1709542801.25),
    ],
)
def test_explicit_time_formats(time_format: str, value: object, seconds: float) -> None:
    assert record({"t": value, "m": "GET", "u": "/"}, field_map=_timed(time_format)).time == seconds


@pytest.mark.parametrize(
    ("time_format", "value", "reason"),
    [
        ("epoch_s", "2024-03-04T09:00:01Z", "time at 't' is not a number (epoch_s): got '2024-03-04T09:00:01Z'"),
        ("epoch_ms", True, "time at 't' is not a number (epoch_ms): got True"),
        (
            "rfc3339",
            "2024-03-04T09:00:01",
            "time at 't' has no UTC offset: got '2024-03-04T09:00:01'; "
            "RFC 3339 needs Z or ±hh:mm; time_format='auto' reads such times as UTC",
        ),
        (
            "rfc3339",
            1709542801,
            "time at 't' is not an RFC 3339 time: got 1709542801; expected e.g. 2024-03-04T09:00:01.123Z",
        ),
        (
            "rfc3339",
            "04/Mar/2024:09:00:01 +0000",
            "time at 't' is not an RFC 3339 time: got '04/Mar/2024:09:00:01 +0000'; "
            "expected e.g. 2024-03-04T09:00:01.123Z",
        ),
        ("%d/%m/%Y", 1709542801, "time at 't' is not a string: got 1709542801; time_format '%d/%m/%Y' reads strings"),
        (
            "%d/%m/%Y",
            "2024-03-04",
            "time at 't' does not match time_format '%d/%m/%Y': got '2024-03-04'; "
            "time data '2024-03-04' does not match format '%d/%m/%Y'",
        ),
    ],
)
def test_explicit_time_format_mismatch(time_format: str, value: object, reason: str) -> None:
    assert bad({"t": value, "m": "GET", "u": "/"}, field_map=_timed(time_format)).reason == reason


def test_time_values_are_floats() -> None:
    assert type(record(esr(time=1709542801)).time) is float
    assert type(record({"t": 1709542801, "m": "GET", "u": "/"}, field_map=_timed("epoch_s")).time) is float


# -- FieldMap validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"needs uri \(path and query together\) or path"),
        ({"uri": "u", "query": "q"}, "query is only used with FieldMap.path"),
        ({"uri": "request..uri"}, r"FieldMap.uri = 'request..uri' is not a dotted path"),
        ({"uri": "a|"}, r"FieldMap.uri = 'a\|' is not a dotted path"),
        ({"uri": "u", "status": ""}, r"FieldMap.status = '' is not a dotted path"),
        ({"uri": "u", "time_format": "iso"},
         r"time_format = 'iso': expected one of auto, epoch_s, epoch_ms, epoch_us, rfc3339 or a strptime pattern"),
        ({"uri": "u", "duration_unit": "sec"}, r"duration_unit = 'sec': expected one of s, ms, us, ns"),
    ],
)
def test_field_map_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FieldMap(time="t", method="m", **kwargs)


def test_field_map_is_frozen_and_hashable() -> None:
    fm = FieldMap(time="t", method="m", uri="u")
    with pytest.raises(AttributeError):
        fm.time = "x"  # type: ignore[misc]
    assert hash(fm) == hash(FieldMap(time="t", method="m", uri="u"))


# -- sniff -----------------------------------------------------------------------------------------
def test_sniff_caddy_and_nginx_heads() -> None:
    assert jsonl.sniff([CADDY_LINE] * 5)
    assert jsonl.sniff([orjson.dumps(nginx()).decode(), "", orjson.dumps(nginx()).decode()])


def test_sniff_tolerates_a_cut_last_line_and_stray_lines() -> None:
    assert jsonl.sniff([CADDY_LINE, CADDY_LINE, "garbage", CADDY_LINE[:50]] + [CADDY_LINE])


@pytest.mark.parametrize(
    "head",
    [
        [],
        ["", "  "],
        ['203.0.113.7 - - [04/Mar/2024:09:00:01 +0000] "GET / HTTP/1.1" 200 5'] * 3,
        ["[1, 2]", "[3]"],
        ['{"log": {"version": "1.2", "entries": []}}'],
        ["{", '  "log": {', '    "version": "1.2",'],
        [CADDY_LINE, "x", "y"],
        ["#Version: 1.0", "#Fields: date time"],
    ],
)
def test_sniff_rejects_other_shapes(head: list[str]) -> None:
    assert not jsonl.sniff(head)


# -- volume ------------------------------------------------------------------------------------------
def test_many_lines_in_one_pass() -> None:
    lines = [(i, CADDY_LINE) for i in range(1, 5001)]
    results = list(jsonl.parse(lines, "big.log", preset="caddy"))
    assert len(results) == 5000
    assert all(isinstance(r, LogRecord) for r in results)
    assert results[-1].source == "big.log:5000"
