"""esr.replay.formats.aws_alb / aws_elb / cloudfront: AWS load balancer and CloudFront access logs."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from esr.replay.formats import aws_alb, aws_elb, cloudfront, jsonl
from esr.replay.record import BadLine, LogRecord, Parsed, Skipped


def run(reader: ModuleType, lines: list[str], **options: Any) -> list[Parsed]:
    return list(reader.parse(enumerate(lines, start=1), "aws.log", **options))


def one(reader: ModuleType, line: str, **options: Any) -> Parsed:
    (result,) = run(reader, [line], **options)
    return result


def record(reader: ModuleType, line: str, **options: Any) -> LogRecord:
    result = one(reader, line, **options)
    assert isinstance(result, LogRecord), result
    return result


def bad(reader: ModuleType, line: str, **options: Any) -> BadLine:
    result = one(reader, line, **options)
    assert isinstance(result, BadLine), result
    return result


def test_reader_names() -> None:
    assert (aws_alb.NAME, aws_elb.NAME, cloudfront.NAME) == ("alb", "elb", "cloudfront")


@pytest.mark.parametrize(
    ("reader", "known"), [(aws_alb, "known: time_field"), (aws_elb, "it takes none"), (cloudfront, "it takes none")]
)
def test_unknown_options_are_refused_when_called(reader: ModuleType, known: str) -> None:
    with pytest.raises(ValueError, match=rf"unknown option\(s\) for the {reader.NAME} reader: preset; {known}"):
        reader.parse([], "x.log", preset="caddy")


# -- Application Load Balancer -------------------------------------------------------------------
# (name, value, quoted) in the order of the ALB access log entry syntax.
ALB_FIELDS: list[tuple[str, str, bool]] = [
    ("type", "https", False),
    ("time", "2024-03-04T09:00:01.123456Z", False),
    ("elb", "app/claims-alb/50dc6c495c0c9188", False),
    ("client", "203.0.113.7:51234", False),
    ("target", "10.0.1.15:8080", False),
    ("request_processing_time", "0.001", False),
    ("target_processing_time", "0.045", False),
    ("response_processing_time", "0.000", False),
    ("elb_status_code", "200", False),
    ("target_status_code", "200", False),
    ("received_bytes", "512", False),
    ("sent_bytes", "1536", False),
    ("request", "GET https://claims.example.com:443/claims?id=3 HTTP/1.1", True),
    ("user_agent", "Mozilla/5.0 (X11; Linux x86_64)", True),
    ("ssl_cipher", "ECDHE-RSA-AES128-GCM-SHA256", False),
    ("ssl_protocol", "TLSv1.2", False),
    ("target_group_arn", "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/claims/73e2d6bc24d8a067",
     False),
    ("trace_id", "Root=1-65e58e11-1a2b3c4d5e6f7a8b9c0d1e2f", True),
    ("domain_name", "claims.example.com", True),
    ("chosen_cert_arn", "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012", True),
    ("matched_rule_priority", "1", False),
    ("request_creation_time", "2024-03-04T09:00:01.076543Z", False),
    ("actions_executed", "forward", True),
    ("redirect_url", "-", True),
    ("error_reason", "-", True),
    ("target:port_list", "10.0.1.15:8080", True),
    ("target_status_code_list", "200", True),
    ("classification", "-", True),
    ("classification_reason", "-", True),
    ("conn_trace_id", "TID_1234abcd5678ef90", False),
]


def alb(count: int | None = None, **values: str) -> str:
    """An ALB entry with some fields replaced (`request_processing_time="-1"`), cut to `count` fields."""
    fields = ALB_FIELDS[:count] if count is not None else ALB_FIELDS
    parts = []
    for name, default, quoted in fields:
        value = values.pop(name.replace(":", "_"), default)
        parts.append(f'"{value}"' if quoted else value)
    assert not values, f"unknown ALB fields {values}"
    return " ".join(parts)


ALB_RECORD = LogRecord(
    time=1709542801.076543,
    method="GET",
    target="/claims?id=3",
    source="aws.log:1",
    status=200,
    duration_ms=46.0,
    bytes=1536,
    client="203.0.113.7",
    host="claims.example.com",
    headers=(("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),),
)


def test_alb_entry_becomes_one_exact_record() -> None:
    assert one(aws_alb, alb()) == ALB_RECORD


def test_alb_entry_as_in_the_aws_docs() -> None:
    line = (
        'http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 '
        '0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - '
        "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "
        '"Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" '
        '"10.0.0.1:80" "200" "-" "-" TID_1234abcd5678ef90'
    )
    assert one(aws_alb, line) == LogRecord(
        time=1530570168.364,
        method="GET",
        target="/",
        source="aws.log:1",
        status=200,
        duration_ms=1.0,
        bytes=366,
        client="192.168.131.39",
        host="www.example.com",
        headers=(("User-Agent", "curl/7.46.0"),),
    )


def test_alb_time_field_option_dates_by_the_response() -> None:
    assert record(aws_alb, alb(), time_field="time").time == 1709542801.123456


def test_alb_unknown_time_field_is_refused_when_called() -> None:
    with pytest.raises(ValueError, match="time_field 'received': expected 'request_creation_time' or 'time'"):
        aws_alb.parse([], "x.log", time_field="received")


def test_alb_old_entries_without_request_creation_time_use_time() -> None:
    rec = record(aws_alb, alb(count=18))  # the 2016 layout ends with "trace_id"
    assert rec.time == 1709542801.123456
    assert rec.host == "claims.example.com"


def test_alb_shortest_entry_ends_with_the_request() -> None:
    rec = record(aws_alb, alb(count=13))
    assert (rec.time, rec.target, rec.headers) == (1709542801.123456, "/claims?id=3", ())


def test_alb_dash_request_creation_time_falls_back_to_time() -> None:
    assert record(aws_alb, alb(request_creation_time="-")).time == 1709542801.123456


def test_alb_tolerates_fields_appended_after_conn_trace_id() -> None:
    assert one(aws_alb, alb() + ' "new-field" 42 -') == ALB_RECORD


@pytest.mark.parametrize("kind", ["http", "https", "h2", "grpcs", "ws", "wss"])
def test_alb_request_types(kind: str) -> None:
    assert record(aws_alb, alb(type=kind)).method == "GET"


def test_alb_h2_grpc_request() -> None:
    rec = record(aws_alb, alb(type="grpcs", request="POST https://api.example.com:443/claims.v1.Claims/Get HTTP/2.0"))
    assert (rec.method, rec.target, rec.host) == ("POST", "/claims.v1.Claims/Get", "api.example.com")


def test_alb_target_not_reached() -> None:
    line = alb(
        target="-",
        request_processing_time="-1",
        target_processing_time="-1",
        response_processing_time="-1",
        elb_status_code="503",
        target_status_code="-",
    )
    rec = record(aws_alb, line)
    assert (rec.status, rec.duration_ms) == (503, None)


def test_alb_any_negative_processing_time_drops_the_duration() -> None:
    assert record(aws_alb, alb(response_processing_time="-1")).duration_ms is None


def test_alb_duration_is_the_exact_sum() -> None:
    line = alb(request_processing_time="0.001", target_processing_time="0.002", response_processing_time="0.0001")
    assert record(aws_alb, line).duration_ms == 3.1  # 0.1 + 0.2 style sums do not drift


def test_alb_status_dash() -> None:
    assert record(aws_alb, alb(elb_status_code="-")).status is None


@pytest.mark.parametrize(
    ("request_line", "method", "target", "host"),
    [
        ("GET https://claims.example.com:443/claims?id=3 HTTP/1.1", "GET", "/claims?id=3", "claims.example.com"),
        ("GET http://claims.example.com:80/ HTTP/1.1", "GET", "/", "claims.example.com"),
        ("GET https://claims.example.com:8443/x HTTP/1.1", "GET", "/x", "claims.example.com:8443"),
        ("GET http://claims.example.com:443/x HTTP/1.1", "GET", "/x", "claims.example.com:443"),
        ("GET https://claims.example.com:443 HTTP/1.1", "GET", "/", "claims.example.com"),
        ("GET https://claims.example.com:443?x=1 HTTP/1.1", "GET", "/?x=1", "claims.example.com"),
        ("GET https://10.0.0.9:443/a?b=c&d=%20e HTTP/1.1", "GET", "/a?b=c&d=%20e", "10.0.0.9"),
        ("GET https://[2001:db8::1]:443/v6 HTTP/1.1", "GET", "/v6", "[2001:db8::1]"),
        ("GET https://[2001:db8::1]:8443/v6 HTTP/1.1", "GET", "/v6", "[2001:db8::1]:8443"),
        ("get https://claims.example.com:443/x HTTP/1.1", "GET", "/x", "claims.example.com"),
        ("DELETE https://claims.example.com:443/claims/9 HTTP/2.0", "DELETE", "/claims/9", "claims.example.com"),
        ("GET https://claims.example.com:443/a b HTTP/1.1", "GET", "/a%20b", "claims.example.com"),
        ("GET https://claims.example.com:443/café?q=é HTTP/1.1", "GET", "/caf%C3%A9?q=%C3%A9", "claims.example.com"),
        ("GET https://claims.example.com:443/a{b}|c HTTP/1.1", "GET", "/a{b}|c", "claims.example.com"),
        ("GET /relative HTTP/1.0", "GET", "/relative", "claims.example.com"),  # host from domain_name
        ("GET https://claims.example.com:443/x", "GET", "/x", "claims.example.com"),  # no protocol word
    ],
)
def test_alb_request_lines(request_line: str, method: str, target: str, host: str) -> None:
    rec = record(aws_alb, alb(request=request_line))
    assert (rec.method, rec.target, rec.host) == (method, target, host)


def test_alb_bytes_that_are_not_utf8_go_back_on_the_wire_as_they_came() -> None:
    # read_lines keeps undecodable bytes as surrogate escapes
    line = alb(request="GET https://claims.example.com:443/latin\udce9 HTTP/1.1")
    assert record(aws_alb, line).target == "/latin%E9"


def test_elb_target_with_a_space_is_encoded() -> None:
    assert record(aws_elb, elb(request="GET http://claims.example.com:80/a b HTTP/1.1")).target == "/a%20b"


def test_alb_relative_request_without_domain_name_has_no_host() -> None:
    assert record(aws_alb, alb(request="GET /x HTTP/1.1", domain_name="-")).host is None


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        ("203.0.113.7:51234", "203.0.113.7"),
        ("2001:db8::7:51234", "2001:db8::7"),
        ("[2001:db8::7]:51234", "2001:db8::7"),
        ("203.0.113.7", "203.0.113.7"),
        ("-", None),
    ],
)
def test_alb_client_address_without_port(client: str, expected: str | None) -> None:
    assert record(aws_alb, alb(client=client)).client == expected


def test_alb_user_agent_with_escaped_quotes() -> None:
    rec = record(aws_alb, alb(user_agent='Bot \\"quoted\\" \\\\ 1.0'))
    assert rec.headers == (("User-Agent", 'Bot "quoted" \\ 1.0'),)
    assert rec.time == 1709542801.076543  # later fields are still in place


@pytest.mark.parametrize("user_agent", ["-", ""])
def test_alb_no_user_agent(user_agent: str) -> None:
    assert record(aws_alb, alb(user_agent=user_agent)).headers == ()


@pytest.mark.parametrize("request_line", ["- - -", "-", "- http://claims.example.com:80- -", "- - - "])
def test_alb_no_request_line_is_skipped(request_line: str) -> None:
    assert one(aws_alb, alb(request=request_line)) == Skipped(
        "no request line (the load balancer could not read a request)", "aws.log:1"
    )


@pytest.mark.parametrize("text", ["", "   "])
def test_alb_blank_line_is_skipped(text: str) -> None:
    assert one(aws_alb, text) == Skipped("blank line", "aws.log:1")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            alb(count=12),
            "too few fields: expected at least 13 space-separated fields (type time elb client:port target:port "
            '3 processing times, 2 status codes, 2 byte counts, "request"), got 12',
        ),
        (
            alb(type="HTTPS"),
            "field 1 (type): expected a request type like http, https, h2, grpcs, ws or wss, got 'HTTPS'",
        ),
        (
            alb(request_creation_time="2024-03-04T09:00:01"),
            "field 22 (request_creation_time): expected an ISO 8601 UTC time like 2024-03-04T09:00:01.123456Z, "
            "got '2024-03-04T09:00:01'",
        ),
        (
            alb(count=18, time="2024-13-04T09:00:01.123456Z"),
            "field 2 (time): '2024-13-04T09:00:01.123456Z': month must be in 1..12",
        ),
        (
            alb(count=18, time="2024-02-30T09:00:01.000000Z"),
            "field 2 (time): '2024-02-30T09:00:01.000000Z': day is out of range for month",
        ),
        (
            alb(target_processing_time="fast"),
            "field 7 (target_processing_time): expected a number of seconds like 0.004, got 'fast'",
        ),
        (
            alb(request_processing_time="0.0.1"),
            "field 6 (request_processing_time): expected a number of seconds like 0.004, got '0.0.1'",
        ),
        (
            alb(elb_status_code="OK"),
            "field 9 (elb_status_code): expected an HTTP status code like 200 or '-', got 'OK'",
        ),
        (alb(sent_bytes="1.5k"), "field 12 (sent_bytes): expected a byte count or '-', got '1.5k'"),
        (alb(request="GET"), "field 13 (request): expected 'METHOD URL PROTOCOL', got 'GET'"),
        (alb(request="GET  HTTP/1.1"), "field 13 (request): expected 'METHOD URL PROTOCOL', got 'GET  HTTP/1.1'"),
        (
            alb(request="GET claims.example.com/x HTTP/1.1"),
            "field 13 (request): URL 'claims.example.com/x' is neither absolute (scheme://host:port/path) nor a path",
        ),
        (
            alb(request="GET https://claims.example.com:44x/ HTTP/1.1"),
            "field 13 (request): port '44x' in 'claims.example.com:44x' is not a number",
        ),
        (alb(request="GET https://:443/ HTTP/1.1"), "field 13 (request): ':443' has no host name"),
        (
            alb(request="GET https://[2001:db8::1/ HTTP/1.1"),
            "field 13 (request): host '[2001:db8::1' has an unclosed '['",
        ),
        (
            alb(request="G(T https://claims.example.com:443/ HTTP/1.1"),
            "field 13 (request): 'G(T' is not an HTTP method",
        ),
    ],
)
def test_alb_bad_lines_name_the_field(line: str, reason: str) -> None:
    result = bad(aws_alb, line)
    assert result.reason == reason
    assert result.text == line[:200]


def test_alb_bad_line_text_is_cut_to_200_characters() -> None:
    line = alb(elb_status_code="OK")
    assert len(line) > 200
    assert bad(aws_alb, line).text == line[:200]


def test_alb_mixed_file_keeps_going_after_bad_lines() -> None:
    lines = [alb(), "garbage", "", alb(request="- - -"), alb(elb_status_code="404")]
    kinds = [type(r).__name__ for r in run(aws_alb, lines)]
    assert kinds == ["LogRecord", "BadLine", "Skipped", "Skipped", "LogRecord"]
    assert [r.source for r in run(aws_alb, lines)] == [f"aws.log:{i}" for i in range(1, 6)]


# -- Classic Load Balancer -------------------------------------------------------------------------
ELB_LINE = (
    "2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 0.000057 "
    '200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -'
)


def elb(**values: str) -> str:
    names = [
        "time", "elb", "client", "backend", "request_processing_time", "backend_processing_time",
        "response_processing_time", "elb_status_code", "backend_status_code", "received_bytes", "sent_bytes",
    ]  # fmt: skip
    defaults = ELB_LINE.split(" ")[:11]
    head = [values.pop(name, default) for name, default in zip(names, defaults, strict=True)]
    request = values.pop("request", "GET https://claims.example.com:443/claims?id=3 HTTP/1.1")
    user_agent = values.pop("user_agent", "curl/8.5.0")
    tail = values.pop("tail", "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2")
    assert not values, f"unknown ELB fields {values}"
    line = " ".join(head) + f' "{request}"'
    if user_agent is not None:
        line += f' "{user_agent}"'
    return line + (f" {tail}" if tail else "")


def test_elb_entry_as_in_the_aws_docs() -> None:
    assert one(aws_elb, ELB_LINE) == LogRecord(
        time=1431560383.945958,
        method="GET",
        target="/",
        source="aws.log:1",
        status=200,
        duration_ms=1.178,
        bytes=29,
        client="192.168.131.39",
        host="www.example.com",
        headers=(("User-Agent", "curl/7.38.0"),),
    )


def test_elb_https_listener() -> None:
    rec = record(aws_elb, elb())
    assert (rec.method, rec.target, rec.host) == ("GET", "/claims?id=3", "claims.example.com")


def test_elb_tcp_listener_entry_is_skipped() -> None:
    line = (
        "2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.001069 0.000028 0.000041 "
        '- - 82 305 "- - - " "-" - -'
    )
    assert one(aws_elb, line) == Skipped("no request line (TCP/SSL listener or unreadable request)", "aws.log:1")


def test_elb_backend_not_reached() -> None:
    line = elb(backend="-", request_processing_time="-1", backend_processing_time="-1",
               response_processing_time="-1", elb_status_code="504", backend_status_code="0")  # fmt: skip
    rec = record(aws_elb, line)
    assert (rec.status, rec.duration_ms, rec.bytes) == (504, None, 29)


def test_elb_old_entries_end_with_the_request() -> None:
    line = elb(user_agent=None, tail="")  # type: ignore[arg-type]
    rec = record(aws_elb, line)
    assert (rec.target, rec.headers) == ("/claims?id=3", ())


def test_elb_status_dash() -> None:
    assert record(aws_elb, elb(elb_status_code="-")).status is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            '2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.1 0.1 0.1 200 200 0 29',
            "too few fields: expected at least 12 space-separated fields (time elb client:port backend:port "
            '3 processing times, 2 status codes, 2 byte counts, "request"), got 11',
        ),
        (
            elb(time="2015-05-13 23:39:43"),  # a space in the time shifts every field after it
            "field 1 (time): expected an ISO 8601 UTC time like 2024-03-04T09:00:01.123456Z, got '2015-05-13'",
        ),
        (
            elb(time="13/May/2015:23:39:43"),
            "field 1 (time): expected an ISO 8601 UTC time like 2024-03-04T09:00:01.123456Z, "
            "got '13/May/2015:23:39:43'",
        ),
        (
            elb(backend_processing_time="n/a"),
            "field 6 (backend_processing_time): expected a number of seconds like 0.004, got 'n/a'",
        ),
        (
            elb(elb_status_code="2xx"),
            "field 8 (elb_status_code): expected an HTTP status code like 200 or '-', got '2xx'",
        ),
        (elb(sent_bytes="-5"), "field 11 (sent_bytes): expected a byte count or '-', got '-5'"),
        (elb(request="GET"), "field 12 (request): expected 'METHOD URL PROTOCOL', got 'GET'"),
    ],
)
def test_elb_bad_lines_name_the_field(line: str, reason: str) -> None:
    assert bad(aws_elb, line).reason == reason


def test_elb_time_with_whole_seconds() -> None:
    assert record(aws_elb, elb(time="2015-05-13T23:39:43Z")).time == 1431560383.0


# -- sniffing the two load balancer formats ----------------------------------------------------------
COMBINED = '203.0.113.7 - - [04/Mar/2024:09:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.5.0"'
CADDY = '{"ts":1709542801.5,"request":{"method":"GET","uri":"/"},"status":200}'


def test_sniff_alb() -> None:
    head = [alb(), alb(type="h2"), alb(request="- - -"), alb()[:40]]
    assert aws_alb.sniff(head)
    assert not aws_elb.sniff(head)
    assert not cloudfront.sniff(head)
    assert not jsonl.sniff(head)


def test_sniff_elb() -> None:
    head = [ELB_LINE, elb(), elb(backend="-", request_processing_time="-1"), ""]
    assert aws_elb.sniff(head)
    assert not aws_alb.sniff(head)
    assert not cloudfront.sniff(head)


@pytest.mark.parametrize("head", [[], [""], [COMBINED] * 3, [CADDY] * 3, [alb(), COMBINED, COMBINED]])
def test_sniff_alb_rejects_other_shapes(head: list[str]) -> None:
    assert not aws_alb.sniff(head)


@pytest.mark.parametrize("head", [[], [COMBINED] * 3, [CADDY] * 3, [ELB_LINE, COMBINED, COMBINED]])
def test_sniff_elb_rejects_other_shapes(head: list[str]) -> None:
    assert not aws_elb.sniff(head)


# -- CloudFront ------------------------------------------------------------------------------------
CF_FIELDS = (
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) "
    "cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken "
    "x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status "
    "fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len "
    "sc-range-start sc-range-end"
)
CF_HEADER = ["#Version: 1.0", f"#Fields: {CF_FIELDS}"]
CF_DEFAULTS = {
    "date": "2024-03-04",
    "time": "09:00:01",
    "x-edge-location": "FRA56-P1",
    "sc-bytes": "1536",
    "c-ip": "203.0.113.7",
    "cs-method": "GET",
    "cs(Host)": "d111111abcdef8.cloudfront.net",
    "cs-uri-stem": "/claims",
    "sc-status": "200",
    "cs(Referer)": "-",
    "cs(User-Agent)": "Mozilla/5.0%20(X11;%20Linux%20x86_64)",
    "cs-uri-query": "id=3",
    "cs(Cookie)": "-",
    "x-edge-result-type": "Miss",
    "x-edge-request-id": "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==",
    "x-host-header": "claims.example.com",
    "cs-protocol": "https",
    "cs-bytes": "210",
    "time-taken": "0.082",
    "x-forwarded-for": "-",
    "ssl-protocol": "TLSv1.3",
    "ssl-cipher": "TLS_AES_128_GCM_SHA256",
    "x-edge-response-result-type": "Miss",
    "cs-protocol-version": "HTTP/2.0",
    "fle-status": "-",
    "fle-encrypted-fields": "-",
    "c-port": "51234",
    "time-to-first-byte": "0.080",
    "x-edge-detailed-result-type": "Miss",
    "sc-content-type": "application/json",
    "sc-content-len": "1200",
    "sc-range-start": "-",
    "sc-range-end": "-",
}


def cf(fields: str = CF_FIELDS, **values: str) -> str:
    """A data line for the given #Fields list; keyword names use '_' for '-' and drop '(' ')'."""
    row = []
    for name in fields.split():
        key = name.replace("-", "_").replace("(", "_").replace(")", "")
        row.append(values.pop(key, CF_DEFAULTS[name]))
    assert not values, f"unknown CloudFront fields {values}"
    return "\t".join(row)


CF_RECORD = LogRecord(
    time=1709542801.0,
    method="GET",
    target="/claims?id=3",
    source="aws.log:3",
    status=200,
    duration_ms=82.0,
    bytes=1536,
    client="203.0.113.7",
    host="claims.example.com",
    headers=(("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),),
)


def test_cloudfront_file_with_directives() -> None:
    assert run(cloudfront, [*CF_HEADER, cf()]) == [
        Skipped("W3C directive", "aws.log:1"),
        Skipped("W3C directive", "aws.log:2"),
        CF_RECORD,
    ]


def test_cloudfront_entry_as_in_the_aws_docs() -> None:
    line = (
        "2019-12-13\t22:36:27\tSEA19-C1\t900\t192.0.2.200\tGET\td111111abcdef8.cloudfront.net\t/favicon.ico\t502\t"
        "http://www.example.com/\tMozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)\t-\t-\tError\t"
        "1pkpNfBQ39sYMnjjUQjmH2w1wdJnbHYTbag21o_3OfcQgPzdL2RSSQ==\twww.example.com\thttp\t675\t0.102\t-\t-\t-\t"
        "Error\tHTTP/1.1\t-\t-\t25260\t0.102\tOriginDnsError\ttext/html\t507\t-\t-"
    )
    assert run(cloudfront, [*CF_HEADER, line])[2] == LogRecord(
        time=1576276587.0,
        method="GET",
        target="/favicon.ico",
        source="aws.log:3",
        status=502,
        duration_ms=102.0,
        bytes=900,
        client="192.0.2.200",
        host="www.example.com",
        headers=(("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"), ("Referer", "http://www.example.com/")),
    )


def test_cloudfront_without_a_fields_line_uses_the_documented_order() -> None:
    assert one(cloudfront, cf()) == LogRecord(**{**_fields(CF_RECORD), "source": "aws.log:1"})


def _fields(rec: LogRecord) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in LogRecord.__slots__}  # type: ignore[attr-defined]


def test_cloudfront_older_files_with_fewer_columns() -> None:
    short = "\t".join(cf().split("\t")[:12])  # date .. cs-uri-query
    rec = record(cloudfront, short)
    assert (rec.target, rec.duration_ms, rec.host) == ("/claims?id=3", None, "d111111abcdef8.cloudfront.net")


def test_cloudfront_extra_trailing_columns_are_ignored() -> None:
    assert run(cloudfront, [*CF_HEADER, cf() + "\tnew\tcolumns"])[2] == CF_RECORD


def test_cloudfront_fields_line_reorders_columns() -> None:
    fields = "time date cs-uri-stem cs-method sc-status c-ip"
    lines = ["#Version: 1.0", f"#Fields: {fields}", cf(fields, cs_method="POST", sc_status="201")]
    assert run(cloudfront, lines)[2] == LogRecord(
        time=1709542801.0, method="POST", target="/claims", source="aws.log:3", status=201, client="203.0.113.7"
    )


def test_cloudfront_fields_can_change_midway() -> None:
    narrow = "date time cs-method cs-uri-stem"
    lines = [*CF_HEADER, cf(), f"#Fields: {narrow}", cf(narrow, cs_uri_stem="/later")]
    results = run(cloudfront, lines)
    assert results[2] == CF_RECORD
    assert results[3] == Skipped("W3C directive", "aws.log:4")
    assert results[4] == LogRecord(time=1709542801.0, method="GET", target="/later", source="aws.log:5")


def test_cloudfront_fields_line_without_required_columns() -> None:
    lines = [*CF_HEADER[:1], "#Fields: date time cs-method", "2024-03-04\t09:00:01\tGET", f"#Fields: {CF_FIELDS}", cf()]
    results = run(cloudfront, lines)
    assert results[1] == BadLine(
        "the #Fields line has no cs-uri-stem column: cannot read requests without it",
        "aws.log:2",
        "#Fields: date time cs-method",
    )
    assert results[2] == BadLine(
        "no usable column list: the #Fields line has no cs-uri-stem column: cannot read requests without it "
        "(#Fields at line 2)",
        "aws.log:3",
        "2024-03-04\t09:00:01\tGET",
    )
    assert isinstance(results[4], LogRecord)  # a good #Fields line restores reading


def test_cloudfront_other_directives_are_skipped() -> None:
    assert run(cloudfront, ["#Software: Amazon CloudFront", "#Date: 2024-03-04 09:00:00"]) == [
        Skipped("W3C directive", "aws.log:1"),
        Skipped("W3C directive", "aws.log:2"),
    ]


@pytest.mark.parametrize("text", ["", " "])
def test_cloudfront_blank_line(text: str) -> None:
    assert one(cloudfront, text) == Skipped("blank line", "aws.log:1")


@pytest.mark.parametrize(
    ("stem", "query", "target"),
    [
        ("/claims", "-", "/claims"),
        ("/claims", "", "/claims"),
        ("/", "id=3&x=1", "/?id=3&x=1"),
        ("/docs/a%2520b.pdf", "-", "/docs/a%20b.pdf"),  # '%' is logged as %25: the client sent %20
        ("/docs/a%20b.pdf", "-", "/docs/a%20b.pdf"),  # a raw space cannot be sent; it goes out as %20
        ("/caf%C3%A9", "-", "/caf%C3%A9"),  # non-ASCII stays UTF-8 percent-encoded
        ("/latin%E9", "-", "/latin%E9"),  # bytes that are not UTF-8 are kept as they were
        ("/a%23b", "-", "/a%23b"),  # '#' would end the path
        ("/a%7Bb%7D%5B1%5D", "-", "/a{b}[1]"),  # characters CloudFront encodes but clients send raw
        ("/search", "q=caf%25C3%25A9&tag=a%2520b", "/search?q=caf%C3%A9&tag=a%20b"),
        ("/search", "q=a+b&r=%252B", "/search?q=a+b&r=%2B"),
        ("/search", "q=%22quoted%22", '/search?q="quoted"'),  # the client sent the quotes raw
        ("/tab%09in", "-", "/tab%09in"),
    ],
)
def test_cloudfront_stem_and_query_come_back_as_sent(stem: str, query: str, target: str) -> None:
    assert record(cloudfront, cf(cs_uri_stem=stem, cs_uri_query=query)).target == target


def test_cloudfront_host_falls_back_to_cs_host() -> None:
    assert record(cloudfront, cf(x_host_header="-")).host == "d111111abcdef8.cloudfront.net"


def test_cloudfront_viewer_hung_up_before_a_response() -> None:
    assert record(cloudfront, cf(sc_status="000")).status is None


def test_cloudfront_dash_values() -> None:
    rec = record(cloudfront, cf(c_ip="-", sc_bytes="-", time_taken="-", sc_status="-", cs_User_Agent="-"))
    assert (rec.client, rec.bytes, rec.duration_ms, rec.status, rec.headers) == (None, None, None, None, ())


def test_cloudfront_ipv6_viewer() -> None:
    assert record(cloudfront, cf(c_ip="2001:db8:85a3::8a2e:370:7334")).client == "2001:db8:85a3::8a2e:370:7334"


def test_cloudfront_headers_are_decoded() -> None:
    rec = record(cloudfront, cf(cs_Referer="https://example.com/a%20page",
                                cs_User_Agent="Slackbot%201.0%20(+https://api.slack.com/robots)"))
    assert rec.headers == (("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)"),
                           ("Referer", "https://example.com/a page"))


@pytest.mark.parametrize(("taken", "ms"), [("0.000", 0.0), ("0.001", 1.0), ("12.345", 12345.0), ("3", 3000.0)])
def test_cloudfront_time_taken(taken: str, ms: float) -> None:
    assert record(cloudfront, cf(time_taken=taken)).duration_ms == ms


def test_cloudfront_lowercase_method() -> None:
    assert record(cloudfront, cf(cs_method="options")).method == "OPTIONS"


@pytest.mark.parametrize(("method", "stem"), [("-", "/claims"), ("GET", "-")])
def test_cloudfront_no_request_is_skipped(method: str, stem: str) -> None:
    assert one(cloudfront, cf(cs_method=method, cs_uri_stem=stem)) == Skipped(
        "no request (cs-method or cs-uri-stem is '-')", "aws.log:1"
    )


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"date": "2024-13-04"}, "field 1 (date): '2024-13-04': month must be in 1..12"),
        ({"date": "2023-02-29"}, "field 1 (date): '2023-02-29': day is out of range for month"),
        ({"date": "04/03/2024"}, "field 1 (date): expected a UTC date like 2019-12-04, got '04/03/2024'"),
        ({"time": "9:00:01"}, "field 2 (time): expected a UTC time like 21:02:31, got '9:00:01'"),
        ({"time": "25:00:01"}, "field 2 (time): expected hour 00-23, minute 00-59, second 00-60, got '25:00:01'"),
        ({"time": "09:61:01"}, "field 2 (time): expected hour 00-23, minute 00-59, second 00-60, got '09:61:01'"),
        ({"sc_status": "20x"}, "field 9 (sc-status): expected an HTTP status like 200 (or 000), got '20x'"),
        ({"sc_status": "2000"}, "field 9 (sc-status): expected an HTTP status like 200 (or 000), got '2000'"),
        ({"sc_bytes": "1.5k"}, "field 4 (sc-bytes): expected a byte count, got '1.5k'"),
        ({"time_taken": "fast"}, "field 19 (time-taken): expected a number of seconds like 0.004, got 'fast'"),
        ({"time_taken": "-0.5"}, "field 19 (time-taken): expected seconds >= 0, got '-0.5'"),
        ({"cs_method": "GE T"}, "field 6 (cs-method): 'GE T' is not an HTTP method"),
        ({"cs_uri_stem": "claims"}, "field 8 (cs-uri-stem): expected a path starting with '/', got 'claims'"),
    ],
)
def test_cloudfront_bad_lines_name_the_field(values: dict[str, str], reason: str) -> None:
    line = cf(**values)
    result = run(cloudfront, [*CF_HEADER, line])[2]
    assert isinstance(result, BadLine), result
    assert (result.reason, result.source, result.text) == (reason, "aws.log:3", line[:200])


def test_cloudfront_line_shorter_than_its_fields_line() -> None:
    line = "\t".join(cf().split("\t")[:20])
    assert run(cloudfront, [*CF_HEADER, line])[2].reason == (  # type: ignore[union-attr]
        "too few fields: expected 33 tab-separated fields, as the #Fields line at line 2 declares, got 20"
    )


def test_cloudfront_line_too_short_for_the_default_order() -> None:
    assert bad(cloudfront, "2024-03-04\t09:00:01\tFRA56-P1").reason == (
        "too few fields: expected at least 12 tab-separated fields (date time x-edge-location .. cs-uri-query), got 3"
    )


def test_cloudfront_line_whose_tabs_became_spaces() -> None:
    assert bad(cloudfront, cf().replace("\t", " ")).reason == (
        "too few fields: expected at least 12 tab-separated fields (date time x-edge-location .. cs-uri-query), got 1; "
        "this line has no tabs (were they turned into spaces?)"
    )


def test_sniff_cloudfront() -> None:
    assert cloudfront.sniff(CF_HEADER + [cf()])
    assert cloudfront.sniff([cf(), cf(), cf()[:30]])
    assert cloudfront.sniff([f"#Fields: {CF_FIELDS}"])
    assert not aws_alb.sniff(CF_HEADER + [cf()])
    assert not aws_elb.sniff(CF_HEADER + [cf()])
    assert not jsonl.sniff(CF_HEADER + [cf()])


@pytest.mark.parametrize(
    "head",
    [
        [],
        ["#Version: 1.0"],
        # IIS writes W3C extended logs too, space-separated and without x-edge columns.
        [
            "#Software: Microsoft Internet Information Services 10.0",
            "#Version: 1.0",
            "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
            "sc-status",
            "2024-03-04 09:00:01 10.0.0.1 GET /claims id=3 443 - 203.0.113.7 curl/8.5.0 200",
        ],
        [COMBINED] * 3,
        [CADDY] * 3,
        [alb()] * 3,
        [ELB_LINE] * 3,
    ],
)
def test_sniff_cloudfront_rejects_other_shapes(head: list[str]) -> None:
    assert not cloudfront.sniff(head)


def test_default_fields_match_the_documented_order() -> None:
    assert cloudfront.DEFAULT_FIELDS == tuple(CF_FIELDS.split())


# -- all three ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reader", "make"),
    [
        (aws_alb, lambda status: alb(elb_status_code=status)),
        (aws_elb, lambda status: elb(elb_status_code=status)),
        (cloudfront, lambda status: cf(sc_status=status)),
    ],
    ids=["alb", "elb", "cloudfront"],
)
def test_bad_line_reasons_start_with_a_category_free_of_the_value(reader: ModuleType, make: Any) -> None:
    # Reports group bad lines by the text before the first colon.
    categories = {bad(reader, make(status)).reason.split(":", 1)[0] for status in ("OK", "2xx")}
    assert len(categories) == 1
    assert categories.pop().startswith("field ")
