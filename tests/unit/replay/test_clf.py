"""esr.replay.formats.clf: Apache/nginx common and combined lines, the variants real logs hold, and
bad lines reported with what was expected instead of raised."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from esr.replay.formats import clf
from esr.replay.record import BadLine, LogRecord, Skipped

T = "10/Oct/2000:13:55:36 -0700"
T_EPOCH = 971211336.0  # 2000-10-10 20:55:36 UTC
UA = "Mozilla/4.08 [en] (Win98; I ;Nav)"


def one(line: str, **options: object) -> LogRecord | Skipped | BadLine:
    out = list(clf.parse([(7, line)], "access.log", **options))
    assert len(out) == 1
    return out[0]


def record(line: str, **options: object) -> LogRecord:
    out = one(line, **options)
    assert type(out) is LogRecord, out
    return out


def bad(line: str) -> str:
    out = one(line)
    assert type(out) is BadLine, out
    assert out.source == "access.log:7"
    assert out.text == line[:200]
    return out.reason


def line(prefix: str = "127.0.0.1 - frank", *, time: str = T, request: str = "GET /apache_pb.gif HTTP/1.0",
         tail: str = "200 2326") -> str:
    return f'{prefix} [{time}] "{request}" {tail}'


# -- the documented formats ------------------------------------------------------------------
def test_common_log_format_line_from_the_apache_docs() -> None:
    r = record('127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326')
    assert r == LogRecord(time=T_EPOCH, method="GET", target="/apache_pb.gif", source="access.log:7",
                          status=200, duration_ms=None, bytes=2326, client="127.0.0.1", host=None, headers=())


def test_combined_log_format_line_from_the_apache_docs() -> None:
    r = record('127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
               f'"http://www.example.com/start.html" "{UA}"')
    assert r == LogRecord(T_EPOCH, "GET", "/apache_pb.gif", "access.log:7", 200, None, 2326, "127.0.0.1", None,
                          (("Referer", "http://www.example.com/start.html"), ("User-Agent", UA)))


def test_nginx_default_combined_line() -> None:
    r = record('203.0.113.5 - - [04/Mar/2024:09:15:02 +0000] "POST /claims?id=3 HTTP/1.1" 201 612 "-" '
               '"curl/8.4.0"')
    assert (r.time, r.method, r.target, r.status, r.bytes, r.client, r.headers) == (
        1709543702.0, "POST", "/claims?id=3", 201, 612, "203.0.113.5", (("User-Agent", "curl/8.4.0"),))


def test_nginx_main_format_with_a_quoted_forwarded_for_at_the_end() -> None:
    r = record(line("203.0.113.5 - alice", tail=f'200 12 "-" "{UA}" "198.51.100.7, 10.0.0.1"'))
    assert (r.client, r.status, r.bytes, r.duration_ms, r.headers) == (
        "203.0.113.5", 200, 12, None, (("User-Agent", UA),))


def test_every_line_gets_file_and_line_number_as_source() -> None:
    lines = [(1, line()), (2, ""), (40, line(request="-"))]
    assert [p.source for p in clf.parse(lines, "logs/a.log")] == ["logs/a.log:1", "logs/a.log:2", "logs/a.log:40"]


# -- times --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("stamp", "epoch"), [
    ("10/Oct/2000:13:55:36 -0700", 971211336.0),
    ("10/Oct/2000:13:55:36 +0000", 971186136.0),
    ("10/Oct/2000:13:55:36 -0000", 971186136.0),
    ("10/Oct/2000:13:55:36 +0530", 971166336.0),
    ("10/Oct/2000:13:55:36 +1400", 971135736.0),
    ("10/Oct/2000:13:55:36 -1200", 971229336.0),
    ("01/Jan/1970:00:00:00 +0000", 0.0),
    ("31/Dec/1969:23:00:00 -0100", 0.0),
    ("29/Feb/2024:23:59:59 +0000", 1709251199.0),
    ("04/Mar/2024:00:00:00 +0100", 1709506800.0),
    ("4/Mar/2024:00:00:00 +0100", 1709506800.0),  # a day without its leading zero
    ("04/mar/2024:00:00:00 +0100", 1709506800.0),  # month names in any case
    ("04/MAR/2024:00:00:00 +01:00", 1709506800.0),  # a zone with a colon
    ("04/Mar/2024:00:00:00.250 +0000", 1709510400.25),  # %{msec_frac}t style
    ("31/Dec/2016:23:59:60 +0000", 1483228800.0),  # a leap second is the next second
])
def test_time_honours_the_zone_offset(stamp: str, epoch: float) -> None:
    assert clf.parse_time(stamp) == epoch
    assert record(line(time=stamp)).time == epoch


def test_time_matches_the_standard_library() -> None:
    for month in range(1, 13):
        for zone in ("-0700", "+0530", "+0000"):
            stamp = f"28/{clf._MONTH_NAMES[month - 1]}/2023:07:08:09 {zone}"
            assert clf.parse_time(stamp) == datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").timestamp()


@pytest.mark.parametrize(("stamp", "reason"), [
    ("10/Foo/2000:13:55:36 -0700", "bad time: month 'Foo' is not a month name (Jan, Feb, ... Dec) in "
                                   "'10/Foo/2000:13:55:36 -0700'"),
    ("32/Oct/2024:13:55:36 -0700", "bad time: day 32 is out of range for Oct 2024 in '32/Oct/2024:13:55:36 -0700'"),
    ("29/Feb/2023:13:55:36 -0700", "bad time: day 29 is out of range for Feb 2023 in '29/Feb/2023:13:55:36 -0700'"),
    ("00/Oct/2024:13:55:36 -0700", "bad time: day 0 is out of range for Oct 2024 in '00/Oct/2024:13:55:36 -0700'"),
    ("10/Oct/2024:24:00:00 -0700", "bad time: 24:00:00 is not a time of day (00:00:00 to 23:59:59) in "
                                   "'10/Oct/2024:24:00:00 -0700'"),
    ("10/Oct/2024:13:61:00 -0700", "bad time: 13:61:00 is not a time of day (00:00:00 to 23:59:59) in "
                                   "'10/Oct/2024:13:61:00 -0700'"),
    ("10/Oct/2024:13:55:36 +0575", "bad time: zone +0575 is not an offset (-2359 to +2359) in "
                                   "'10/Oct/2024:13:55:36 +0575'"),
    ("10/Oct/2024:13:55:36", "bad time: expected '[day/Mon/year:hh:mm:ss zone]' time, found "
                             "'[10/Oct/2024:13:55:36]'"),
    ("10/Oct/2024 13:55:36 -0700", "bad time: expected '[day/Mon/year:hh:mm:ss zone]' time, found "
                                   "'[10/Oct/2024 13:55:36 -0700]'"),
    ("2024-10-10T13:55:36Z", "bad time: expected '[day/Mon/year:hh:mm:ss zone]' time, found "
                             "'[2024-10-10T13:55:36Z]'"),
    ("10/Oct/2024:13:55:36 PST", "bad time: expected '[day/Mon/year:hh:mm:ss zone]' time, found "
                                 "'[10/Oct/2024:13:55:36 PST]'"),
    ("", "bad time: expected '[day/Mon/year:hh:mm:ss zone]' time, found '[]'"),
    ("１0/Oct/2024:13:55:36 -0700", "bad time: expected '[day/Mon/year:hh:mm:ss zone]' time, found "
                                   "'[１0/Oct/2024:13:55:36 -0700]'"),  # a full-width digit
])
def test_bad_times_say_what_was_expected(stamp: str, reason: str) -> None:
    assert clf.parse_time(stamp) == reason
    assert bad(line(time=stamp)) == reason


def test_time_without_brackets_is_bad() -> None:
    assert bad('1.2.3.4 - - 10/Oct/2000:13:55:36 -0700 "GET / HTTP/1.0" 200 1') == (
        "bad time: expected '[day/Mon/year:hh:mm:ss zone]' time, found '10/Oct/2000:13:55:36'")


def test_unclosed_time_bracket_is_bad() -> None:
    assert bad('1.2.3.4 - - [10/Oct/2000:13:55:36 -0700 "GET / HTTP/1.0" 200 1') == (
        "bad time: expected '[day/Mon/year:hh:mm:ss zone]' time, found '[10/Oct/2000:13:55:36'")


def test_a_bad_time_shared_by_lines_is_reported_on_each() -> None:
    stamp = "10/Oct/2000:25:00:00 -0700"
    out = list(clf.parse([(1, line(time=stamp)), (2, line(time=stamp)), (3, line())], "a"))
    assert [type(p) for p in out] == [BadLine, BadLine, LogRecord]
    assert out[0].reason == out[1].reason


def test_the_time_cache_is_bounded_and_stays_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clf, "_CACHE_MAX", 2)
    stamps = [f"10/Oct/2000:13:55:{s:02d} -0700" for s in (1, 2, 3, 1, 4, 2)]
    out = list(clf.parse(enumerate((line(time=s) for s in stamps), 1), "a"))
    assert [r.time for r in out] == [T_EPOCH - 35 + d for d in (0, 1, 2, 0, 3, 1)]


# -- clients, proxies, vhosts ------------------------------------------------------------------
@pytest.mark.parametrize(("prefix", "client", "host"), [
    ("2001:db8::1 - -", "2001:db8::1", None),
    ("::1 - -", "::1", None),
    ("::ffff:192.0.2.1 - -", "::ffff:192.0.2.1", None),
    ("fe80::1%eth0 - -", "fe80::1%eth0", None),
    ("client-7.example.net - -", "client-7.example.net", None),
    ("- - -", None, None),
    ("127.0.0.1 ident frank", "127.0.0.1", None),
    # nginx with '$http_x_forwarded_for $remote_addr - $remote_user': the last address is the client
    ("10.0.0.1, 10.0.0.2 203.0.113.5 - -", "203.0.113.5", None),
    ("10.0.0.1,10.0.0.2 203.0.113.5 - -", "203.0.113.5", None),
    ("10.0.0.1 203.0.113.5 - -", "203.0.113.5", None),
    ("- 203.0.113.5 - -", "203.0.113.5", None),
    ('"10.0.0.1, 10.0.0.2" 203.0.113.5 - -', "203.0.113.5", None),
    ("unknown, 2001:db8::7 203.0.113.5 - -", "203.0.113.5", None),
    ("198.51.100.1:4711, 10.0.0.2 203.0.113.5 - -", "203.0.113.5", None),
    ("10.0.0.1, - - -", None, None),
    # Apache vhost_combined: '%v:%p %h %l %u ...'
    ("www.example.com:80 203.0.113.5 - -", "203.0.113.5", "www.example.com"),
    ("www.example.com:443 203.0.113.5 - -", "203.0.113.5", "www.example.com"),
    ("www.example.com:8080 203.0.113.5 - -", "203.0.113.5", "www.example.com:8080"),
    ("www.example.com 2001:db8::1 - -", "2001:db8::1", "www.example.com"),
    ("192.0.2.10:8443 203.0.113.5 - -", "203.0.113.5", "192.0.2.10:8443"),
    ("[2001:db8::10]:443 ::1 - -", "::1", "[2001:db8::10]"),
    ("api.example.com:80 10.0.0.1, 10.0.0.2 203.0.113.5 - -", "203.0.113.5", "api.example.com"),
])
def test_client_and_vhost(prefix: str, client: str | None, host: str | None) -> None:
    r = record(line(prefix))
    assert (r.client, r.host, r.time, r.target, r.status, r.bytes) == (client, host, T_EPOCH, "/apache_pb.gif",
                                                                       200, 2326)


def test_an_absolute_form_target_names_the_host_over_the_vhost() -> None:
    r = record(line("www.example.com:80 203.0.113.5 - -", request="GET http://api.example.com/x?y=1 HTTP/1.1"))
    assert (r.target, r.host) == ("/x?y=1", "api.example.com")


@pytest.mark.parametrize(("prefix", "reason"), [
    ("1.2.3.4 -", "bad client: expected 'client ident user' before the time, found 2 field(s) '1.2.3.4 -'"),
    ("1.2.3.4", "bad client: expected 'client ident user' before the time, found 1 field(s) '1.2.3.4'"),
    ("10.0.0.1, proxy.internal 203.0.113.5 - -",
     "bad client: 'proxy.internal' in the forwarded-for list is not an address"),
    ("www.example.com:80 not/a/host 203.0.113.5 - -",
     "bad client: 'not/a/host' in the forwarded-for list is not an address"),
    ("not/a/host 203.0.113.5 - -",
     "bad client: expected a virtual host or forwarded-for addresses before the client, found 'not/a/host'"),
    ('"" - -', "bad client: expected a client address or host name, found an empty field"),
])
def test_bad_client_fields(prefix: str, reason: str) -> None:
    assert bad(line(prefix)) == reason


def test_no_fields_before_the_time() -> None:
    assert bad('[10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1') == (
        "bad client: expected 'client ident user' before the time, found 0 field(s)")


# -- request lines ------------------------------------------------------------------------------
@pytest.mark.parametrize(("request_line", "method", "target", "host"), [
    ("GET /a.gif HTTP/1.0", "GET", "/a.gif", None),
    ("GET /a.gif HTTP/2.0", "GET", "/a.gif", None),
    ("GET /x", "GET", "/x", None),  # HTTP/0.9: no protocol
    ("get /x HTTP/1.1", "GET", "/x", None),
    ("Post /x HTTP/1.1", "POST", "/x", None),
    ("PROPFIND /dav/ HTTP/1.1", "PROPFIND", "/dav/", None),
    ("M-SEARCH * HTTP/1.1", None, None, None),
    ("GET index.html HTTP/1.0", "GET", "/index.html", None),
    ("GET index.html", "GET", "/index.html", None),
    ("GET ?q=1 HTTP/1.1", "GET", "/?q=1", None),
    ("GET / HTTP/1.1", "GET", "/", None),
    ("GET //double//slash HTTP/1.1", "GET", "//double//slash", None),
    ("GET /search?q=a+b&x=%20 HTTP/1.1", "GET", "/search?q=a+b&x=%20", None),
    ("GET http://example.com/path?x=1 HTTP/1.1", "GET", "/path?x=1", "example.com"),
    ("GET HTTP://Example.com:8080/p HTTP/1.1", "GET", "/p", "Example.com:8080"),
    ("GET https://user:pw@example.com HTTP/1.1", "GET", "/", "example.com"),
    ("GET http://example.com?x=1 HTTP/1.1", "GET", "/?x=1", "example.com"),
    ("GET /a b HTTP/1.1", "GET", "/a b", None),  # an unencoded space, as nginx logs it
    ("GET /x HTTP/1.1 ", "GET", "/x", None),
])
def test_request_lines(request_line: str, method: str | None, target: str | None, host: str | None) -> None:
    out = one(line(request=request_line))
    if method is None:
        assert out == Skipped(clf.ASTERISK_REQUEST, "access.log:7")
        return
    assert type(out) is LogRecord
    assert (out.method, out.target, out.host) == (method, target, host)


@pytest.mark.parametrize(("request_line", "reason"), [
    ("-", "empty request line"),
    ("", "empty request line"),
    ("   ", "empty request line"),
    ("GET", "request line is not 'METHOD target [HTTP/x.y]'"),
    ("GET HTTP/1.1", "request line is not 'METHOD target [HTTP/x.y]'"),
    ("\\x16\\x03\\x01\\x00\\xca\\x01\\x00\\x00\\xc6\\x03\\x03", "request line is not 'METHOD target [HTTP/x.y]'"),
    ("G(ET / HTTP/1.1", "request line is not 'METHOD target [HTTP/x.y]'"),
    ("CONNECT example.com:443 HTTP/1.1", "CONNECT request (a proxy tunnel)"),
    ("OPTIONS * HTTP/1.1", "'*' request target (server-wide OPTIONS)"),
])
def test_request_lines_with_nothing_to_replay_are_skipped(request_line: str, reason: str) -> None:
    assert one(line(request=request_line)) == Skipped(reason, "access.log:7")
    assert one(line(request=request_line, tail='400 0 "-" "-" 0.001')) == Skipped(reason, "access.log:7")


def test_a_skipped_request_line_still_needs_a_good_time() -> None:
    assert bad(line(request="-", time="99/Oct/2000:13:55:36 -0700")).startswith("bad time: day 99")


# -- status, bytes, referer, user agent --------------------------------------------------------
@pytest.mark.parametrize(("tail", "status", "size"), [
    ("200 2326", 200, 2326),
    ("304 -", 304, None),
    ("- -", None, None),
    ("- 0", None, 0),
    ("499 0", 499, 0),
    ("200 0", 200, 0),
    ("200 123456789012", 200, 123456789012),
    ("0 0", 0, 0),
])
def test_status_and_bytes(tail: str, status: int | None, size: int | None) -> None:
    r = record(line(tail=tail))
    assert (r.status, r.bytes) == (status, size)


@pytest.mark.parametrize(("tail", "reason"), [
    ("abc 1", "bad status: 'abc' is not a number (expected a 3-digit HTTP status or '-')"),
    ("2000 1", "bad status: '2000' is not a number (expected a 3-digit HTTP status or '-')"),
    ("-1 1", "bad status: '-1' is not a number (expected a 3-digit HTTP status or '-')"),
    ('"200" 1', "bad status: '\"200\"' is not a number (expected a 3-digit HTTP status or '-')"),
    ("２００ 1", "bad status: '２００' is not a number (expected a 3-digit HTTP status or '-')"),
    ("200 12kb", "bad bytes: '12kb' is not a number (expected the response size in bytes or '-')"),
    ("200 1.5", "bad bytes: '1.5' is not a number (expected the response size in bytes or '-')"),
    ("200 2326abc", "bad bytes: '2326abc' is not a number (expected the response size in bytes or '-')"),
    ("200", "bad bytes: expected the response size after the status, found end of line"),
    ("", "bad status: expected a status after the request line, found end of line"),
])
def test_bad_status_and_bytes(tail: str, reason: str) -> None:
    assert bad(line(tail=tail).rstrip()) == reason


def test_request_line_must_be_quoted() -> None:
    assert bad("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] GET / HTTP/1.0 200 1") == (
        "bad request: expected a quoted request line after the time, found 'GET'")
    assert bad("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700]") == (
        "bad request: expected a quoted request line after the time, found end of line")


@pytest.mark.parametrize(("fields", "headers"), [
    ('"-" "-"', ()),
    ('"" ""', ()),
    ('"http://a.example/" "-"', (("Referer", "http://a.example/"),)),
    ('"-" "curl/8"', (("User-Agent", "curl/8"),)),
    ('"-" "a b  c"', (("User-Agent", "a b  c"),)),
])
def test_referer_and_user_agent_become_request_headers(fields: str, headers: tuple) -> None:
    assert record(line(tail=f"200 1 {fields}")).headers == headers


# -- escapes inside quoted fields --------------------------------------------------------------
@pytest.mark.parametrize(("written", "meant"), [
    (r'a \"quoted\" word', 'a "quoted" word'),
    (r"back\\slash", "back\\slash"),
    (r"hex \x22quote\x22", 'hex "quote"'),
    (r"caf\xc3\xa9", "café"),
    (r"caf\xC3\xA9", "café"),
    (r"tab\there\nnl", "tab\there\nnl"),
    (r"bad utf-8 \xff end", "bad utf-8 \\xff end"),
    (r"unknown \q escape", "unknown \\q escape"),
    (r"\\x41 is not an escape", "\\x41 is not an escape"),
    ("raw é", "raw é"),
])
def test_escapes_in_referer_and_user_agent(written: str, meant: str) -> None:
    r = record(line(tail=f'200 1 "{written}" "{written}"'))
    assert r.headers == (("Referer", meant), ("User-Agent", meant))


@pytest.mark.parametrize(("written", "target"), [
    (r"/say\"hi\"", '/say"hi"'),
    (r"/back\\slash", "/back\\slash"),
    (r"/q\x22", '/q"'),
    (r"/caf\xc3\xa9", "/café"),
])
def test_escapes_in_the_request_line(written: str, target: str) -> None:
    assert record(line(request=f"GET {written} HTTP/1.1")).target == target
    assert record(line(request=f"GET {written} HTTP/1.1", tail='200 1 "-" "x" 0.5')).target == target


def test_raw_quotes_inside_a_field_stay_in_it() -> None:
    # Apache before 2.0.46 did not escape quotes; a quote ends a field only before a space or the end
    r = record(line(tail='200 1 "-" "Mozilla/4.0 (compatible; "MSIE")"'))
    assert r.headers == (("User-Agent", 'Mozilla/4.0 (compatible; "MSIE")'),)


@pytest.mark.parametrize("text", [
    line(tail='200 1 "-" "Mozilla/5.0'),
    line(tail='200 1 "-" "ends with an escaped quote\\"'),
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0 200 1',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "',
])
def test_unterminated_quoted_field(text: str) -> None:
    assert bad(text).startswith("unterminated quoted field: the '\"' at column ")


def test_unterminated_quote_names_its_column() -> None:
    assert bad('1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0 200 1') == (
        "unterminated quoted field: the '\"' at column 42 is never closed "
        "(expected '\"' before a space or the end of the line)")


# -- request time and trailing fields ----------------------------------------------------------
@pytest.mark.parametrize(("tail", "options", "duration"), [
    ('200 1 "-" "x" 0.123', {}, 123.0),  # nginx $request_time, seconds
    ('200 1 "-" "x" 12.5', {}, 12500.0),
    ('200 1 "-" "x" 0.000', {}, 0.0),
    ('200 1 "-" "x" 1234', {}, 1.234),  # Apache %D, microseconds
    ('200 1 "-" "x" 0', {}, 0.0),
    ("200 1 0.250", {}, 250.0),  # right after the bytes, in a common-format line
    ("200 1 250000", {}, 250.0),
    ('200 1 "-" "x" -', {}, None),
    ('200 1 "-" "x" 2', {"request_time_unit": "s"}, 2000.0),  # Apache %T
    ('200 1 "-" "x" 0.5', {"request_time_unit": "s"}, 500.0),
    ('200 1 "-" "x" 15', {"request_time_unit": "ms"}, 15.0),
    ('200 1 "-" "x" 1.5', {"request_time_unit": "ms"}, 1.5),
    ('200 1 "-" "x" 1500', {"request_time_unit": "us"}, 1.5),
    ('200 1 "-" "x" 1500', {"request_time_unit": "auto"}, 1.5),
])
def test_request_time(tail: str, options: dict, duration: float | None) -> None:
    assert record(line(tail=tail), **options).duration_ms == duration


@pytest.mark.parametrize("tail", [
    '200 1 "-" "x" "198.51.100.7"',  # nginx main: "$http_x_forwarded_for"
    '200 1 "-" "x" upstream=10.0.0.9:8080',
    '200 1 "-" "x" 0.123abc',
    '200 1 "-" "x" 0.1.2',
    '200 1 "only-one-quoted" 0.5',
    "200 1 some extra words",
    '200 1 "-" "x" "y" 0.5',
])
def test_trailing_fields_that_are_not_a_request_time_are_ignored(tail: str) -> None:
    r = record(line(tail=tail))
    assert (r.status, r.bytes, r.duration_ms) == (200, 1, None)


def test_fields_after_the_request_time_are_ignored() -> None:
    r = record(line(tail='200 1 "-" "x" 0.123 0.120 "upstream" - extra'))
    assert (r.duration_ms, r.headers) == (123.0, (("User-Agent", "x"),))


@pytest.mark.parametrize("options", [{"request_time_unit": "minutes"}, {"request_time_unit": "S"}])
def test_an_unknown_request_time_unit_is_refused_at_once(options: dict) -> None:
    with pytest.raises(ValueError, match="request_time_unit must be one of auto, s, ms, us"):
        clf.parse([], "a", **options)


def test_an_unknown_option_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unknown option.*time_taken_unit.*known: request_time_unit"):
        clf.parse([], "a", time_taken_unit="ms")


# -- whitespace and other real-file oddities ----------------------------------------------------
@pytest.mark.parametrize("text", ["", " ", "\t", "   \t  ", "\ufeff"])
def test_empty_lines_are_bad(text: str) -> None:
    assert bad(text) == "line is empty"


def test_a_byte_order_mark_before_the_first_line_is_ignored() -> None:
    r = record("\ufeff" + line())
    assert (r.time, r.client) == (T_EPOCH, "127.0.0.1")


@pytest.mark.parametrize("text", [
    line().replace(" ", "  "),
    line().replace(" [", "\t[").replace('] "', ']\t"'),
    "  " + line() + "  ",
    line() + "\r",
])
def test_extra_whitespace_between_fields(text: str) -> None:
    r = record(text)
    assert (r.time, r.method, r.target, r.status, r.bytes, r.client) == (
        T_EPOCH, "GET", "/apache_pb.gif", 200, 2326, "127.0.0.1")


@pytest.mark.parametrize("text", ["hello", "hello world", "#Fields: date time", "{\"time\": 1}",
                                  "1.2.3.4 - - x y"])
def test_lines_of_other_formats_are_bad(text: str) -> None:
    reason = bad(text)
    assert reason.startswith(("too few fields: expected 'client ident user [day/Mon/year:hh:mm:ss zone]",
                              "bad time: expected '[day/Mon/year:hh:mm:ss zone]' time"))


def test_a_long_bad_line_is_cut_in_the_report() -> None:
    text = line(tail="abc 1 " + "x" * 500)
    out = one(text)
    assert type(out) is BadLine and len(out.text) == 200 and text.startswith(out.text)


def test_a_w3c_file_is_all_bad_lines() -> None:
    out = list(clf.parse(enumerate(["#Software: Microsoft Internet Information Services 10.0",
                                    "2024-03-04 00:00:01 10.0.0.5 GET /claims - 443 - 203.0.113.5 - - 200 0 0 15"], 1),
                         "u_ex240304.log"))
    assert all(type(p) is BadLine for p in out)


# -- sniff --------------------------------------------------------------------------------------
def test_sniff_accepts_common_and_combined_heads() -> None:
    assert clf.sniff([line(), line(tail=f'200 1 "-" "{UA}"'), ""])
    assert clf.sniff([line(request="-")])  # a skipped line is still a CLF line


def test_sniff_wants_most_non_empty_lines_to_parse() -> None:
    assert clf.sniff([line(), line(), "garbage"])
    assert not clf.sniff([line(), "garbage", "more garbage"])
    assert not clf.sniff([line(), "garbage"])  # half is not most
    assert clf.sniff(["", "  ", line()])  # blank lines do not count


@pytest.mark.parametrize("head", [
    [],
    ["", " "],
    ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
     "#Fields: date time cs-method cs-uri-stem", "2024-03-04 00:00:01 GET /"],
    ['{"log": {"version": "1.2", "entries": []}}'],
    ['{"time": "2024-03-04T00:00:00Z", "method": "GET"}'],
])
def test_sniff_refuses_other_heads(head: list[str]) -> None:
    assert not clf.sniff(head)


# -- properties ---------------------------------------------------------------------------------
def _escaped(text: str) -> str:
    """How Apache and nginx write a quoted field: quote and backslash escaped, other bytes that
    are not printable ASCII as \\xHH."""
    out = []
    for byte in text.encode("utf-8"):
        c = chr(byte)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= byte < 127:
            out.append(c)
        else:
            out.append(f"\\x{byte:02X}")
    return "".join(out)


def _stamp(epoch: int, offset_min: int) -> str:
    local = datetime.fromtimestamp(epoch, timezone(timedelta(minutes=offset_min)))
    sign = "-" if offset_min < 0 else "+"
    zone = f"{sign}{abs(offset_min) // 60:02d}{abs(offset_min) % 60:02d}"
    return f"{local.day:02d}/{clf._MONTH_NAMES[local.month - 1]}/{local.year:04d}:{local:%H:%M:%S} {zone}"


clients = st.one_of(st.none(), st.ip_addresses().map(str),
                    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}", fullmatch=True))
headers_text = st.text(min_size=1, max_size=40).filter(lambda s: s != "-")
targets = st.text(st.characters(categories=("L", "N", "P", "S")), max_size=40).map(lambda s: "/" + s)
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "M-SEARCH"])


@st.composite
def combined_lines(draw: st.DrawFn) -> tuple[str, LogRecord]:
    epoch = draw(st.integers(0, 4_102_444_799))
    offset = draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    method, target = draw(methods), draw(targets)
    status = draw(st.one_of(st.none(), st.integers(100, 599)))
    size = draw(st.one_of(st.none(), st.integers(0, 10**12)))
    client = draw(clients)
    referer = draw(st.one_of(st.none(), headers_text))
    agent = draw(st.one_of(st.none(), headers_text))
    took_ms = draw(st.one_of(st.none(), st.integers(0, 10**7)))
    protocol = draw(st.sampled_from([" HTTP/1.0", " HTTP/1.1", " HTTP/2.0", ""]))
    text = (f'{client or "-"} - - [{_stamp(epoch, offset)}] "{method} {_escaped(target)}{protocol}" '
            f'{"-" if status is None else status} {"-" if size is None else size} '
            f'"{_escaped(referer or "-")}" "{_escaped(agent or "-")}"'
            + ("" if took_ms is None else f" {took_ms // 1000}.{took_ms % 1000:03d}"))
    headers = tuple((name, value) for name, value in (("Referer", referer), ("User-Agent", agent)) if value)
    return text, LogRecord(float(epoch), method, target, "gen.log:1", status,
                           None if took_ms is None else float(took_ms), size, client, None, headers)


@settings(max_examples=100, deadline=None)
@given(combined_lines())
@example(('127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "-" "-"',
          LogRecord(T_EPOCH, "GET", "/apache_pb.gif", "gen.log:1", 200, None, 2326, "127.0.0.1")))
def test_formatted_records_parse_back_equal(case: tuple[str, LogRecord]) -> None:
    text, expected = case
    assert list(clf.parse([(1, text)], "gen.log")) == [expected]


@settings(max_examples=60, deadline=None)
@given(combined_lines())
def test_variants_of_a_line_parse_to_the_same_record(case: tuple[str, LogRecord]) -> None:
    text, expected = case
    variants = [
        "- " + text,  # an empty X-Forwarded-For before the client
        "10.9.8.7, 10.9.8.6 " + text,
        text.replace('] "', ']\t"', 1),
        text + ' "extra" trailing fields',
    ]
    for variant in variants:
        assert list(clf.parse([(1, variant)], "gen.log")) == [expected], variant


@st.composite
def mangled_lines(draw: st.DrawFn) -> str:
    text, _ = draw(combined_lines())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 5))
        text = text[:at] + draw(st.sampled_from(['"', "\\", "[", "]", " ", "", "-", "x", "\t", ","])) + text[at + cut:]
    return text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=80), mangled_lines()), max_size=5))
def test_any_text_gives_one_result_per_line_and_never_raises(texts: list[str]) -> None:
    out = list(clf.parse(enumerate(texts, 1), "fuzz.log"))
    assert [p.source for p in out] == [f"fuzz.log:{n}" for n in range(1, len(texts) + 1)]
    for item, text in zip(out, texts, strict=True):
        assert type(item) in (LogRecord, Skipped, BadLine)
        if type(item) is LogRecord:
            assert item.target.startswith("/") and item.method == item.method.upper()
        if type(item) is BadLine:
            assert item.text == text[:200] and ": " in item.reason or item.reason == "line is empty"


def test_year_zero_is_a_bad_line_not_a_crash() -> None:
    from esr.replay.formats import clf, w3c

    out = list(clf.parse([(1, '1.2.3.4 - - [10/Oct/0000:13:55:36 -0700] "GET / HTTP/1.0" 200 1')], "f"))
    assert len(out) == 1 and out[0].reason.startswith("bad time: year 0000 is out of range")
    out = list(w3c.parse([(1, "#Fields: date time cs-method cs-uri-stem sc-status"),
                          (2, "0000-03-04 09:00:00 GET / 200")], "f"))
    assert [type(o).__name__ for o in out] == ["Skipped", "BadLine"]
    assert out[1].reason.startswith("bad date: year 0000 is out of range")
