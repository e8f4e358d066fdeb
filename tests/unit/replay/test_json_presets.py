"""esr.replay.formats.jsonl presets for each product, `--field-map` text, and epoch-unit detection.

One realistic line per product, laid out as that product documents its JSON access log; each is
read by its preset into exact values (UTC times, methods, targets, statuses, durations).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from esr.replay.formats import jsonl
from esr.replay.formats.jsonl import PRESETS, FieldMap, parse_field_map
from esr.replay.record import BadLine, LogRecord, Parsed

T = 1709542801.25  # 2024-03-04T09:00:01.25Z


def run(lines: list[str], **options: Any) -> list[Parsed]:
    return list(jsonl.parse(enumerate(lines, start=1), "access.log", **options))


def record(line: str | dict[str, Any], **options: Any) -> LogRecord:
    text = line if isinstance(line, str) else orjson.dumps(line).decode()
    (result,) = run([text], **options)
    assert isinstance(result, LogRecord), result
    return result


# Traefik v2/v3 `accessLog.format: json` (Duration and OriginDuration in nanoseconds).
TRAEFIK = (
    '{"ClientAddr":"203.0.113.7:51234","ClientHost":"203.0.113.7","ClientPort":"51234","ClientUsername":"-",'
    '"DownstreamContentSize":512,"DownstreamStatus":200,"Duration":4512345,"OriginContentSize":512,'
    '"OriginDuration":4012345,"OriginStatus":200,"Overhead":500000,"RequestAddr":"claims.example.com",'
    '"RequestContentSize":0,"RequestCount":42,"RequestHost":"claims.example.com","RequestMethod":"GET",'
    '"RequestPath":"/claims?id=3","RequestPort":"-","RequestProtocol":"HTTP/1.1","RequestScheme":"https",'
    '"RetryAttempts":0,"RouterName":"claims@docker","ServiceAddr":"10.0.0.5:8080","ServiceName":"claims@docker",'
    '"ServiceURL":"http://10.0.0.5:8080","StartLocal":"2024-03-04T10:00:01.250000000+01:00",'
    '"StartUTC":"2024-03-04T09:00:01.250000000Z","entryPointName":"websecure","level":"info","msg":"",'
    '"time":"2024-03-04T09:00:01Z"}'
)
# Envoy `json_format` as Istio's default JSON access log lays it out (duration in milliseconds).
ENVOY = (
    '{"authority":"claims.example.com","bytes_received":0,"bytes_sent":512,'
    '"downstream_local_address":"10.0.0.9:8080","downstream_remote_address":"203.0.113.7:51234","duration":12,'
    '"method":"GET","path":"/claims/42?expand=1","protocol":"HTTP/1.1",'
    '"request_id":"5e1f1c1a-1c1b-4f55-9a5e-3c5f0d3e1a2b","requested_server_name":null,"response_code":200,'
    '"response_flags":"-","route_name":"default","start_time":"2024-03-04T09:00:01.250Z",'
    '"upstream_cluster":"outbound|8080||claims.default.svc.cluster.local","upstream_host":"10.0.0.5:8080",'
    '"upstream_service_time":"11","user_agent":"curl/8.5.0","x_forwarded_for":null}'
)
# Cloudflare Logpush, http_requests dataset, timestamp_format "unixnano".
CLOUDFLARE = (
    '{"ClientIP":"203.0.113.7","ClientRequestHost":"claims.example.com","ClientRequestMethod":"GET",'
    '"ClientRequestProtocol":"HTTP/2","ClientRequestURI":"/claims?id=3","ClientRequestUserAgent":"curl/8.5.0",'
    '"EdgeEndTimestamp":1709542801262000000,"EdgeResponseBytes":1024,"EdgeResponseStatus":200,'
    '"EdgeStartTimestamp":1709542801250000000,"EdgeTimeToFirstByteMs":9,"OriginResponseStatus":200,'
    '"RayID":"85f1b2c3d4e5f607","ZoneName":"example.com"}'
)
# Elastic Common Schema (event.duration in nanoseconds).
ECS = (
    '{"@timestamp":"2024-03-04T09:00:01.250Z","ecs":{"version":"8.11.0"},'
    '"event":{"kind":"event","category":["web"],"duration":4512345},'
    '"http":{"version":"1.1","request":{"method":"GET"},"response":{"status_code":200,"body":{"bytes":512}}},'
    '"url":{"original":"/claims?id=3","path":"/claims","query":"id=3","domain":"claims.example.com"},'
    '"client":{"ip":"203.0.113.7"},"source":{"ip":"203.0.113.7"},"user_agent":{"original":"curl/8.5.0"}}'
)
# Google Cloud external HTTP(S) load balancer, a Cloud Logging LogEntry (latency as a protobuf Duration).
GCP_LB = (
    '{"httpRequest":{"latency":"0.058927s","remoteIp":"203.0.113.7","requestMethod":"GET","requestSize":"257",'
    '"requestUrl":"https://claims.example.com/claims?id=3","responseSize":"1467","serverIp":"10.0.0.5",'
    '"status":200,"userAgent":"curl/8.5.0"},"insertId":"1vzs264g1u90hp5",'
    '"jsonPayload":{"@type":"type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry",'
    '"statusDetails":"response_sent_by_backend"},"logName":"projects/claims-prod/logs/requests",'
    '"receiveTimestamp":"2024-03-04T09:00:02.103622Z","resource":{"type":"http_load_balancer",'
    '"labels":{"project_id":"claims-prod","forwarding_rule_name":"claims-https"}},"severity":"INFO",'
    '"timestamp":"2024-03-04T09:00:01.250000Z"}'
)
# Fastly's JSON log format from its "useful log formats" guide, with time_elapsed (microseconds) added.
FASTLY = (
    '{"timestamp":"2024-03-04T09:00:01+0000","client_ip":"203.0.113.7","geo_country":"germany",'
    '"geo_city":"berlin","host":"claims.example.com","url":"/claims?id=3","request_method":"GET",'
    '"request_protocol":"HTTP/2","request_referer":"","request_user_agent":"curl/8.5.0","response_state":"MISS",'
    '"response_status":200,"response_reason":"OK","response_body_size":1467,"time_elapsed":58927,'
    '"fastly_server":"cache-fra-etou8220050-FRA","fastly_is_edge":true}'
)
# Azure Front Door (Standard/Premium) FrontDoorAccessLog, as diagnostic settings write it to storage.
AZURE_FRONTDOOR = (
    '{"time":"2024-03-04T09:00:01.2500000Z","resourceId":"/SUBSCRIPTIONS/0000/RESOURCEGROUPS/CLAIMS/'
    'PROVIDERS/MICROSOFT.CDN/PROFILES/CLAIMS-AFD","category":"FrontDoorAccessLog",'
    '"operationName":"Microsoft.Cdn/Profiles/AccessLog/Write","properties":{"trackingReference":"0TeZlZQAAAAB",'
    '"httpMethod":"GET","httpVersion":"2.0.0.0","requestUri":"https://claims.example.com:443/claims?id=3",'
    '"hostName":"claims.example.com","requestBytes":"312","responseBytes":"1467","userAgent":"curl/8.5.0",'
    '"clientIp":"203.0.113.7","clientPort":"51234","socketIp":"203.0.113.7","timeToFirstByte":"0.052",'
    '"timeTaken":"0.059","requestProtocol":"HTTPS","securityProtocol":"TLS 1.3","httpStatusCode":"200",'
    '"httpStatusDetails":"200","pop":"FRA","cacheStatus":"CONFIG_NOCACHE","errorInfo":"NoError",'
    '"endpoint":"claims-abc.z01.azurefd.net"}}'
)


def expected(target: str = "/claims?id=3", **fields: Any) -> LogRecord:
    values: dict[str, Any] = {
        "time": T, "method": "GET", "target": target, "source": "access.log:1", "status": 200,
        "client": "203.0.113.7", "host": "claims.example.com",
    }  # fmt: skip
    values.update(fields)
    return LogRecord(**values)


CASES = {
    "traefik": (TRAEFIK, expected(duration_ms=4.512345, bytes=512)),
    "envoy": (ENVOY, expected("/claims/42?expand=1", duration_ms=12.0, bytes=512, client="203.0.113.7:51234")),
    "cloudflare": (CLOUDFLARE, expected(bytes=1024)),
    "ecs": (ECS, expected(duration_ms=4.512345, bytes=512)),
    "gcp-lb": (GCP_LB, expected(duration_ms=58.927, bytes=1467)),
    "fastly": (FASTLY, expected(time=1709542801.0, duration_ms=58.927, bytes=1467)),
    "azure-frontdoor": (AZURE_FRONTDOOR, expected(duration_ms=59.0, bytes=1467)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_products_line_is_read_by_its_preset(name: str) -> None:
    line, want = CASES[name]
    assert record(line, preset=name) == want


@pytest.mark.parametrize("name", list(CASES))
def test_auto_picks_the_products_preset(name: str) -> None:
    line, want = CASES[name]
    notes: dict[str, dict[str, Any]] = {}
    assert record(line, notes=notes) == want
    assert notes["access.log"]["preset"] == name


def test_every_preset_is_known_by_name() -> None:
    assert list(PRESETS) == [
        "caddy", "nginx", "esr", "traefik", "envoy", "cloudflare", "ecs", "gcp-lb", "fastly", "azure-frontdoor",
    ]  # fmt: skip
    assert set(jsonl.PRESET_SAMPLES) == set(PRESETS)


# -- product variants ------------------------------------------------------------------------------
def test_traefik_without_start_utc_uses_start_local_then_time() -> None:
    obj = orjson.loads(TRAEFIK)
    del obj["StartUTC"]
    assert record(obj, preset="traefik").time == T  # StartLocal, +01:00
    del obj["StartLocal"]
    assert record(obj, preset="traefik").time == 1709542801.0  # the log line's own time


def test_traefik_origin_status_when_downstream_status_is_dropped() -> None:
    obj = orjson.loads(TRAEFIK)
    del obj["DownstreamStatus"]
    obj["OriginStatus"] = 502
    assert record(obj, preset="traefik").status == 502


def test_envoy_original_path_wins_over_the_rewritten_path() -> None:
    obj = orjson.loads(ENVOY) | {"x-envoy-original-path": "/api/claims/42?expand=1", "path": "/claims/42?expand=1"}
    assert record(obj, preset="envoy").target == "/api/claims/42?expand=1"


def test_cloudflare_rfc3339_and_unix_timestamp_formats() -> None:
    obj = orjson.loads(CLOUDFLARE)
    assert record(obj | {"EdgeStartTimestamp": "2024-03-04T09:00:01Z"}, preset="cloudflare").time == 1709542801.0
    assert record(obj | {"EdgeStartTimestamp": 1709542801}, preset="cloudflare").time == 1709542801.0


def test_ecs_with_only_path_and_query() -> None:
    obj = orjson.loads(ECS)
    obj["url"] = {"path": "/claims", "query": "id=3"}
    assert record(obj, preset="ecs").target == "/claims?id=3"


def test_ecs_flattened_dotted_keys() -> None:
    flat = {"@timestamp": "2024-03-04T09:00:01.250Z", "http.request.method": "DELETE", "url.original": "/claims/9",
            "http.response.status_code": 204}
    rec = record(flat, preset="ecs")
    assert (rec.time, rec.method, rec.target, rec.status) == (T, "DELETE", "/claims/9", 204)


def test_fastly_method_and_status_alternatives() -> None:
    obj = orjson.loads(FASTLY)
    obj["method"] = obj.pop("request_method")
    obj["status"] = obj.pop("response_status")
    rec = record(obj, preset="fastly")
    assert (rec.method, rec.status) == ("GET", 200)


def test_azure_classic_front_door_client_ip_spelling() -> None:
    obj = orjson.loads(AZURE_FRONTDOOR)
    obj["properties"]["clientIP"] = obj["properties"].pop("clientIp")
    assert record(obj, preset="azure-frontdoor").client == "203.0.113.7"


def test_a_missing_field_names_the_field_the_preset_and_the_options() -> None:
    obj = orjson.loads(TRAEFIK)
    del obj["RequestPath"]
    (line,) = run([orjson.dumps(obj).decode()], preset="traefik")
    assert isinstance(line, BadLine) and line.source == "access.log:1"
    assert line.reason == (
        "no uri at 'RequestPath' in this object; the 'traefik' preset reads it from there: "
        "pick another --preset, or name the field with --field-map path=FIELD"
    )


def test_no_preset_fits_says_which_options_to_pass() -> None:
    (line,) = run(['{"when":1709542801,"verb":"GET","target":"/"}'])
    assert isinstance(line, BadLine)
    assert line.reason.startswith("no JSON preset fits this object: its keys are when, verb, target; ")
    assert line.reason.endswith(
        "pass --preset NAME (caddy, nginx, esr, traefik, envoy, cloudflare, ecs, gcp-lb, fastly, azure-frontdoor) "
        "or --field-map time=FIELD,method=FIELD,path=FIELD"
    )


# -- epoch units -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds", "kind"),
    [
        (1709542801, 1709542801.0, "epoch seconds"),
        (1709542801.25, T, "epoch seconds"),
        ("1709542801.25", T, "epoch seconds"),
        (1709542801250, T, "epoch milliseconds"),
        (1709542801250.5, 1709542801.2505, "epoch milliseconds"),
        ("1709542801250", T, "epoch milliseconds"),
        (1709542801250000, T, "epoch microseconds"),
        ("1709542801250000", T, "epoch microseconds"),
        (1709542801250000000, T, "epoch nanoseconds"),
        (1.70954280125e18, T, "epoch nanoseconds"),
        ("1709542801250000123", 1709542801.250000123, "epoch nanoseconds"),
        ("2024-03-04T09:00:01.25Z", T, "RFC 3339"),
        ("2024-03-04T10:00:01.25+01:00", T, "RFC 3339"),
    ],
)
def test_time_unit_is_detected_by_magnitude_and_noted(value: object, seconds: float, kind: str) -> None:
    notes: dict[str, dict[str, Any]] = {}
    fm = FieldMap(time="ts", method="m", path="p")
    assert record({"ts": value, "m": "GET", "p": "/"}, field_map=fm, notes=notes).time == seconds
    assert notes == {"access.log": {"preset": "field map", "timestamps": [kind]}}


def test_mixed_epoch_units_in_one_file_are_refused_with_the_line() -> None:
    lines = [orjson.dumps({"ts": ts, "m": "GET", "p": f"/{i}"}).decode()
             for i, ts in enumerate([1709542801250, 1709542802, 1709542803250], 1)]
    results = run(lines, field_map=FieldMap(time="ts", method="m", path="p"))
    assert [type(r) for r in results] == [LogRecord, BadLine, LogRecord]
    assert results[1].source == "access.log:2"
    assert results[1].reason == (
        "time at 'ts' mixes epoch units: epoch seconds here (got 1709542802) but epoch milliseconds "
        "at access.log:1; expected one unit per file"
    )


def test_epoch_and_rfc3339_may_mix_in_a_file() -> None:
    notes: dict[str, dict[str, Any]] = {}
    lines = ['{"msec":"1709542801.250","request_method":"GET","request_uri":"/a"}',
             '{"time_iso8601":"2024-03-04T10:00:02+01:00","request_method":"GET","request_uri":"/b"}']
    results = run(lines, preset="nginx", notes=notes)
    assert [r.time for r in results] == [T, 1709542802.0]  # type: ignore[union-attr]
    assert notes["access.log"] == {"preset": "nginx", "timestamps": ["epoch seconds", "RFC 3339"]}


def test_each_file_detects_its_own_unit() -> None:
    notes: dict[str, dict[str, Any]] = {}
    fm = FieldMap(time="ts", method="m", path="p")
    list(jsonl.parse([(1, '{"ts":1709542801250,"m":"GET","p":"/"}')], "a.log", field_map=fm, notes=notes))
    list(jsonl.parse([(1, '{"ts":1709542801,"m":"GET","p":"/"}')], "b.log", field_map=fm, notes=notes))
    assert notes == {"a.log": {"preset": "field map", "timestamps": ["epoch milliseconds"]},
                     "b.log": {"preset": "field map", "timestamps": ["epoch seconds"]}}


def test_protobuf_duration_strings() -> None:
    fm = FieldMap(time="t", method="m", path="p", duration="d", duration_unit="s")
    assert record({"t": 1709542801, "m": "GET", "p": "/", "d": "0.5s"}, field_map=fm).duration_ms == 500.0
    (bad,) = run(['{"t":1709542801,"m":"GET","p":"/","d":"5ms"}'], field_map=fm)
    assert isinstance(bad, BadLine)
    assert bad.reason == "duration at 'd' is not a number: got '5ms'; expected a time in s"


# -- --field-map text ------------------------------------------------------------------------------
def test_field_map_text_maps_any_layout() -> None:
    fm = parse_field_map("time=ts,method=req.verb,path=req.uri,status=resp.code,duration=took,duration_unit=s")
    assert fm == FieldMap(time="ts", method="req.verb", path="req.uri", status="resp.code", duration="took",
                          duration_unit="s")
    obj = {"ts": 1709542801250, "req": {"verb": "post", "uri": "/claims?id=3"}, "resp": {"code": "201"}, "took": 0.25}
    rec = record(obj, field_map=fm)
    assert (rec.time, rec.method, rec.target, rec.status, rec.duration_ms) == (T, "POST", "/claims?id=3", 201, 250.0)


def test_field_map_text_tolerates_spaces_and_takes_every_optional_key() -> None:
    fm = parse_field_map(" time = ts , method=m,path=p,query=q,bytes=b,client=c,host=h,headers=hd ")
    assert fm == FieldMap(time="ts", method="m", path="p", query="q", bytes="b", client="c", host="h", headers="hd")


def test_field_map_entries_override_the_presets() -> None:
    fm = parse_field_map("path=RequestURI,duration=OriginDuration", PRESETS["traefik"])
    traefik = PRESETS["traefik"]
    assert (fm.path, fm.uri, fm.query) == ("RequestURI", None, None)
    assert (fm.time, fm.method, fm.status, fm.duration, fm.duration_unit) == (
        traefik.time, traefik.method, traefik.status, "OriginDuration", "ns")
    assert parse_field_map("duration=EdgeTimeToFirstByteMs,duration_unit=ms",
                           PRESETS["cloudflare"]).duration_unit == "ms"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time=ts,method=verb",
         "--field-map needs path (the request path, with or without its query, or a full URL); "
         "give time, method and path, e.g. time=ts,method=verb,path=uri, or start from a --preset"),
        ("path=uri", "--field-map needs time, method (the time of the request; the HTTP method); "
                     "give time, method and path, e.g. time=ts,method=verb,path=uri, or start from a --preset"),
        ("time=ts,method=verb,path=uri,verb=x",
         "--field-map: unknown key 'verb' in 'verb=x'; expected time, method, path, query, status, duration, "
         "duration_unit, bytes, client, host or headers"),
        ("time=ts,method,path=uri",
         "--field-map: 'method' is not KEY=FIELD; expected e.g. time=ts,method=verb,path=uri"),
        ("time=ts,,method=m,path=p", "--field-map: '' is not KEY=FIELD; expected e.g. time=ts,method=verb,path=uri"),
        ("time=,method=m,path=p", "--field-map: time= names no field; expected a field name such as time=ts"),
        ("time=a..b,method=m,path=p",
         "--field-map: time='a..b' is not a field path; expected a name, dotted for nested objects (request.method)"),
        ("time=a,time=b,method=m,path=p", "--field-map: time is given twice ('time=a', 'time=b')"),
        ("time=t,method=m,path=p,duration_unit=sec", "--field-map: duration_unit='sec'; expected s, ms, us or ns"),
        ("", "--field-map is empty; expected e.g. time=ts,method=verb,path=uri"),
    ],
)
def test_bad_field_map_text_is_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_field_map(text)
    assert str(excinfo.value) == message


def test_a_line_missing_a_mapped_field_names_the_line_and_the_field() -> None:
    fm = parse_field_map("time=ts,method=verb,path=uri")
    results = run(['{"ts":1709542801,"verb":"GET","uri":"/a"}', '{"ts":1709542802,"verb":"GET"}'], field_map=fm)
    bad = results[1]
    assert isinstance(bad, BadLine) and bad.source == "access.log:2"
    assert bad.reason == (
        "no path at 'uri' in this object; the field map reads it from there: "
        "pick another --preset, or name the field with --field-map path=FIELD"
    )


def test_a_query_over_a_preset_that_reads_path_and_query_together_needs_a_path() -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_field_map("query=q", PRESETS["caddy"])
    assert str(excinfo.value) == (
        "--field-map: query=q needs path=FIELD too: the preset reads the path and query together from 'request.uri'"
    )
    assert parse_field_map("path=p,query=q", PRESETS["caddy"]).query == "q"
