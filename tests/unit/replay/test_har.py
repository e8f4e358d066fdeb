"""esr.replay.formats.har: HAR 1.2 captures read into records, bad entries reported one by one."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from esr.replay.formats import har
from esr.replay.record import BadLine, LogRecord

T0 = 1709539201  # 2024-03-04T08:00:01Z


def numbered(text: str) -> list[tuple[int, str]]:
    """Lines as the file reader gives them: split at LF, CRLF removed, numbered from 1."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(n, line.removesuffix("\r")) for n, line in enumerate(lines, 1)]


def document(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
                    "pages": [], "entries": list(entries)}}


def entry(url: str = "https://claims.example/api/claims?id=3", method: str = "GET",
          started: str = "2024-03-04T09:00:01.123+01:00", **extra: Any) -> dict[str, Any]:
    request = {"method": method, "url": url, "httpVersion": "HTTP/1.1", "headers": [], "queryString": [],
               "cookies": [], "headersSize": -1, "bodySize": 0}
    request.update(extra.pop("request", {}))
    item = {"startedDateTime": started, "time": 52.5, "request": request,
            "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [],
                         "cookies": [], "content": {"size": 740, "mimeType": "application/json"},
                         "redirectURL": "", "headersSize": -1, "bodySize": 312},
            "cache": {}, "timings": {"send": 0.1, "wait": 50.0, "receive": 2.4}}
    item.update(extra)
    return item


def read(doc: Any, source: str = "capture.har") -> list[Any]:
    return list(har.parse(numbered(json.dumps(doc, indent=2)), source))


def one(item: dict[str, Any]) -> Any:
    (out,) = read(document(item))
    return out


# -- sniff --------------------------------------------------------------------------------
CHROME_HEAD = """{
  "log": {
    "version": "1.2",
    "creator": {
      "name": "WebInspector",
      "version": "537.36"
    },
    "pages": [],
    "entries": [""".split("\n")


@pytest.mark.parametrize(("head", "expected"), [
    (CHROME_HEAD, True),
    (['{"log":{"version":"1.2","creator":{"name":"Firefox","version":"123.0"},"entries":[]}}'], True),
    (["\ufeff{", '  "log": {', '    "entries": ['], True),  # a byte order mark, as Windows tools write
    (['{"log": {"comment": "", "entries": []}}'], True),
    (['{"time": "2024-03-04T09:00:01Z", "log": "GET /"}'], False),  # a JSON-lines access log
    (['{"log":"GET /claims 200\\n","stream":"stdout","time":"2024-03-04T09:00:01.5Z"}'], False),  # Docker json-file
    (['127.0.0.1 - - [04/Mar/2024:09:00:01 +0100] "GET / HTTP/1.1" 200 5'], False),
    (["1 8a7b 1709539201123456789 0", "GET / HTTP/1.1"], False),  # GoReplay
    (['["log", "entries"]'], False),
    ([], False),
])
def test_sniff(head: list[str], expected: bool) -> None:
    assert har.sniff(head) is expected


# -- a whole capture ----------------------------------------------------------------------
def test_a_capture_gives_one_record_per_entry_in_time_order_with_every_field() -> None:
    doc = document(
        entry("https://claims.example/api/claims?id=3&full=1#summary", started="2024-03-04T08:00:03.500Z",
              request={"httpVersion": "h2", "headers": [
                  {"name": ":method", "value": "GET"}, {"name": ":authority", "value": "claims.example"},
                  {"name": ":scheme", "value": "https"}, {"name": ":path", "value": "/api/claims?id=3&full=1"},
                  {"name": "accept", "value": "application/json"}, {"name": "cookie", "value": "s=1"},
                  {"name": "cookie", "value": "t=2"}]}),
        entry("http://user:pw@claims.example:8080/api/claims", method="post",
              started="2024-03-04T09:00:01.123+01:00", time=-1,
              request={"headers": [{"name": "Host", "value": "claims.example:8080"},
                                   {"name": "Content-Type", "value": "application/json"},
                                   {"name": "Connection", "value": "keep-alive, X-Trace"},
                                   {"name": "Keep-Alive", "value": "timeout=5"},
                                   {"name": "X-Trace", "value": "abc"},
                                   {"name": "Content-Length", "value": "19"}],
                       "postData": {"mimeType": "application/json", "text": '{"amount": "12 €"}'}},
              response={"status": 201, "bodySize": -1, "content": {"size": 2048}}),
        entry("https://claims.example", started="2024-03-04T08:00:02Z", time=0,
              response={"status": 0, "bodySize": -1, "content": {"size": -1}, "_error": "net::ERR_ABORTED"}),
    )
    records = read(doc)
    assert records == [
        LogRecord(time=T0 + 0.123, method="POST", target="/api/claims", source="capture.har#2", status=201,
                  duration_ms=None, bytes=2048, host="claims.example:8080",
                  headers=(("Host", "claims.example:8080"), ("Content-Type", "application/json"),
                           ("Content-Length", "19")),
                  body='{"amount": "12 €"}'.encode()),
        LogRecord(time=T0 + 1.0, method="GET", target="/", source="capture.har#3", status=None,
                  duration_ms=0.0, bytes=None, host="claims.example", headers=()),
        LogRecord(time=T0 + 2.5, method="GET", target="/api/claims?id=3&full=1", source="capture.har#1",
                  status=200, duration_ms=52.5, bytes=312, host="claims.example",
                  headers=(("accept", "application/json"), ("cookie", "s=1"), ("cookie", "t=2"))),
    ]
    assert records[0].body == b'{"amount": "12 \xe2\x82\xac"}'
    assert records[1].body is None and records[2].body is None


def test_entries_at_the_same_time_keep_their_file_order() -> None:
    doc = document(entry("https://a.example/2", started="2024-03-04T08:00:05Z"),
                   entry("https://a.example/1", started="2024-03-04T08:00:01Z"),
                   entry("https://a.example/3", started="2024-03-04T08:00:05Z"),
                   entry("https://a.example/0", started="2024-03-04T08:00:01Z"))
    assert [(r.target, r.source) for r in read(doc, "x.har")] == [
        ("/1", "x.har#2"), ("/0", "x.har#4"), ("/2", "x.har#1"), ("/3", "x.har#3")]


def test_bad_entries_come_first_then_the_records_in_time_order() -> None:
    doc = document(entry("https://a.example/late", started="2024-03-04T08:00:09Z"),
                   entry("data:image/png;base64,iVBORw0KGgo="),
                   entry("https://a.example/early", started="2024-03-04T08:00:01Z"),
                   entry("https://a.example/x", started="later"))
    out = read(doc, "x.har")
    assert [type(o).__name__ for o in out] == ["BadLine", "BadLine", "LogRecord", "LogRecord"]
    assert [o.source for o in out] == ["x.har#2", "x.har#4", "x.har#3", "x.har#1"]
    assert out[0].text == "GET data:image/png;base64,iVBORw0KGgo="
    assert out[1].text == "GET https://a.example/x"


def test_an_empty_capture_gives_nothing() -> None:
    assert read(document()) == []


# -- times --------------------------------------------------------------------------------
@pytest.mark.parametrize(("started", "expected"), [
    ("2024-03-04T08:00:01Z", T0),
    ("2024-03-04T08:00:01.123Z", 1709539201.123),
    ("2024-03-04T09:00:01.123+01:00", 1709539201.123),
    ("2024-03-04T02:30:01.5-05:30", 1709539201.5),
    ("2024-03-04T09:00:01+0100", T0),
    ("2024-03-04t08:00:01z", T0),
    ("2024-03-04 08:00:01Z", T0),
    ("2024-03-04T08:00:01.123456789Z", 1709539201.123456789),  # more digits than datetime keeps
    ("2024-03-04T08:00:01.999999999Z", 1709539201.999999999),
    ("2024-03-05T00:30:01+16:30", T0),
    ("1969-12-31T23:59:59.5Z", -0.5),
])
def test_start_times_in_every_rfc3339_form(started: str, expected: float) -> None:
    assert one(entry(started=started)).time == expected


@pytest.mark.parametrize(("started", "reason"), [
    ("04/Mar/2024:09:00:01 +0100", "bad startedDateTime: '04/Mar/2024:09:00:01 +0100' is not an RFC 3339 time "
                                   "(expected e.g. 2024-03-04T09:00:01.123+01:00)"),
    ("2024-03-04T09:00:01.123", "bad startedDateTime: '2024-03-04T09:00:01.123' has no UTC offset "
                                "(expected Z or +hh:mm)"),
    ("2024-13-04T09:00:01Z", "bad startedDateTime: '2024-13-04T09:00:01Z': month must be in 1..12"),
    ("2024-02-30T09:00:01Z", "bad startedDateTime: '2024-02-30T09:00:01Z': day is out of range for month"),
    ("2024-03-04T09:00:01+25:00", "bad startedDateTime: '2024-03-04T09:00:01+25:00': the UTC offset is out of "
                                  "range (-23:59 to +23:59)"),
    ("2024-03-04T09:00:01-05:60", "bad startedDateTime: '2024-03-04T09:00:01-05:60': the UTC offset is out of "
                                  "range (-23:59 to +23:59)"),
    ("2024-03-04T24:00:00Z", "bad startedDateTime: '2024-03-04T24:00:00Z': hour must be in 0..23"),
    ("2024-03-04T23:59:60Z", "bad startedDateTime: '2024-03-04T23:59:60Z': second must be in 0..59"),
    ("", "bad startedDateTime: '' is not an RFC 3339 time (expected e.g. 2024-03-04T09:00:01.123+01:00)"),
    (None, "no startedDateTime: the entry has no start time"),
    (1709539201, "no startedDateTime: the entry has no start time"),
])
def test_unreadable_start_times_are_bad_entries(started: Any, reason: str) -> None:
    assert one(entry(started=started)) == BadLine(reason, "capture.har#1", "GET https://claims.example/api/claims?id=3")


def test_a_missing_start_time_is_a_bad_entry() -> None:
    item = entry()
    del item["startedDateTime"]
    assert one(item).reason == "no startedDateTime: the entry has no start time"


# -- URLs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "target", "host"), [
    ("https://claims.example/api/claims?id=3", "/api/claims?id=3", "claims.example"),
    ("HTTPS://claims.example/a", "/a", "claims.example"),
    ("http://claims.example", "/", "claims.example"),
    ("http://claims.example?x=1", "/?x=1", "claims.example"),
    ("http://claims.example/a/?", "/a/?", "claims.example"),
    ("http://claims.example/a#frag?not=query", "/a", "claims.example"),
    ("http://claims.example/search?q=a%20b&q=%E2%82%AC", "/search?q=a%20b&q=%E2%82%AC", "claims.example"),
    ("http://[::1]:8080/x", "/x", "[::1]:8080"),
    ("https://u:p@claims.example:8443/x", "/x", "claims.example:8443"),
])
def test_target_and_host_come_from_the_url(url: str, target: str, host: str) -> None:
    record = one(entry(url))
    assert (record.target, record.host) == (target, host)


@pytest.mark.parametrize(("url", "reason"), [
    ("data:text/html,<p>hi</p>", "not an http(s) URL: 'data:text/html,<p>hi</p>' (data scheme) cannot be replayed"),
    ("chrome-extension://abcdefghijkl/background.js",
     "not an http(s) URL: 'chrome-extension://abcdefghijkl/background.js' (chrome-extension scheme) "
     "cannot be replayed"),
    ("blob:https://claims.example/1b2c", "not an http(s) URL: 'blob:https://claims.example/1b2c' (blob scheme) "
                                         "cannot be replayed"),
    ("wss://claims.example/live", "not an http(s) URL: 'wss://claims.example/live' (wss scheme) cannot be replayed"),
    ("/api/claims", "not an http(s) URL: '/api/claims' (no scheme) cannot be replayed"),
    ("data:" + "A" * 80, "not an http(s) URL: 'data:" + "A" * 52 + "...' (data scheme) cannot be replayed"),
    ("http:///nohost", "bad request.url: 'http:///nohost' has no host"),
    ("http://[::1/x", "bad request.url: 'http://[::1/x': Invalid IPv6 URL"),
])
def test_urls_that_cannot_be_replayed_are_bad_entries(url: str, reason: str) -> None:
    assert one(entry(url)).reason == reason


@pytest.mark.parametrize("url", ["", None, 42])
def test_an_entry_without_a_url_is_a_bad_entry(url: Any) -> None:
    bad = one(entry(url))
    assert bad.reason == "no request.url: the entry's request has no URL"
    assert bad.source == "capture.har#1"


# -- methods, figures ---------------------------------------------------------------------
def test_methods_are_upper_case_and_must_be_tokens() -> None:
    assert one(entry(method="patch")).method == "PATCH"
    assert one(entry(method="GET /x")).reason == "bad request.method: 'GET /x' is not an HTTP method"
    assert one(entry(method=None)).reason == "bad request.method: None is not an HTTP method"


@pytest.mark.parametrize(("time", "expected"), [(123.4, 123.4), (0, 0.0), (-1, None), (None, None), ("12", None),
                                                (True, None)])
def test_duration_is_the_entry_time_unless_unknown(time: Any, expected: float | None) -> None:
    assert one(entry(time=time)).duration_ms == expected


def test_duration_is_none_when_the_entry_has_no_time() -> None:
    item = entry()
    del item["time"]
    assert one(item).duration_ms is None


@pytest.mark.parametrize(("response", "status", "size"), [
    ({"status": 304, "bodySize": 0, "content": {"size": 5120}}, 304, 0),
    ({"status": 200, "bodySize": -1, "content": {"size": 5120}}, 200, 5120),
    ({"status": 200, "content": {"size": 7}}, 200, 7),
    ({"status": 200, "bodySize": -1, "content": {"size": -1}}, 200, None),
    ({"status": 0, "bodySize": -1, "content": {}}, None, None),
    ({"status": "200"}, None, None),
    ({}, None, None),
    (None, None, None),
])
def test_status_and_bytes_come_from_the_response(response: Any, status: int | None, size: int | None) -> None:
    record = one(entry(response=response))
    assert (record.status, record.bytes) == (status, size)


def test_an_entry_without_a_response_still_replays() -> None:
    item = entry()
    del item["response"]
    assert (one(item).status, one(item).bytes) == (None, None)


# -- headers ------------------------------------------------------------------------------
def test_pseudo_and_hop_by_hop_headers_are_left_out_the_rest_kept_in_order() -> None:
    headers = [(":authority", "a.example"), ("User-Agent", "Mozilla/5.0"), ("TE", "trailers"),
               ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("connection", "Upgrade, HTTP2-Settings"),
               ("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA"), ("Proxy-Connection", "keep-alive"),
               ("Proxy-Authorization", "Basic eDp5"), ("Trailer", "Expires"), ("X-B", "2"), ("x-a", "1"),
               ("X-B", "3")]
    record = one(entry(request={"headers": [{"name": n, "value": v} for n, v in headers]}))
    assert record.headers == (("User-Agent", "Mozilla/5.0"), ("X-B", "2"), ("x-a", "1"), ("X-B", "3"))


@pytest.mark.parametrize(("headers", "reason"), [
    ({"Accept": "*/*"}, 'bad request.headers: expected a list of {"name", "value"} objects'),
    ([{"name": "Accept"}], 'bad request.headers: item 0 is not a {"name", "value"} object with string fields'),
    ([{"name": "A", "value": "1"}, ["B", "2"]],
     'bad request.headers: item 1 is not a {"name", "value"} object with string fields'),
])
def test_malformed_headers_are_bad_entries(headers: Any, reason: str) -> None:
    assert one(entry(request={"headers": headers})).reason == reason


def test_no_headers_at_all_is_fine() -> None:
    assert one(entry(request={"headers": None})).headers == ()


# -- bodies -------------------------------------------------------------------------------
def test_post_data_text_is_the_body_as_utf8() -> None:
    text = 'line one\r\nline two\n\n{"name": "Zoë"}'
    record = one(entry(method="POST", request={"postData": {"mimeType": "text/plain", "text": text}}))
    assert record.body == text.encode("utf-8")


def test_base64_post_data_is_decoded_to_its_bytes() -> None:
    raw = bytes(range(256)) + b"\r\n\x00\xff"
    post = {"mimeType": "application/octet-stream", "text": base64.b64encode(raw).decode(), "encoding": "base64"}
    assert one(entry(method="PUT", request={"postData": post})).body == raw


def test_invalid_base64_is_a_bad_entry() -> None:
    post = {"mimeType": "application/octet-stream", "text": "not base64!", "encoding": "base64"}
    assert one(entry(method="PUT", request={"postData": post})).reason == (
        'bad request.postData: "encoding" is base64 but "text" is not valid base64')


def test_empty_post_data_text_is_an_empty_body() -> None:
    assert one(entry(method="POST", request={"postData": {"mimeType": "text/plain", "text": ""}})).body == b""


def test_a_form_given_only_as_params_is_re_encoded() -> None:
    post = {"mimeType": "application/x-www-form-urlencoded; charset=UTF-8",
            "params": [{"name": "q", "value": "a b&c"}, {"name": "lang", "value": "é"}, {"name": "empty"}]}
    assert one(entry(method="POST", request={"postData": post})).body == b"q=a+b%26c&lang=%C3%A9&empty="


def test_a_multipart_body_given_only_as_params_is_a_bad_entry() -> None:
    post = {"mimeType": "multipart/form-data; boundary=----x",
            "params": [{"name": "file", "fileName": "scan.pdf", "contentType": "application/pdf"}]}
    assert one(entry(method="POST", request={"postData": post})).reason == (
        "no request.postData.text: the body is given only as params of 'multipart/form-data', "
        "which cannot be rebuilt byte for byte")


def test_post_data_that_is_not_an_object_is_a_bad_entry() -> None:
    assert one(entry(method="POST", request={"postData": "a=1"})).reason == (
        "bad request.postData: expected an object")


def test_post_data_with_a_lone_surrogate_is_a_bad_entry() -> None:
    lines = numbered(json.dumps(document(entry(method="POST", request={"postData": {"text": "x"}})), indent=2)
                     .replace('"text": "x"', '"text": "\\ud800"'))
    (bad,) = har.parse(lines, "s.har")
    assert bad.reason.startswith("bad request.postData: \"text\" holds a lone surrogate")


# -- files that are not HAR ---------------------------------------------------------------
def test_a_file_that_is_not_json_is_one_bad_line_pointing_at_the_error() -> None:
    lines = numbered('{\n  "log": {\n    "entries": [\n      {"request": oops}\n    ]\n  }\n}\n')
    assert list(har.parse(lines, "broken.har")) == [
        BadLine("not a HAR file: not JSON (Expecting value at line 4 column 19)", "broken.har:4",
                '      {"request": oops}')]


def test_a_file_cut_short_is_one_bad_line() -> None:
    text = json.dumps(document(entry()), indent=2)
    (bad,) = har.parse(numbered(text[: len(text) // 2]), "cut.har")
    assert bad.reason.startswith("not a HAR file: not JSON (")
    assert bad.source.startswith("cut.har:")


def test_an_empty_file_is_one_bad_line() -> None:
    assert list(har.parse([], "empty.har")) == [
        BadLine("not a HAR file: not JSON (Expecting value at line 1 column 1)", "empty.har:1", "")]


@pytest.mark.parametrize(("doc", "reason"), [
    ([], 'the JSON document is a list, expected an object with a "log"'),
    ("log", 'the JSON document is a string, expected an object with a "log"'),
    ({"entries": []}, 'no "log" object at the top level (is this a HAR export?)'),
    ({"log": []}, 'no "log" object at the top level (is this a HAR export?)'),
    ({"log": {"version": "1.2"}}, '"log" has no "entries" list'),
    ({"log": {"entries": {}}}, '"log" has no "entries" list'),
])
def test_json_that_is_not_a_har_document_is_one_bad_line(doc: Any, reason: str) -> None:
    (bad,) = read(doc, "other.json")
    assert bad == BadLine("not a HAR file: " + reason, "other.json:1", json.dumps(doc, indent=2)[:200])


@pytest.mark.parametrize(("item", "reason"), [
    ("GET /", "bad entry: it is a string, expected an object"),
    (None, "bad entry: it is null, expected an object"),
    ({"startedDateTime": "2024-03-04T08:00:01Z"}, 'no request: the entry has no "request" object'),
])
def test_entries_that_are_not_requests_are_bad(item: Any, reason: str) -> None:
    (bad,) = read(document(item))
    assert (bad.reason, bad.source) == (reason, "capture.har#1")
    assert bad.text == json.dumps(item, separators=(",", ":"))


def test_the_numbering_starts_wherever_the_lines_start() -> None:
    lines = [(n + 10, text) for n, text in numbered("{\n  oops\n}")]
    (bad,) = har.parse(lines, "f.har")
    assert bad.source == "f.har:12"


# -- with the file reader -----------------------------------------------------------------
def test_a_windows_saved_capture_reads_through_the_file_reader(tmp_path: Path) -> None:
    from esr.replay.sources import detect, read_lines

    text = json.dumps(document(entry(method="POST", request={"postData": {"text": "a\r\nb"}})), indent=2)
    path = tmp_path / "capture.har"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert detect(path) is har
    (record,) = har.parse(read_lines(path), str(path))
    assert (record.time, record.method, record.target, record.body) == (1709539201.123, "POST", "/api/claims?id=3",
                                                                        b"a\r\nb")
