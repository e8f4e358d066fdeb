"""Format detection: every reader recognises its own files, and only its own, from the head."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from esr.core.errors import EsrError, UnknownLogFormat
from esr.replay.sources import LogStream, ReplayInputError, detect, readers

SAMPLES = {
    "clf": ['203.0.113.5 - - [04/Mar/2024:09:00:00 +0000] "GET /claims HTTP/1.1" 200 512 "-" "curl/8.5"'],
    "json": [json.dumps({"level": "info", "ts": 1709542800.5, "logger": "http.log.access", "msg": "handled request",
                         "request": {"remote_ip": "203.0.113.5", "proto": "HTTP/1.1", "method": "GET",
                                     "host": "claims.example", "uri": "/claims", "headers": {}},
                         "duration": 0.012, "size": 512, "status": 200})],
    "w3c": ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
            "#Date: 2024-03-04 09:00:00", "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port "
            "c-ip sc-status time-taken", "2024-03-04 09:00:00 10.0.0.1 GET /claims - 80 203.0.113.5 200 12"],
    "cloudfront": ["#Version: 1.0", "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) "
                   "cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type "
                   "x-edge-request-id x-host-header cs-protocol cs-bytes time-taken",
                   "2024-03-04\t09:00:00\tIAD79-C1\t512\t203.0.113.5\tGET\td111.cloudfront.net\t/claims\t200\t-\t"
                   "curl/8.5\t-\t-\tHit\tabc==\tclaims.example\thttps\t100\t0.012"],
    "alb": ['http 2024-03-04T09:00:00.123456Z app/my-alb/50dc6c495c0c9188 203.0.113.5:2817 10.0.0.1:80 0.000 0.012 '
            '0.000 200 200 34 512 "GET http://claims.example:80/claims HTTP/1.1" "curl/8.5" - - '
            'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 '
            '"Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2024-03-04T09:00:00.111000Z "forward" "-" "-" '
            '"10.0.0.1:80" "200" "-" "-"'],
    "elb": ['2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 '
            '0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -'],
    "har": [json.dumps({"log": {"version": "1.2", "creator": {"name": "Firefox", "version": "125"}, "entries": [
        {"startedDateTime": "2024-03-04T09:00:00.000Z", "time": 12, "request": {
            "method": "GET", "url": "https://claims.example/claims", "httpVersion": "HTTP/1.1", "headers": [],
            "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
         "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [], "cookies": [],
                      "content": {"size": 512, "mimeType": "text/plain"}, "redirectURL": "", "headersSize": -1,
                      "bodySize": 512}, "cache": {}, "timings": {"send": 0, "wait": 12, "receive": 0}}]}},
                       indent=2)],
    "gor": ["1 8e0b0ee4a0c05e5a 1709542800000000000 0", "GET /claims HTTP/1.1", "Host: claims.example", "", "",
            "\U0001F435\U0001F648\U0001F649"],
}


def test_every_reader_has_a_sample() -> None:
    assert set(readers()) == set(SAMPLES)


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_each_format_is_detected_from_its_head_and_gives_one_request(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"sample.{fmt}.gz"
    with gzip.open(path, "wt") as f:  # gzip is detected by its magic bytes, whatever the name
        f.write("\r\n".join(SAMPLES[fmt]))  # CRLF, no final newline
    assert detect(path).NAME == fmt
    stream = LogStream([path])
    records = list(stream)
    assert [(r.method, r.target.split("?")[0]) for r in records] == [("GET", "/claims" if fmt != "elb" else "/")]
    assert stream.tally.files == {str(path): fmt}


def test_an_unknown_format_is_reported_by_name_and_the_rest_still_replays(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("\n".join(SAMPLES["clf"]) + "\n")
    (tmp_path / "b.txt").write_text("hello\nworld\n")
    stream = LogStream([tmp_path])
    assert len(list(stream)) == 1
    assert len(stream.tally.unreadable) == 1
    assert stream.tally.unreadable[0].startswith(f"{tmp_path / 'b.txt'}: unknown log format: closest is ")


def test_a_forced_unknown_format_and_a_missing_path_are_errors(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("x\n")
    with pytest.raises(ReplayInputError, match="unknown --format 'nope'; known formats: alb, clf"):
        detect(tmp_path / "a.log", "nope")
    with pytest.raises(ReplayInputError, match="no such file or folder"):
        LogStream([tmp_path / "missing"])


# -- a file in no known format: the closest one, the line and the column where it stopped matching --
CLOSEST = [
    ("combined, its time not bracketed",
     ['203.0.113.5 - - 04/Mar/2024:09:00:00 +0000 "GET /claims HTTP/1.1" 200 512 "-" "curl/8.5"'] * 3,
     "closest is combined (clf), line 1 does not match it at column 17: expected '[' (the time, as "
     "[day/Mon/year:hh:mm:ss zone]), found '04/Mar/2024:09:00:00...'"),
    ("combined, the second line cut short",
     ['203.0.113.5 - - [04/Mar/2024:09:00:00 +0000] "GET /claims HTTP/1.1" 200 512',
      '203.0.113.5 - - [04/Mar/2024:09:00:01 +0000] "GET /claims HTTP/1.1"',
      '203.0.113.5 - - [04/Mar/2024:09:00:02 +0000] "GET'],
     "closest is combined (clf), line 2 does not match it at column 68: expected ' ' before the status, "
     "found the end of the line"),
    ("W3C rows without a header",
     ["2025-03-14 10:00:00 GET /a 200 15", "2025-03-14 10:00:01 GET /b 200 15"],
     "closest is W3C extended (w3c), line 1 does not match it at column 1: expected a '#Fields:' directive "
     "before the first row (or --fields, e.g. --fields \"date time cs-method cs-uri-stem sc-status\"), "
     "found '2025-03-14 10:00:00 ...'"),
    ("JSON lines with a missing comma",
     ['{"ts": 1709542800, "method": "GET", "uri": "/claims" "status": 200}'] * 2,
     "closest is JSON lines (json), line 1 does not match it at column 54: expected ',' or '}', "
     "found '\"status\": 200}'"),
    ("ALB with a local time",
     ["http 2024-03-04 09:00:00 app/my-alb/50dc6c495c0c9188 203.0.113.5:2817 10.0.0.1:80 0.000 0.012"] * 2,
     "closest is AWS Application Load Balancer (alb), line 1 does not match it at column 6: expected a time "
     "such as 2024-03-04T09:00:01.123456Z, found '2024-03-04 09:00:00 ...'"),
]


@pytest.mark.parametrize(("lines", "message"), [c[1:] for c in CLOSEST], ids=[c[0] for c in CLOSEST])
def test_an_unknown_format_names_the_closest_format_line_and_column(
        lines: list[str], message: str, tmp_path: Path) -> None:
    path = tmp_path / "mystery.log"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UnknownLogFormat) as caught:
        detect(path)
    assert isinstance(caught.value, EsrError)
    assert str(caught.value) == f"{path}: unknown log format: {message}; pass --format to force one"


def test_the_closest_format_skips_blank_lines_and_counts_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "mystery.log"
    path.write_text("\n\n" + "{not json}\n")
    with pytest.raises(UnknownLogFormat) as caught:
        detect(path)
    assert (caught.value.closest, caught.value.line, caught.value.column) == ("json", 3, 2)
