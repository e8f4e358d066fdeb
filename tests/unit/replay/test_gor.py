"""esr.replay.formats.gor: GoReplay files read into records, responses paired within a window."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from esr.replay.formats import gor
from esr.replay.record import BadLine, LogRecord, Skipped

SEP = "🐵🙈🙉".encode()
TS = 1709539201123456789  # 2024-03-04T08:00:01.123456789Z
ID1, ID2, ID3 = "8a7b0f3c2d1e4f5a6b7c8d9e", "0c1d2e3f4a5b6c7d8e9f0a1b", "f00dfeedbeefcafe12345678"

GET = (b"GET /api/claims?id=3 HTTP/1.1\r\nHost: claims.example\r\nUser-Agent: curl/8.5.0\r\n"
       b"Accept: */*\r\n\r\n")
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"


def payload(kind: int, pid: str, ts: int, message: bytes, latency: int | None = 0) -> bytes:
    """One payload as `gor --output-file` writes it: meta line, message, "\\n🐵🙈🙉\\n"."""
    meta = f"{kind} {pid} {ts}" + ("" if latency is None else f" {latency}")
    return meta.encode() + b"\n" + message + b"\n" + SEP + b"\n"


def post(body: bytes, *headers: str, target: str = "/api/claims") -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"POST {target} HTTP/1.1\r\nHost: claims.example\r\n{head}\r\n".encode() + body


def numbered(data: bytes, keep_cr: bool = False) -> list[tuple[int, str]]:
    """Lines as the file reader gives them: split at LF, CRLF removed unless `keep_cr`, UTF-8
    with surrogate escapes, a last line without its LF given as it is."""
    pieces = data.split(b"\n")
    last = pieces.pop()
    out = [(n, (p if keep_cr else p.removesuffix(b"\r")).decode("utf-8", "surrogateescape"))
           for n, p in enumerate(pieces, 1)]
    if last:
        out.append((len(out) + 1, last.decode("utf-8", "surrogateescape")))
    return out


def read(data: bytes, source: str = "traffic.gor", keep_cr: bool = False, **options: int) -> list:
    return list(gor.parse(numbered(data, keep_cr), source, **options))


def only(data: bytes, keep_cr: bool = False) -> LogRecord:
    (record,) = read(data, keep_cr=keep_cr)
    assert isinstance(record, LogRecord), record
    return record


def outcome(item: LogRecord | Skipped | BadLine) -> int | str | None:
    """A record's status, or why there is no record."""
    return item.status if isinstance(item, LogRecord) else item.reason


def body_of(message: bytes, keep_cr: bool = False) -> bytes | None:
    return only(payload(1, ID1, TS, message), keep_cr).body


# -- sniff --------------------------------------------------------------------------------
@pytest.mark.parametrize(("head", "expected"), [
    ([f"1 {ID1} {TS} 0", "GET / HTTP/1.1", "Host: a", "", "", "🐵🙈🙉", f"2 {ID1} {TS} 1"], True),
    ([f"1 {ID1} {TS}", "POST /x HTTP/1.0"], True),  # no latency field, no separator within the head
    ([f"2 {ID1} {TS} 1500", "HTTP/1.1 200 OK"], True),
    ([f"1 {ID1} {TS} 0\r", "GET / HTTP/1.1\r"], True),
    (["{", '  "log": {'], False),
    ([f"1 {ID1} {TS} 0", "not a request"], False),
    ([f"1 {ID1} {TS} 0"], False),
    (["GET / HTTP/1.1", "Host: a"], False),
    (['127.0.0.1 - - [04/Mar/2024:09:00:01 +0100] "GET / HTTP/1.1" 200 5'], False),
    ([], False),
])
def test_sniff(head: list[str], expected: bool) -> None:
    assert gor.sniff(head) is expected


# -- requests and their responses ---------------------------------------------------------
def test_a_request_gets_the_status_and_latency_of_its_response() -> None:
    data = payload(1, ID1, TS, GET) + payload(2, ID1, TS + 40_000_000, OK, latency=12_345_678)
    assert read(data) == [LogRecord(
        time=1709539201.123456789, method="GET", target="/api/claims?id=3", source="traffic.gor:1", status=200,
        duration_ms=12.345678, host="claims.example",
        headers=(("Host", "claims.example"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")))]
    assert read(data)[0].body is None


def test_a_response_written_before_its_request_is_paired_too() -> None:
    data = payload(2, ID1, TS + 5, CREATED, latency=7_000_000) + payload(1, ID1, TS, post(b"", "Content-Length: 0"))
    (record,) = read(data)
    assert (record.status, record.duration_ms, record.source, record.body) == (201, 7.0, "traffic.gor:7", b"")


def test_a_request_without_a_response_has_no_status() -> None:
    record = only(payload(1, ID1, TS, GET))
    assert (record.status, record.duration_ms) == (None, None)


def test_a_response_without_latency_gives_the_status_alone() -> None:
    (record,) = read(payload(1, ID1, TS, GET) + payload(2, ID1, TS, OK, latency=None))
    assert (record.status, record.duration_ms) == (200, None)


def test_requests_come_out_in_file_order_whatever_order_their_responses_come_in() -> None:
    data = (payload(1, ID1, TS, GET) + payload(1, ID2, TS + 1, GET) + payload(2, ID2, TS + 2, CREATED, 2_000_000)
            + payload(1, ID3, TS + 3, GET) + payload(2, ID3, TS + 4, OK, 3_000_000)
            + payload(2, ID1, TS + 5, OK, 1_000_000))
    assert [(r.source, r.status, r.duration_ms) for r in read(data, "t.gor")] == [
        ("t.gor:1", 200, 1.0), ("t.gor:9", 201, 2.0), ("t.gor:23", 200, 3.0)]


def test_replayed_responses_are_skipped_and_orphan_responses_reported() -> None:
    data = (payload(1, ID1, TS, GET) + payload(3, ID1, TS + 9, OK, 5)
            + payload(2, ID2, TS + 10, OK, 5) + payload(2, ID1, TS + 11, OK, 1))
    assert read(data, "t.gor") == [
        LogRecord(
            time=1709539201.123456789, method="GET", target="/api/claims?id=3", source="t.gor:1", status=200,
            duration_ms=1e-6, host="claims.example",
            headers=(("Host", "claims.example"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*"))),
        Skipped(gor.REPLAYED, "t.gor:9"), Skipped(gor.ORPHAN, "t.gor:16")]


def test_a_response_repeated_for_the_same_id_leaves_the_first_one_orphaned() -> None:
    data = payload(2, ID1, TS, OK, 1) + payload(2, ID1, TS, CREATED, 2) + payload(1, ID1, TS, GET)
    out = read(data, "t.gor")
    assert out[0] == Skipped(gor.ORPHAN, "t.gor:1")
    assert out[1].source == "t.gor:14"
    assert (out[1].status, out[1].duration_ms) == (201, 2e-6)


def test_a_response_beyond_the_window_is_not_waited_for() -> None:
    data = (payload(1, ID1, TS, GET) + payload(1, ID2, TS + 1, GET) + payload(1, ID3, TS + 2, GET)
            + payload(2, ID1, TS + 3, OK, 1_000_000))
    near = read(data, "t.gor", window=3)
    assert [(r.source, r.status) for r in near] == [("t.gor:1", 200), ("t.gor:9", None), ("t.gor:17", None)]
    far = read(data, "t.gor", window=2)
    assert [(r.source, outcome(r)) for r in far] == [
        ("t.gor:1", None), ("t.gor:9", None), ("t.gor:17", None), ("t.gor:25", gor.ORPHAN)]


def test_a_response_that_came_too_early_is_forgotten_after_the_window() -> None:
    data = payload(2, ID1, TS, OK, 1) + payload(1, ID2, TS, GET) + payload(1, ID1, TS, GET)
    out = read(data, "t.gor", window=1)
    assert [(r.source, outcome(r)) for r in out] == [
        ("t.gor:1", gor.ORPHAN), ("t.gor:8", None), ("t.gor:16", None)]


def test_a_window_of_zero_pairs_nothing() -> None:
    data = payload(2, ID1, TS, OK, 1) + payload(1, ID1, TS, GET) + payload(1, ID2, TS, GET) + payload(2, ID2, TS, OK)
    assert [outcome(r) for r in read(data, window=0)] == [gor.ORPHAN, None, None, gor.ORPHAN]
    assert [outcome(r) for r in read(data, window=1)] == [200, 200]


@pytest.mark.parametrize("window", [-1, 1.5, "10", True])
def test_the_window_must_be_a_count_of_payloads(window: object) -> None:
    with pytest.raises(ValueError, match=r"gor option window=.*: expected a whole number of payloads, 0 or more"):
        list(gor.parse([], "t.gor", window=window))  # type: ignore[arg-type]


def test_records_flow_out_without_reading_the_whole_file() -> None:
    consumed = 0

    def endless() -> Iterator[tuple[int, str]]:
        nonlocal consumed
        for n in itertools.count():
            for item in numbered(payload(1, f"id{n}", TS + n, GET)):
                consumed += 1
                yield item

    first = list(itertools.islice(gor.parse(endless(), "t.gor", window=50), 3))
    assert [r.time for r in first] == [TS / 1e9, (TS + 1) / 10**9, (TS + 2) / 10**9]
    assert consumed <= (50 + 3) * 8  # window + 3 payloads of 8 lines, not the (endless) file


def test_nothing_is_held_longer_than_the_window() -> None:
    """Requests whose responses never come, and responses whose requests never come, each leave
    within `window` payloads: what is held stays bounded however long the file is."""
    window, consumed, lag = 25, 0, 0
    starts: dict[str, int] = {}

    def file() -> Iterator[tuple[int, str]]:
        nonlocal consumed
        line = 0
        for n in range(2000):
            kind, message = (1, GET) if n % 2 == 0 else (2, OK)
            for _, text in numbered(payload(kind, f"{kind}-{n}", TS + n, message)):
                line += 1
                if text.startswith(f"{kind} "):
                    consumed += 1
                    starts[str(line)] = consumed
                yield line, text

    out = []
    for item in gor.parse(file(), "t", window=window):
        lag = max(lag, consumed - starts[item.source.split(":")[1]])
        out.append(outcome(item))
    assert out.count(None) == 1000 and out.count(gor.ORPHAN) == 1000
    assert lag == window


# -- bodies and line endings --------------------------------------------------------------
@pytest.mark.parametrize("body", [
    b'{"claim": 3, "amount": "12 \xe2\x82\xac"}',
    b"line one\r\nline two\r\n\r\nline four after a blank line\r\n",
    b"line one\nline two\n\nline four after a blank line\n",
    b"no final line break",
    b"\n\n\n",
    b"\r\n",
    b"ends in a carriage return\r",
    b"a\r\n" + "🐵🙈🙉".encode() + b"x\r\n",  # the monkeys, but not alone on their line
    b"",
])
def test_text_bodies_round_trip_by_content_length(body: bytes) -> None:
    message = post(body, "Content-Type: text/plain", f"Content-Length: {len(body)}")
    assert body_of(message) == body
    assert body_of(message, keep_cr=True) == body


def test_a_chunked_body_is_decoded_and_its_framing_headers_dropped() -> None:
    message = post(b"7\r\n{\"a\":1}\r\n3;ext=1\r\nxyz\r\n0\r\nX-Checksum: 1\r\n\r\n",
                   "Transfer-Encoding: chunked", "Content-Type: application/json")
    record = only(payload(1, ID1, TS, message))
    assert record.body == b'{"a":1}xyz'
    assert record.headers == (("Host", "claims.example"), ("Content-Type", "application/json"))


@pytest.mark.parametrize("data", [b"one\ntwo\n", b"one\r\ntwo\r\n", b"plain"])
def test_chunk_data_with_either_line_break_is_restored(data: bytes) -> None:
    message = post(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data), "Transfer-Encoding: gzip, chunked")
    assert body_of(message) == data


def test_chunked_wins_over_content_length() -> None:
    assert body_of(post(b"2\r\nhi\r\n0\r\n\r\n", "Content-Length: 99", "Transfer-Encoding: chunked")) == b"hi"


@pytest.mark.parametrize(("body", "reason"), [
    (b"5\r\nhi\r\n0\r\n\r\n", "bad chunked body: the chunk sizes do not match the data"),
    (b"zz\r\nhi\r\n0\r\n\r\n", "bad chunked body: the chunk sizes do not match the data"),
    (b"2\r\nhi\r\n", "bad chunked body: the chunk sizes do not match the data"),
])
def test_broken_chunked_framing_is_a_bad_line(body: bytes, reason: str) -> None:
    (bad,) = read(payload(1, ID1, TS, post(body, "Transfer-Encoding: chunked")))
    assert isinstance(bad, BadLine) and bad.reason.startswith(reason)
    assert (bad.source, bad.text) == ("traffic.gor:1", "POST /api/claims HTTP/1.1")


def test_a_transfer_coding_other_than_chunked_last_is_a_bad_line() -> None:
    (bad,) = read(payload(1, ID1, TS, post(b"x", "Transfer-Encoding: gzip")))
    assert bad.reason == "bad Transfer-Encoding: 'gzip' does not end in chunked, so the body has no length"


def test_mixed_line_breaks_need_the_carriage_returns_kept() -> None:
    body = (b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\n"
            b"unix text\nsecond line\n\r\n--b--\r\n")
    message = post(body, "Content-Type: multipart/form-data; boundary=b", f"Content-Length: {len(body)}")
    (bad,) = read(payload(1, ID1, TS, message))
    lf, crlf = len(body) - body.count(b"\r\n"), len(body) + body.count(b"\n") - body.count(b"\r\n")
    assert (lf, crlf) == (len(body) - 5, len(body) + 2)
    assert bad.reason == (f"body line breaks lost: Content-Length is {len(body)} but the body is {lf} "
                          f"bytes with LF and {crlf} with CRLF line breaks; it mixes both, which lines "
                          f"without their endings cannot restore")
    assert body_of(message, keep_cr=True) == body


def test_binary_bodies_round_trip_when_carriage_returns_are_kept() -> None:
    body = bytes(range(256)) * 2 + b"\r\n\xff\xfe\r\r\n\n"
    message = post(body, "Content-Type: application/octet-stream", f"Content-Length: {len(body)}")
    assert body_of(message, keep_cr=True) == body


def test_binary_bodies_without_line_breaks_round_trip_either_way() -> None:
    body = bytes(b for b in range(256) if b not in (10, 13)) + b"\x80\xc3("
    message = post(body, f"Content-Length: {len(body)}")
    assert body_of(message) == body
    assert body_of(message, keep_cr=True) == body


def test_a_body_cut_short_by_the_capture_is_a_bad_line() -> None:
    (bad,) = read(payload(1, ID1, TS, post(b"only part", "Content-Length: 5000")))
    assert bad.reason == ("body cut short: Content-Length is 5000 but the capture holds 9 bytes "
                          "(GoReplay's capture size limit?)")


def test_bytes_beyond_the_content_length_are_not_part_of_the_body() -> None:
    assert body_of(post(b"abcdef", "Content-Length: 3")) == b"abc"


def test_no_content_length_and_no_chunking_means_no_body() -> None:
    assert body_of(GET) is None
    assert body_of(post(b"stray")) is None


@pytest.mark.parametrize("value", ["abc", "5, 6", "-1", "１"])
def test_an_unreadable_content_length_is_a_bad_line(value: str) -> None:
    (bad,) = read(payload(1, ID1, TS, post(b"hello", f"Content-Length: {value}")))
    assert bad.reason.startswith("bad Content-Length: ")
    assert bad.reason.endswith(" is not one whole number")


def test_repeated_equal_content_lengths_are_one() -> None:
    assert body_of(post(b"hello", "Content-Length: 5", "Content-Length: 5")) == b"hello"
    assert body_of(post(b"hello", "Content-Length: 5, 5")) == b"hello"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))), min_size=1),
       st.sampled_from(["\n", "\r\n"]))
def test_text_bodies_with_one_kind_of_line_break_always_round_trip(parts: list[str], newline: str) -> None:
    assume("🐵🙈🙉" not in parts)
    body = newline.join(parts).encode()
    assert body_of(post(body, f"Content-Length: {len(body)}")) == body


@settings(max_examples=60, deadline=None)
@given(st.binary())
def test_any_body_round_trips_when_carriage_returns_are_kept(body: bytes) -> None:
    assume(b"\n" + SEP + b"\n" not in b"\n" + body + b"\n")
    assert body_of(post(body, f"Content-Length: {len(body)}"), keep_cr=True) == body


# -- request lines and headers ------------------------------------------------------------
def test_headers_keep_their_order_and_case_without_hop_by_hop_ones() -> None:
    message = (b"put /a HTTP/1.1\r\nHost: claims.example:8080\r\nX-B: 2\r\nConnection: keep-alive, X-Hop\r\n"
               b"X-Hop: 1\r\nKeep-Alive: timeout=5\r\nUpgrade: websocket\r\nTE: trailers\r\n"
               b"Proxy-Authorization: Basic eDp5\r\nx-a:1\r\nX-Long: first\r\n  folded\r\nX-B:  3 \r\n\r\n")
    record = only(payload(1, ID1, TS, message))
    assert (record.method, record.target, record.host) == ("PUT", "/a", "claims.example:8080")
    assert record.headers == (("Host", "claims.example:8080"), ("X-B", "2"), ("x-a", "1"),
                              ("X-Long", "first folded"), ("X-B", "3"))


def test_a_request_without_host_has_no_host() -> None:
    assert only(payload(1, ID1, TS, b"GET / HTTP/1.0\r\n\r\n")).host is None


def test_an_absolute_form_target_gives_the_path_and_the_host() -> None:
    record = only(payload(1, ID1, TS, b"GET http://u@claims.example:81/a/b?c=d HTTP/1.1\r\nHost: proxy\r\n\r\n"))
    assert (record.target, record.host) == ("/a/b?c=d", "claims.example:81")
    assert only(payload(1, ID1, TS, b"GET https://claims.example HTTP/1.1\r\n\r\n")).target == "/"


@pytest.mark.parametrize(("line", "reason"), [
    (b"CONNECT claims.example:443 HTTP/1.1", gor.CONNECT),
    (b"OPTIONS * HTTP/1.1", gor.ASTERISK),
    (b"PRI * HTTP/2.0", gor.ASTERISK),  # HTTP/2 with prior knowledge
])
def test_requests_without_a_path_are_skipped(line: bytes, reason: str) -> None:
    assert read(payload(1, ID1, TS, line + b"\r\nHost: a\r\n\r\n"), "t.gor") == [Skipped(reason, "t.gor:1")]


# -- malformed payloads -------------------------------------------------------------------
SHAPE = "bad meta line: expected '<type> <id> <timestamp_ns> [<latency_ns>]' separated by single spaces, found "


@pytest.mark.parametrize(("meta", "reason"), [
    (f"1 {ID1}", SHAPE + f"'1 {ID1}'"),
    (f"1 {ID1} {TS} 0 extra", SHAPE + f"'1 {ID1} {TS} 0 extra'"),
    (f"1  {ID1} {TS}", SHAPE + f"'1  {ID1} {TS}'"),
    (f"1 {ID1} {TS} ", SHAPE + f"'1 {ID1} {TS} '"),
    (f"7 {ID1} {TS} 0", "bad payload type: '7' is not 1 (request), 2 (response) or 3 (replayed response)"),
    (f"1 {ID1} 2024-03-04T08:00:01Z 0", "bad timestamp: '2024-03-04T08:00:01Z' is not a whole number of "
                                        "nanoseconds since 1970"),
    (f"1 {ID1} -5 0", "bad timestamp: '-5' is not a whole number of nanoseconds since 1970"),
    (f"1 {ID1} 1709539201 0", "bad timestamp: 1709539201 is too small for nanoseconds since 1970 "
                              "(expected 19 digits, e.g. 1709539201123456789)"),
    (f"1 {ID1} {TS} 1.5", "bad latency: '1.5' is not a whole number of nanoseconds"),
    (f"3 {ID1} x 0", "bad timestamp: 'x' is not a whole number of nanoseconds since 1970"),
    ("GET / HTTP/1.1", "bad payload type: 'GET' is not 1 (request), 2 (response) or 3 (replayed response)"),
])
def test_bad_meta_lines(meta: str, reason: str) -> None:
    data = (b"1 " + ID2.encode() + b" %d 0\n" % TS + GET + b"\n" + SEP + b"\n"
            + meta.encode() + b"\n" + GET + b"\n" + SEP)
    first, bad = read(data, "t.gor")
    assert first.source == "t.gor:1"
    assert bad == BadLine(reason, "t.gor:9", meta)


@pytest.mark.parametrize(("message", "reason", "text"), [
    (b"", "no request line: expected 'METHOD /path HTTP/1.1' after the meta line", f"1 {ID1} {TS} 0"),
    (b"hello there\r\n\r\n", "no request line: expected 'METHOD /path HTTP/1.1', found 'hello there'",
     "hello there"),
    (b"GET /a\r\n\r\n", "no request line: expected 'METHOD /path HTTP/1.1', found 'GET /a'", "GET /a"),
    (b"GET /a b HTTP/1.1\r\n\r\n", "no request line: expected 'METHOD /path HTTP/1.1', found 'GET /a b HTTP/1.1'",
     "GET /a b HTTP/1.1"),
    (b"GET a.html HTTP/1.1\r\n\r\n", "bad request target: 'a.html' is neither '/path' nor an http(s) URL",
     "GET a.html HTTP/1.1"),
    (b"GET ftp://h/a HTTP/1.1\r\n\r\n", "bad request target: 'ftp://h/a' is neither '/path' nor an http(s) URL",
     "GET ftp://h/a HTTP/1.1"),
    (b"GET / HTTP/1.1\r\nHost claims.example\r\n\r\n", "bad header: 'Host claims.example' is not 'Name: value'",
     "Host claims.example"),
    (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "bad header: 'Bad Name: x' is not 'Name: value'", "Bad Name: x"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*", "no end of headers: the payload ends before the blank line "
                                                  "after the headers (a truncated capture?)", "GET / HTTP/1.1"),
])
def test_malformed_requests(message: bytes, reason: str, text: str) -> None:
    assert read(payload(1, ID1, TS, message), "t.gor") == [BadLine(reason, "t.gor:1", text)]


def test_a_malformed_response_is_a_bad_line_and_its_request_stays_unanswered() -> None:
    out = read(payload(1, ID1, TS, GET) + payload(2, ID1, TS, b"200 OK\r\n\r\n", 5), "t.gor")
    assert out[1] == BadLine("no status line: expected 'HTTP/1.1 200 OK' after the meta line, found '200 OK'",
                             "t.gor:9", "200 OK")
    assert out[0].status is None


def test_the_bad_line_text_is_cut_to_200_characters() -> None:
    (bad,) = read(payload(1, ID1, TS, b"GET /" + b"a" * 500 + b" HTTP/1.1\r\nnot a header\r\n\r\n"))
    assert bad.text == "not a header"
    (bad,) = read(payload(1, ID1, TS, b"x" * 500 + b"\r\n\r\n"))
    assert bad.text == "x" * 200
    assert bad.reason == f"no request line: expected 'METHOD /path HTTP/1.1', found {'x' * 60!r}"


# -- the file around the payloads ---------------------------------------------------------
def test_a_file_cut_after_its_last_payload_still_gives_it() -> None:
    data = payload(1, ID1, TS, GET) + payload(1, ID2, TS + 1, post(b"a=1", "Content-Length: 3"))
    cut = data[: -len(SEP) - 2]  # no final separator, no line break before it
    assert [r.body for r in read(cut)] == [None, b"a=1"]


def test_blank_payloads_and_stray_blank_lines_are_ignored_and_lines_counted() -> None:
    data = b"\n" + SEP + b"\n" + SEP + b"\n\n" + SEP + b"\n" + payload(1, ID1, TS, GET)
    assert [r.source for r in read(data, "t.gor")] == ["t.gor:6"]


def test_a_stray_blank_line_before_a_meta_line_is_ignored() -> None:
    assert [r.source for r in read(b"\n\r\n" + payload(1, ID1, TS, GET), "t.gor")] == ["t.gor:3"]


def test_a_file_that_is_not_goreplay_is_one_bad_line_not_held_in_memory() -> None:
    held = []

    def access_log() -> Iterator[tuple[int, str]]:
        for n in range(1, 20001):
            held.append(n)
            yield n, f'10.0.0.{n % 250} - - [04/Mar/2024:09:00:01 +0100] "GET /{n} HTTP/1.1" 200 5'

    first = '10.0.0.1 - - [04/Mar/2024:09:00:01 +0100] "GET /1 HTTP/1.1" 200 5'
    assert list(gor.parse(access_log(), "access.log")) == [BadLine(SHAPE + repr(first[:60]), "access.log:1", first)]
    assert len(held) == 20000


def test_an_empty_file_gives_nothing() -> None:
    assert read(b"") == []


def test_a_request_line_of_lower_case_method_is_upper_cased_and_times_are_exact() -> None:
    record = only(payload(1, ID1, 1709539201000000001, b"delete /claims/3 HTTP/1.1\r\n\r\n"))
    assert (record.method, record.time) == ("DELETE", 1709539201000000001 / 10**9)


def test_carriage_returns_kept_by_the_reader_are_not_part_of_names_or_values() -> None:
    record = only(payload(1, ID1, TS, GET) + payload(2, ID1, TS, OK, 1), keep_cr=True)
    assert record.headers == (("Host", "claims.example"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*"))
    assert (record.target, record.status) == ("/api/claims?id=3", 200)


# -- with the file reader -----------------------------------------------------------------
def test_a_capture_reads_through_the_file_reader(tmp_path: Path) -> None:
    from esr.replay.sources import detect, read_lines

    body = b'{\r\n  "claim": 3\r\n}\r\n'
    data = (payload(2, ID1, TS + 9, CREATED, 31_000_000)
            + payload(1, ID1, TS, post(body, "Content-Type: application/json", f"Content-Length: {len(body)}"))
            + payload(1, ID2, TS + 10, GET))
    path = tmp_path / "requests_0.gor"
    path.write_bytes(data)
    assert detect(path) is gor
    first, second = gor.parse(read_lines(path), str(path))
    assert (first.status, first.duration_ms, first.body, first.source) == (201, 31.0, body, f"{path}:7")
    assert (second.status, second.target, second.source) == (None, "/api/claims?id=3", f"{path}:18")
