"""esr.replay.formats.w3c: W3C extended logs as IIS writes them, read against their latest #Fields,
with bad rows reported with what was expected instead of raised."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esr.replay.formats import w3c
from esr.replay.record import BadLine, LogRecord, Skipped

MIDNIGHT = 1709510400.0  # 2024-03-04 00:00:00 UTC
IIS_FIELDS = ("#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
              "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken")
IIS_HEADER = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
              "#Date: 2024-03-04 00:00:00", IIS_FIELDS]
CHROME = ("Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64)+AppleWebKit/537.36+(KHTML,+like+Gecko)+"
          "Chrome/122.0.0.0+Safari/537.36")


def read(lines: list[str], **options: object) -> list[LogRecord | Skipped | BadLine]:
    return list(w3c.parse(enumerate(lines, 1), "u_ex240304.log", **options))


def last(lines: list[str], **options: object) -> LogRecord | Skipped | BadLine:
    return read(lines, **options)[-1]


def row(lines: list[str], **options: object) -> LogRecord:
    out = last(lines, **options)
    assert type(out) is LogRecord, out
    return out


def bad(lines: list[str]) -> str:
    out = last(lines)
    assert type(out) is BadLine, out
    assert out.source == f"u_ex240304.log:{len(lines)}"
    assert out.text == lines[-1][:200]
    return out.reason


def iis(*, time: str = "2024-03-04 00:00:01", method: str = "GET", stem: str = "/claims", query: str = "id=3",
        client: str = "203.0.113.5", agent: str = CHROME, referer: str = "https://www.example.com/",
        status: str = "200", taken: str = "15") -> str:
    return (f"{time} 10.0.0.5 {method} {stem} {query} 443 - {client} {agent} {referer} {status} 0 0 {taken}")


# -- the IIS default layout ---------------------------------------------------------------------
def test_an_iis_log_from_its_directives_to_its_rows() -> None:
    out = read(IIS_HEADER + [iis(), iis(time="2024-03-04 13:55:36", method="POST", query="-", status="500",
                                     taken="1234", agent="-", referer="-")])
    assert out[:4] == [Skipped("W3C directive", f"u_ex240304.log:{n}") for n in range(1, 5)]
    assert out[4] == LogRecord(
        time=MIDNIGHT + 1, method="GET", target="/claims?id=3", source="u_ex240304.log:5", status=200,
        duration_ms=15.0, bytes=None, client="203.0.113.5", host=None,
        headers=(("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                                "Chrome/122.0.0.0 Safari/537.36"),
                 ("Referer", "https://www.example.com/")))
    assert out[5] == LogRecord(MIDNIGHT + 13 * 3600 + 55 * 60 + 36, "POST", "/claims", "u_ex240304.log:6", 500,
                               1234.0, None, "203.0.113.5", None, ())


def test_times_are_utc() -> None:
    r = row(IIS_HEADER + [iis(time="2000-10-10 20:55:36")])
    assert r.time == 971211336.0 == datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("stamp", "epoch"), [
    ("2024-03-04 00:00:00", MIDNIGHT),
    ("2024-03-04 23:59:59", MIDNIGHT + 86399),
    ("2024-02-29 12:00:00", 1709208000.0),
    ("1970-01-01 00:00:00", 0.0),
    ("2024-03-04 00:00:01.5", MIDNIGHT + 1.5),
    ("2024-03-04 00:00:01.", MIDNIGHT + 1),
    ("2024-03-04 01:02", MIDNIGHT + 3720),  # the W3C draft allows hh:mm
    ("2024-3-4 1:02:03", MIDNIGHT + 3723),
])
def test_date_and_time(stamp: str, epoch: float) -> None:
    assert row(IIS_HEADER + [iis(time=stamp)]).time == epoch


@pytest.mark.parametrize("directive", [
    "#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0", "#Date: 2024-03-04 00:00:00",
    IIS_FIELDS, "#Remark: rotated", "#Start-Date: 2024-03-04 00:00:00", "#End-Date: 2024-03-05 00:00:00", "#",
    "#Software:", "#fields: date time cs-method cs-uri-stem",
])
def test_directives_are_skipped(directive: str) -> None:
    assert read([directive]) == [Skipped("W3C directive", "u_ex240304.log:1")]


# -- fields ---------------------------------------------------------------------------------------
def test_fields_that_change_mid_file_apply_to_the_rows_after_them() -> None:
    out = read(IIS_HEADER + [
        iis(),
        "#Fields: date time cs-method cs-uri-stem sc-status sc-bytes cs-host c-ip time-taken",
        "2024-03-04 00:00:02 GET /a 404 512 claims.example.gov 2001:db8::1 7",
        "2024-03-04 00:00:03 GET /b 200",
    ])
    assert out[4].target == "/claims?id=3"
    assert out[5] == Skipped("W3C directive", "u_ex240304.log:6")
    assert out[6] == LogRecord(MIDNIGHT + 2, "GET", "/a", "u_ex240304.log:7", 404, 7.0, 512, "2001:db8::1",
                               "claims.example.gov", ())
    assert out[7] == BadLine("wrong field count: expected 9 fields from the #Fields on line 6, found 5 "
                             "(no earlier #Fields has 5 either: line 4 has 15)",
                             "u_ex240304.log:8", "2024-03-04 00:00:03 GET /b 200")


def test_a_repeated_header_block_after_a_restart() -> None:
    out = read(IIS_HEADER + [iis()] + ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
                                        "#Date: 2024-03-04 10:00:00", IIS_FIELDS, iis(time="2024-03-04 10:00:05")])
    assert [type(p).__name__ for p in out] == ["Skipped"] * 4 + ["LogRecord"] + ["Skipped"] * 4 + ["LogRecord"]
    assert (out[4].time, out[9].time) == (MIDNIGHT + 1, MIDNIGHT + 36005)
    assert out[9].source == "u_ex240304.log:10"


@pytest.mark.parametrize(("stem", "query", "target"), [
    ("/claims", "id=3", "/claims?id=3"),
    ("/claims", "-", "/claims"),
    ("/claims", "a=1&b=x+y", "/claims?a=1&b=x+y"),
    ("/", "-", "/"),
    ("claims", "-", "/claims"),
    ("/a+b", "-", "/a+b"),
    ("/caf%C3%A9", "-", "/caf%C3%A9"),
    ("http://claims.example.gov/x", "q=1", "/x?q=1"),
])
def test_target_is_the_stem_joined_to_the_query(stem: str, query: str, target: str) -> None:
    assert row(IIS_HEADER + [iis(stem=stem, query=query)]).target == target


def test_an_absolute_stem_gives_the_host() -> None:
    assert row(IIS_HEADER + [iis(stem="http://claims.example.gov/x")]).host == "claims.example.gov"


def test_cs_uri_instead_of_stem_and_query() -> None:
    r = row(["#Fields: date time cs-method cs-uri sc-status", "2024-03-04 00:00:01 GET /claims?id=3 200"])
    assert (r.target, r.status) == ("/claims?id=3", 200)


@pytest.mark.parametrize(("method", "expected"), [("GET", "GET"), ("get", "GET"), ("Propfind", "PROPFIND")])
def test_methods_are_upper_cased(method: str, expected: str) -> None:
    assert row(IIS_HEADER + [iis(method=method)]).method == expected


@pytest.mark.parametrize(("method", "stem", "reason"), [
    ("-", "/claims", "empty request line"),
    ("GET", "-", "empty request line"),
    ("CONNECT", "claims.example.gov:443", "CONNECT request (a proxy tunnel)"),
    ("OPTIONS", "*", "'*' request target (server-wide OPTIONS)"),
])
def test_rows_with_nothing_to_replay_are_skipped(method: str, stem: str, reason: str) -> None:
    assert last(IIS_HEADER + [iis(method=method, stem=stem, query="-")]) == Skipped(reason, "u_ex240304.log:5")


@pytest.mark.parametrize(("fields", "values", "host"), [
    ("cs-host", "claims.example.gov", "claims.example.gov"),
    ("cs(Host)", "claims.example.gov:8443", "claims.example.gov:8443"),
    ("cs(host)", "-", None),
])
def test_host(fields: str, values: str, host: str | None) -> None:
    r = row([f"#Fields: date time cs-method cs-uri-stem {fields}", f"2024-03-04 00:00:01 GET / {values}"])
    assert (r.host, r.headers) == (host, ())


def test_request_headers_from_cs_fields() -> None:
    r = row(["#Fields: date time cs-method cs-uri-stem cs(User-Agent) cs(Referer) cs(Cookie) cs(X-Request-Id)",
             "2024-03-04 00:00:01 GET / curl/8.4.0 https://a.example/?q=a+b "
             "ASP.NET_SessionId=abc;+theme=dark 7f3a"])
    assert r.headers == (("User-Agent", "curl/8.4.0"), ("Referer", "https://a.example/?q=a+b"),
                         ("Cookie", "ASP.NET_SessionId=abc; theme=dark"), ("X-Request-Id", "7f3a"))


@pytest.mark.parametrize(("written", "agent"), [
    ("Mozilla/5.0+(X11;+Linux+x86_64)", "Mozilla/5.0 (X11; Linux x86_64)"),
    ('"Mozilla/5.0 (X11; Linux x86_64)"', "Mozilla/5.0 (X11; Linux x86_64)"),
    ('"a+b stays"', "a+b stays"),  # quoted: taken as written
    ('"say ""hi"""', 'say "hi"'),
    ('"-"', None),  # IIS Advanced Logging quotes the dash too
    ('""', None),
    ("-", None),
])
def test_user_agent_values(written: str, agent: str | None) -> None:
    r = row(IIS_HEADER + [iis(agent=written)])
    assert dict(r.headers).get("User-Agent") == agent
    assert (r.status, r.duration_ms, r.client) == (200, 15.0, "203.0.113.5")


def test_quoted_values_anywhere_in_the_row() -> None:
    r = row(["#Fields: date time c-ip cs-method cs-uri-stem cs(User-Agent) sc-status",
             '2024-03-04 00:00:01 "203.0.113.5" GET "/a b" "Mozilla/5.0 (X11)" 200'])
    assert (r.client, r.target, r.headers, r.status) == ("203.0.113.5", "/a b",
                                                         (("User-Agent", "Mozilla/5.0 (X11)"),), 200)


def test_tabs_separate_fields_too() -> None:
    r = row(["#Fields:\tdate\ttime\tcs-method\tcs-uri-stem\tsc-status", "2024-03-04\t00:00:01\tGET\t/x\t204"])
    assert (r.time, r.target, r.status) == (MIDNIGHT + 1, "/x", 204)


def test_dash_is_empty_for_every_field() -> None:
    r = row(["#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query sc-status sc-bytes time-taken cs-host "
             "cs(User-Agent)", "2024-03-04 00:00:01 - GET /x - - - - - -"])
    assert r == LogRecord(MIDNIGHT + 1, "GET", "/x", "u_ex240304.log:2")


def test_status_bytes_and_time_taken() -> None:
    r = row(["#Fields: date time cs-method cs-uri-stem sc-status sc-bytes cs-bytes time-taken",
             "2024-03-04 00:00:01 GET /x 304 0 1200 3"])
    assert (r.status, r.bytes, r.duration_ms) == (304, 0, 3.0)


@pytest.mark.parametrize(("taken", "options", "duration"), [
    ("15", {}, 15.0),  # IIS: milliseconds
    ("0", {}, 0.0),
    ("0.015", {}, 15.0),  # the W3C draft: seconds
    ("2.5", {"time_taken_unit": "auto"}, 2500.0),
    ("2", {"time_taken_unit": "s"}, 2000.0),
    ("2.5", {"time_taken_unit": "ms"}, 2.5),
    ("-", {}, None),
])
def test_time_taken_unit(taken: str, options: dict, duration: float | None) -> None:
    assert row(IIS_HEADER + [iis(taken=taken)], **options).duration_ms == duration


def test_unknown_options_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="time_taken_unit must be one of auto, ms, s, not 'us'"):
        w3c.parse([], "a", time_taken_unit="us")
    with pytest.raises(ValueError, match="unknown option.*request_time_unit.*known: time_taken_unit"):
        w3c.parse([], "a", request_time_unit="s")


# -- rows with a time but no date ---------------------------------------------------------------
TIME_ONLY = "#Fields: time c-ip cs-method cs-uri-stem sc-status"


def test_rows_without_a_date_take_it_from_the_latest_date_directive() -> None:
    out = read(["#Date: 2024-03-04 00:00:00", TIME_ONLY, "00:00:01 ::1 GET /a 200",
                "#Date: 2024-03-10 08:00:00", "08:00:02 ::1 GET /b 200"])
    assert (out[2].time, out[4].time) == (MIDNIGHT + 1, MIDNIGHT + 6 * 86400 + 8 * 3600 + 2)


def test_rows_without_a_date_move_to_the_next_day_past_midnight() -> None:
    out = read(["#Date: 2024-03-04 23:50:00", TIME_ONLY, "23:59:59 ::1 GET /a 200", "00:00:01 ::1 GET /b 200",
                "00:00:00 ::1 GET /c 200", "23:00:00 ::1 GET /d 200", "01:00:00 ::1 GET /e 200"])
    assert [p.time for p in out[2:]] == [MIDNIGHT + 86399, MIDNIGHT + 86401, MIDNIGHT + 86400,
                                         MIDNIGHT + 86400 + 82800, MIDNIGHT + 2 * 86400 + 3600]


def test_a_row_without_a_date_and_no_date_directive_is_bad() -> None:
    assert bad([TIME_ONLY, "00:00:01 ::1 GET /a 200"]) == (
        "no date: the row has a time but the #Fields list no date field and no #Date directive came before it")


# -- bad lines ------------------------------------------------------------------------------------
def test_a_row_before_any_fields_directive_is_bad() -> None:
    reason = bad(["#Software: Microsoft Internet Information Services 10.0", iis()])
    assert reason == ("no #Fields: expected a #Fields directive before the first data row (or --fields, e.g. "
                      '--fields "date time cs-method cs-uri-stem sc-status")')


def test_wrong_number_of_fields_names_the_fields_line() -> None:
    assert bad(IIS_HEADER + [iis() + " extra"]) == (
        "wrong field count: expected 15 fields from the #Fields on line 4, found 16")
    assert bad(IIS_HEADER + ["2024-03-04 00:00:01 10.0.0.5 GET /"]) == (
        "wrong field count: expected 15 fields from the #Fields on line 4, found 5")


@pytest.mark.parametrize(("stamp", "reason"), [
    ("2024-13-01 00:00:00", "bad date: month 13 is out of range (01-12) in '2024-13-01'"),
    ("2024-02-30 00:00:00", "bad date: day 30 is out of range for 2024-02 in '2024-02-30'"),
    ("2023-02-29 00:00:00", "bad date: day 29 is out of range for 2023-02 in '2023-02-29'"),
    ("04/03/2024 00:00:00", "bad date: '04/03/2024' is not a yyyy-mm-dd date"),
    ("yesterday 00:00:00", "bad date: 'yesterday' is not a yyyy-mm-dd date"),
    ("2024-03-04 25:00:00", "bad time: '25:00:00' is not a time of day (00:00:00 to 23:59:59)"),
    ("2024-03-04 12:60:00", "bad time: '12:60:00' is not a time of day (00:00:00 to 23:59:59)"),
    ("2024-03-04 noon", "bad time: 'noon' is not a hh:mm:ss time"),
    ("2024-03-04 12:00:00Z", "bad time: '12:00:00Z' is not a hh:mm:ss time"),
    ("2024-03-04 -", "bad time: '-' is not a hh:mm:ss time"),
])
def test_bad_dates_and_times(stamp: str, reason: str) -> None:
    assert bad(IIS_HEADER + [iis(time=stamp)]) == reason


@pytest.mark.parametrize(("kw", "reason"), [
    ({"status": "abc"}, "bad sc-status: 'abc' is not a number"),
    ({"status": "2000"}, "bad sc-status: '2000' is not a number"),
    ({"status": "-1"}, "bad sc-status: '-1' is not a number"),
    ({"taken": "fast"}, "bad time-taken: 'fast' is not a number (expected milliseconds or '-')"),
    ({"taken": "-5"}, "bad time-taken: '-5' is not a number (expected milliseconds or '-')"),
])
def test_bad_numbers(kw: dict, reason: str) -> None:
    assert bad(IIS_HEADER + [iis(**kw)]) == reason


def test_bad_bytes() -> None:
    assert bad(["#Fields: date time cs-method cs-uri-stem sc-bytes", "2024-03-04 00:00:01 GET / 12kb"]) == (
        "bad sc-bytes: '12kb' is not a number")


def test_unterminated_quoted_field() -> None:
    assert bad(IIS_HEADER + [iis(agent='"Mozilla/5.0 (X11;')]) == (
        "unterminated quoted field: the '\"' at column 65 is never closed (expected a closing '\"')")


@pytest.mark.parametrize("text", ["#Date: yesterday", "#Date: 2024-03-04", "#Date: 2024-02-30 00:00:00",
                                  "#Date: 2024-03-04 25:00:00"])
def test_a_bad_date_directive(text: str) -> None:
    assert bad([text]) == ("bad #Date: expected a date and a time such as '#Date: 2025-03-14 00:00:00' "
                           f"(or 2025-03-14T00:00:00Z, 14-Mar-2025 00:00:00, 3/14/2025 0:00:00), found {text!r}")


def test_a_bad_date_directive_keeps_the_previous_date() -> None:
    out = read(["#Date: 2024-03-04 00:00:00", "#Date: garbage", TIME_ONLY, "00:00:01 ::1 GET /a 200"])
    assert out[3].time == MIDNIGHT + 1


def test_an_empty_fields_directive_is_bad_and_keeps_the_previous_fields() -> None:
    out = read(IIS_HEADER + ["#Fields:", iis()])
    assert out[4] == BadLine("bad #Fields: the directive lists no fields (expected e.g. "
                             "'#Fields: date time cs-method cs-uri-stem sc-status')", "u_ex240304.log:5", "#Fields:")
    assert type(out[5]) is LogRecord


@pytest.mark.parametrize(("fields", "missing"), [
    ("date time cs-uri-stem sc-status", "cs-method"),
    ("date time cs-method sc-status", "cs-uri-stem or cs-uri"),
    ("date cs-method cs-uri-stem sc-status", "time"),
    ("date sc-status", "time and no cs-method and no cs-uri-stem or cs-uri"),
])
def test_fields_without_what_a_request_needs(fields: str, missing: str) -> None:
    values = " ".join("x" for _ in fields.split())
    assert bad([f"#Fields: {fields}", values]) == f"unusable #Fields: the #Fields on line 1 lists no {missing}"


@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_blank_lines_are_skipped(text: str) -> None:
    assert last(IIS_HEADER + [text]) == Skipped("blank line", "u_ex240304.log:5")


def test_a_byte_order_mark_before_the_first_directive() -> None:
    out = read(["\ufeff" + IIS_HEADER[0]] + IIS_HEADER[1:] + [iis()])
    assert out[0] == Skipped("W3C directive", "u_ex240304.log:1")
    assert type(out[4]) is LogRecord


def test_a_long_bad_line_is_cut_in_the_report() -> None:
    text = "x " * 300
    out = last(IIS_HEADER + [text])
    assert type(out) is BadLine and out.text == text[:200]


# -- sniff ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", [
    IIS_HEADER,
    ["#Software: Microsoft Internet Information Services 10.0"],
    ["#Version: 1.0"],
    ["\ufeff#Fields: date time cs-method cs-uri-stem"],
    ["", "#Fields: time cs-method cs-uri-stem"],
    ["#FIELDS: time cs-method cs-uri-stem"],
])
def test_sniff_accepts_w3c_heads(head: list[str]) -> None:
    assert w3c.sniff(head)


@pytest.mark.parametrize("head", [
    [],
    ['127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'],
    ["# a comment", "#Date: 2024-03-04 00:00:00"],
    ["2024-03-04 00:00:01 GET / 200"],
    ['{"log": {"entries": []}}'],
])
def test_sniff_refuses_other_heads(head: list[str]) -> None:
    assert not w3c.sniff(head)


# -- properties -----------------------------------------------------------------------------------
FIELDS = ["date", "time", "c-ip", "cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "sc-bytes",
          "time-taken", "cs-host", "cs(User-Agent)", "s-port"]
tokens = st.text(st.characters(categories=("L", "N", "P", "S"), exclude_characters='"+'), min_size=1,
                 max_size=20).filter(lambda s: s != "-")


@st.composite
def rows(draw: st.DrawFn) -> tuple[list[str], str, LogRecord]:
    fields = draw(st.permutations(FIELDS))
    epoch = draw(st.integers(0, 4_102_444_799))
    stamp = datetime.fromtimestamp(epoch, UTC)
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PROPFIND"]))
    stem = "/" + draw(st.one_of(st.just(""), tokens.filter(lambda s: "?" not in s)))
    query = draw(st.one_of(st.none(), tokens))
    status = draw(st.one_of(st.none(), st.integers(100, 599)))
    size = draw(st.one_of(st.none(), st.integers(0, 10**12)))
    taken = draw(st.one_of(st.none(), st.integers(0, 10**7)))
    client = draw(st.one_of(st.none(), st.ip_addresses().map(str)))
    host = draw(st.one_of(st.none(), st.from_regex(r"[a-z]{1,10}\.example(:[0-9]{2,5})?", fullmatch=True)))
    agent_words = draw(st.lists(tokens, max_size=4))
    quoted = draw(st.booleans())
    agent = " ".join(agent_words) or None
    written_agent = "-" if agent is None else (f'"{agent}"' if quoted else agent.replace(" ", "+"))
    values = {"date": f"{stamp:%Y-%m-%d}", "time": f"{stamp:%H:%M:%S}", "c-ip": client or "-", "cs-method": method,
              "cs-uri-stem": stem, "cs-uri-query": query or "-", "sc-status": "-" if status is None else str(status),
              "sc-bytes": "-" if size is None else str(size), "time-taken": "-" if taken is None else str(taken),
              "cs-host": host or "-", "cs(User-Agent)": written_agent, "s-port": "443"}
    header = ["#Software: Microsoft Internet Information Services 10.0", "#Fields: " + " ".join(fields)]
    expected = LogRecord(float(epoch), method, stem + ("" if query is None else "?" + query), "gen.log:3", status,
                         None if taken is None else float(taken), size, client, host,
                         () if agent is None else (("User-Agent", agent),))
    return header, " ".join(values[name] for name in fields), expected


@settings(max_examples=100, deadline=None)
@given(rows())
def test_formatted_rows_parse_back_equal(case: tuple[list[str], str, LogRecord]) -> None:
    header, text, expected = case
    assert read(header + [text])[-1] == LogRecord(**{**_fields(expected), "source": "u_ex240304.log:3"})


def _fields(r: LogRecord) -> dict:
    return {name: getattr(r, name) for name in r.__slots__}  # type: ignore[attr-defined]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=60), st.sampled_from(IIS_HEADER), rows().map(lambda c: c[1])),
                max_size=6))
def test_any_text_gives_one_result_per_line_and_never_raises(texts: list[str]) -> None:
    out = read(texts)
    assert [p.source for p in out] == [f"u_ex240304.log:{n}" for n in range(1, len(texts) + 1)]
    for item in out:
        assert type(item) in (LogRecord, Skipped, BadLine)
        if type(item) is LogRecord:
            assert item.target.startswith("/") and item.method == item.method.upper()


# -- W3C in full: real dialects -------------------------------------------------------------------
MARCH_14 = 1741910400.0  # 2025-03-14 00:00:00 UTC


def utc(day: int, hh: int, mm: int, ss: float = 0) -> float:
    return datetime(2025, 3, day, hh, mm, tzinfo=UTC).timestamp() + ss


def requests(lines: list[str], **options: object) -> list[tuple[float, str, str, int | None, float | None]]:
    out = read(lines, **options)
    bad_lines = [p for p in out if type(p) is BadLine]
    assert not bad_lines, bad_lines
    return [(p.time, p.method, p.target, p.status, p.duration_ms) for p in out if type(p) is LogRecord]


ADVANCED_LOGGING = [
    "#Software: IIS Advanced Logging Module",
    "#Version: 1.0",
    "#Start-Date: 2025-03-14 00:00:00.017",
    "#Fields: date time cs-uri-stem cs-uri-query s-contentpath sc-status s-computername cs(Referer) "
    "sc-win32-status sc-bytes cs-bytes X-Forwarded-For TimeTakenMS cs(User-Agent) c-ip cs-method",
    r'"2025-03-14" "10:00:00.123" "/claims/17" "id=3" "C:\inetpub\wwwroot\claims\17" "200" "WEB01" '
    r'"https://portal.example.gov/?q=a+b" "0" "5120" "412" "198.51.100.4" "31" '
    r'"Mozilla/5.0 (Windows NT 10.0; Win64; x64)" "10.0.0.9" "GET"',
    r'"2025-03-14" "10:00:01.500" "/claims" "-" "-" "503" "WEB01" "-" "64" "0" "900" "-" "1200" '
    r'"Mozilla/5.0 ""Edge"" x" "10.0.0.9" "POST"',
]


def test_iis_advanced_logging_where_every_value_is_quoted() -> None:
    out = read(ADVANCED_LOGGING)
    assert out[:4] == [Skipped("W3C directive", f"u_ex240304.log:{n}") for n in range(1, 5)]
    first, second = out[4], out[5]
    assert first == LogRecord(
        time=pytest.approx(utc(14, 10, 0, 0.123)), method="GET", target="/claims/17?id=3",
        source="u_ex240304.log:5", status=200, duration_ms=31.0, bytes=5120, client="10.0.0.9", host=None,
        headers=(("Referer", "https://portal.example.gov/?q=a+b"),
                 ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)")))
    assert second == LogRecord(pytest.approx(utc(14, 10, 0, 1.5)), "POST", "/claims", "u_ex240304.log:6", 503,
                               1200.0, 0, "10.0.0.9", None, (("User-Agent", 'Mozilla/5.0 "Edge" x'),))


def test_every_value_quoted_with_runs_of_spaces() -> None:
    assert requests(["#Fields: date time cs-method cs-uri-stem sc-status time-taken",
                     '"2025-03-14"   "10:00:00"  "GET" "/a"    "204" "7"',
                     '"2025-03-14" "10:00:02" "get" "/b c" "-" "-"']) == [
        (utc(14, 10, 0), "GET", "/a", 204, 7.0), (utc(14, 10, 0, 2), "GET", "/b c", None, None)]


def test_runs_of_spaces_and_tabs_between_values_and_field_names() -> None:
    assert requests(["#Fields:   date  time\tcs-method   cs-uri-stem  sc-status",
                     "2025-03-14    10:00:00 \t GET   /a   200   "]) == [(utc(14, 10, 0), "GET", "/a", 200, None)]


def test_blank_lines_between_header_lines_are_skipped() -> None:
    out = read(["#Software: Microsoft Internet Information Services 10.0", "", "#Version: 1.0", "   ",
                "#Date: 2025-03-14 00:00:00", "", "#Fields: time cs-method cs-uri-stem sc-status", "",
                "10:00:00 GET /a 200"])
    assert [p for p in out if type(p) is Skipped and p.reason == "blank line"] == [
        Skipped("blank line", f"u_ex240304.log:{n}") for n in (2, 4, 6, 8)]
    assert out[-1] == LogRecord(utc(14, 10, 0), "GET", "/a", "u_ex240304.log:9", 200)


def test_a_header_block_changing_mid_file_keeps_rows_that_fit_an_earlier_one() -> None:
    out = read([
        "#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0", "#Date: 2025-03-14 00:00:00",
        "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port c-ip sc-status time-taken",
        "2025-03-14 10:00:00 10.0.0.5 GET /claims id=1 443 203.0.113.5 200 15",
        "#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0", "#Date: 2025-03-14 10:00:01",
        "#Fields: date time cs-method cs-uri-stem sc-status",
        "2025-03-14 10:00:02 GET /new 201",
        "2025-03-14 10:00:01 10.0.0.5 GET /claims id=2 443 203.0.113.5 500 9",  # written late, old layout
        "2025-03-14 10:00:03 POST /new 404",
        "2025-03-14 10:00:04 GET /four",
    ])
    assert [(p.time, p.method, p.target, p.status, p.duration_ms, p.client, p.source)
            for p in out if type(p) is LogRecord] == [
        (utc(14, 10, 0), "GET", "/claims?id=1", 200, 15.0, "203.0.113.5", "u_ex240304.log:5"),
        (utc(14, 10, 0, 2), "GET", "/new", 201, None, None, "u_ex240304.log:10"),
        (utc(14, 10, 0, 1), "GET", "/claims?id=2", 500, 9.0, "203.0.113.5", "u_ex240304.log:11"),
        (utc(14, 10, 0, 3), "POST", "/new", 404, None, None, "u_ex240304.log:12")]
    assert out[-1] == BadLine("wrong field count: expected 5 fields from the #Fields on line 9, found 4 "
                              "(no earlier #Fields has 4 either: line 4 has 10)",
                              "u_ex240304.log:13", "2025-03-14 10:00:04 GET /four")


@pytest.mark.parametrize("date", ["2025-03-14 00:00:00", "2025-03-14T00:00:00Z", "2025-03-14T00:00:00.214Z",
                                  "14-Mar-2025 00:00:00", "3/14/2025 0:00:00", "03/14/2025 00:00:00"])
def test_date_directive_forms_date_time_only_rows(date: str) -> None:
    assert requests([f"#Date: {date}", "#Fields: time cs-method cs-uri-stem sc-status",
                     "09:30:00 GET /a 200", "23:59:59 GET /b 200", "00:00:05 GET /c 200"]) == [
        (utc(14, 9, 30), "GET", "/a", 200, None), (utc(14, 23, 59, 59), "GET", "/b", 200, None),
        (utc(15, 0, 0, 5), "GET", "/c", 200, None)]


def test_exchange_style_log_with_an_iso_date_and_time_only_rows() -> None:
    lines = ["#Software: Microsoft Exchange Server", "#Version: 15.02.1544.004", "#Log-type: OWA Logs",
             "#Date: 2025-03-14T23:58:00.214Z",
             "#Fields: time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
             "sc-status sc-substatus sc-win32-status time-taken",
             "23:58:01 10.0.0.7 POST /owa/service.svc action=GetItem 443 CONTOSO\\jdoe 198.51.100.20 "
             "Mozilla/5.0+(Windows+NT+10.0) 200 0 0 46",
             "00:00:02 10.0.0.7 GET /owa/ - 443 - 198.51.100.20 Mozilla/5.0+(Windows+NT+10.0) 302 0 0 3"]
    assert requests(lines) == [(utc(14, 23, 58, 1), "POST", "/owa/service.svc?action=GetItem", 200, 46.0),
                               (utc(15, 0, 0, 2), "GET", "/owa/", 302, 3.0)]


@pytest.mark.parametrize(("offset", "shift_h"), [("-0800", 8), ("+0100", -1), ("+05:30", -5.5), ("+0000", 0)])
def test_gmt_offset_converts_row_times_to_utc(offset: str, shift_h: float) -> None:
    out = requests(["#Software: Oracle iPlanet Web Server 7.0", "#Version: 1.0", "#Date: 14-Mar-2025 00:00:00",
                    f"#GMT-Offset: {offset}", "#Fields: date time cs-method cs-uri-stem sc-status time-taken",
                    "2025-03-14 10:00:00 GET /a 200 15"])
    assert out == [(utc(14, 10, 0) + shift_h * 3600, "GET", "/a", 200, 15.0)]


def test_gmt_offset_with_time_only_rows_rolls_over_local_midnight() -> None:
    out = requests(["#Date: 3/14/2025 23:00:00", "#GMT-Offset: +0100", "#Fields: time cs-method cs-uri-stem",
                    "23:30:00 GET /a", "00:15:00 GET /b"])
    assert [t for t, *_ in out] == [utc(14, 22, 30), utc(14, 23, 15)]


@pytest.mark.parametrize("text", ["#GMT-Offset: PST", "#GMT-Offset: -8", "#GMT-Offset: +2500", "#GMT-Offset:"])
def test_a_bad_gmt_offset_is_reported(text: str) -> None:
    assert bad([text]) == f"bad #GMT-Offset: expected '#GMT-Offset: -0800' (sign, hours, minutes), found {text!r}"


def test_a_bad_gmt_offset_keeps_the_previous_one() -> None:
    out = read(["#GMT-Offset: -0800", "#GMT-Offset: soon", "#Fields: date time cs-method cs-uri-stem",
                "2025-03-14 10:00:00 GET /a"])
    assert out[-1].time == utc(14, 18, 0)


HEADERLESS = "date time cs-method cs-uri-stem sc-status time-taken"


def test_a_header_less_file_is_read_with_the_fields_option() -> None:
    assert requests(["2025-03-14 10:00:00 GET /a 200 15", "2025-03-14  10:00:01 POST /b 500 1.5"],
                    fields=HEADERLESS) == [(utc(14, 10, 0), "GET", "/a", 200, 15.0),
                                           (utc(14, 10, 0, 1), "POST", "/b", 500, 1500.0)]


def test_a_fields_line_in_the_file_wins_over_the_fields_option() -> None:
    assert requests(["2025-03-14 10:00:00 GET /a 200 15", "#Fields: date time cs-uri-stem cs-method",
                     "2025-03-14 10:00:01 /b HEAD"], fields=HEADERLESS) == [
        (utc(14, 10, 0), "GET", "/a", 200, 15.0), (utc(14, 10, 0, 1), "HEAD", "/b", None, None)]


def test_a_row_that_does_not_fit_the_fields_option_names_it() -> None:
    out = read(["2025-03-14 10:00:00 GET /a"], fields=HEADERLESS)
    assert out == [BadLine("wrong field count: expected 6 fields from --fields, found 4", "u_ex240304.log:1",
                           "2025-03-14 10:00:00 GET /a")]


@pytest.mark.parametrize(("fields", "message"), [
    ("", "--fields lists no fields: expected W3C field names, e.g. --fields \"date time cs-method cs-uri-stem "
         "sc-status\""),
    ("date cs-method cs-uri-stem", "unusable --fields: the list names no time"),
])
def test_a_bad_fields_option_is_refused_at_once(fields: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        w3c.parse([], "a", fields=fields)
    assert str(caught.value) == message
