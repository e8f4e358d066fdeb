"""Apache and nginx access logs: the common and combined formats and the variants real files hold.

Most archived access logs are in these formats, and real files stray from the textbook ones:
proxies put an X-Forwarded-For list or a virtual host before the client, custom formats append the
request time, quoted fields carry backslash escapes, and some lines are garbage. Archives run to
millions of lines, so plain lines take one compiled regular expression and a time cache; any
other line goes through a tokenizer that either understands it or says what it expected, so a bad
line becomes a `BadLine`, never an exception.

A line is, by fields separated by spaces:

    [vhost[:port]] [forwarded-for addresses] client ident user [day/Mon/year:hh:mm:ss zone]
    "METHOD target [HTTP/x.y]" status bytes ["referer" "user-agent"] [request time] [more fields]

- client: the last address before `ident user` (after any X-Forwarded-For list); a host name is
  kept as written; `-` gives None.
- vhost (Apache `%v:%p` in `vhost_combined`): a first field that is not a bare IP address (nor
  `-`, nor holds a comma) gives `host`, without a default port (:80, :443), as a Host header
  would carry it; a bare IP address there starts the forwarded-for list. An absolute-form request
  target (`GET http://host/path`) names the host itself and wins.
- time: the bracketed one, honouring its zone (Apache logs when the request arrived, nginx when it
  was logged; the record keeps what the log says).
- status and bytes: numbers, or `-` for None.
- referer and user agent: request headers (`Referer`, `User-Agent`) unless `-` or empty.
- request time: a number right after the user agent (or right after the bytes when there is no
  referer/user-agent pair). With `request_time_unit="auto"` (the default) a number with a decimal
  point is seconds (nginx `$request_time`) and an integer is microseconds (Apache `%D`); "s",
  "ms" and "us" force a unit (Apache `%T` is whole seconds: use "s"). Later fields are ignored.
- escapes in quoted fields (`\\"`, `\\\\`, `\\xHH`, `\\n`, `\\t`, ...) are decoded; bytes written as
  `\\xHH` are read as UTF-8.

A `"-"` or empty request line, a request line that is not `METHOD target [protocol]` (a TLS
handshake sent to a plain HTTP port, say), a CONNECT and an `OPTIONS *` are well-formed log lines
with nothing to replay: `Skipped`. Reasons of bad lines start with a fixed key before a colon
("bad time: ...") so they can be counted by kind.
"""

from __future__ import annotations

import calendar
import ipaddress
import re
from collections.abc import Iterable, Iterator

from esr.replay.formats._common import CACHE_MAX as _CACHE_MAX
from esr.replay.formats._common import (
    COMMON_METHODS,
    MONTHS,
    TOKEN,
    Memo,
    bad_line,
    check_choice,
    check_options,
    duration_ms,
    optional_count,
    show,
    utc_seconds,
    valid_time_of_day,
)
from esr.replay.formats._common import MONTH_NAMES as _MONTH_NAMES
from esr.replay.record import BadLine, LogRecord, Parsed, Skipped

__all__ = ["NAME", "REQUEST_TIME_UNITS", "parse", "parse_time", "request_target", "sniff", "split_request"]

NAME = "clf"
SAMPLE = (  # a line (or file) of this format, for `esr replay --list-formats`
    '203.0.113.7 - - [04/Mar/2024:09:00:01 +0000] "GET /claims?id=3 HTTP/1.1" 200 512 "-" "curl/8.5.0"',
)

REQUEST_TIME_UNITS = ("auto", "s", "ms", "us")

EMPTY_REQUEST = "empty request line"
NOT_A_REQUEST = "request line is not 'METHOD target [HTTP/x.y]'"
CONNECT_REQUEST = "CONNECT request (a proxy tunnel)"
ASTERISK_REQUEST = "'*' request target (server-wide OPTIONS)"

TIME_SHAPE = "'[day/Mon/year:hh:mm:ss zone]'"
LINE_SHAPE = "'client ident user [day/Mon/year:hh:mm:ss zone] \"request\" status bytes'"

_Q = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
_QX = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_FAST = re.compile(
    r'([^\s"\ufeff]+) \S+ \S+ \[([^\]]*)\] ' + _Q + r' (\d{1,3}|-) (\d{1,20}|-)'
    r'(?: ' + _Q + ' ' + _Q + r')?'
    r'(?: (\d+(?:\.\d+)?|-))?'
    r'(?: (?:' + _QX + r'|[^" ]+))*\Z', re.S | re.ASCII)

_TIME = re.compile(r"(\d{1,2})/([^/]*)/(\d{4}):(\d{1,2}):(\d{2}):(\d{2})(\.\d+)?\s+([+-])(\d{2}):?(\d{2})\Z",
                   re.ASCII)
_NUMBER = re.compile(r"\d+(?:\.\d+)?\Z", re.ASCII)
_ABSOLUTE = re.compile(r"(?i:https?)://([^/?#]*)(.*)\Z", re.S)
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)", re.S)
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "v": "\v",
                   "f": "\f", "'": "'"}
_VHOST = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?\Z")
_ADDRESS_PORT = re.compile(r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}\Z")


def sniff(head: list[str]) -> bool:
    """True when more than half of the non-empty lines are common/combined log lines."""
    lines = [(number, text) for number, text in enumerate(head, 1) if text.strip()]
    if not lines:
        return False
    good = sum(1 for item in parse(lines, "head") if type(item) is not BadLine)
    return good * 2 > len(lines)


def parse(lines: Iterable[tuple[int, str]], source: str, *, request_time_unit: str = "auto",
          **options: object) -> Iterator[Parsed]:
    """One `LogRecord`, `Skipped` or `BadLine` per line; see the module docstring for the fields."""
    check_options(NAME, options, ("request_time_unit",))
    check_choice("request_time_unit", request_time_unit, REQUEST_TIME_UNITS)
    return _parse(lines, source, request_time_unit)


def _parse(lines: Iterable[tuple[int, str]], source: str, unit: str) -> Iterator[Parsed]:
    cache = Memo(parse_time, _CACHE_MAX)
    stamps = Memo(_stamp, _CACHE_MAX)  # the time and its zone, once per distinct stamp
    fast = _FAST.match
    common = COMMON_METHODS
    for number, text in lines:
        where = f"{source}:{number}"
        m = fast(text)
        if m is None:
            yield _slow(text, where, cache, unit)
            continue
        client, stamp, request, status, size, referer, agent, took = m.groups()
        when, offset = stamps[stamp]
        if type(when) is str:
            yield bad_line(when, where, text)
            continue
        if "\\" in request:
            request = _unescape(request)
        parts = request.split(" ")
        if len(parts) == 3 and parts[0] in common and parts[1][:1] == "/" and parts[2][:5] == "HTTP/":
            method, target, _ = parts
            host = None
        else:
            split = split_request(request)
            if isinstance(split, str):
                yield Skipped(split, where)
                continue
            method, target, host = split
        yield LogRecord(
            when, method, target, where,
            None if status == "-" else int(status),
            None if took is None or took == "-" else duration_ms(took, unit, "us"),
            None if size == "-" else int(size),
            None if client == "-" else client,
            host,
            () if agent is None else _headers(referer, agent),
            utc_offset=offset,
        )


def _stamp(text: str) -> tuple[float | str, int | None]:
    """`parse_time` and `zone_offset` of a bracketed time, computed together for the cache."""
    when = parse_time(text)
    return when, (None if type(when) is str else zone_offset(text))


def parse_time(text: str) -> float | str:
    """`10/Oct/2000:13:55:36 -0700` (the text between the brackets) as Unix seconds, or the reason
    it is not a time ("bad time: ...")."""
    if (len(text) == 26 and text[2] == "/" and text[6] == "/" and text[11] == ":" and text[14] == ":"
            and text[17] == ":" and text[20] == " " and text[21] in "+-"):
        digits = text[0:2] + text[7:11] + text[12:14] + text[15:17] + text[18:20] + text[22:26]
        if digits.isascii() and digits.isdigit():
            return _time_value(text, text[0:2], text[3:6], text[7:11], text[12:14], text[15:17], text[18:20],
                               None, text[21], text[22:24], text[24:26])
    m = _TIME.match(text)
    if m is None:
        return f"bad time: expected {TIME_SHAPE} time, found {show('[' + text + ']')}"
    return _time_value(text, *m.groups())


def zone_offset(text: str) -> int | None:
    """Seconds east of UTC of the zone ending a (valid) time such as `10/Oct/2000:13:55:36 -0700`."""
    zone = text.rstrip()[-5:]
    if len(zone) != 5 or zone[0] not in "+-" or not (zone[1:].isascii() and zone[1:].isdigit()):
        return None
    offset = int(zone[1:3]) * 3600 + int(zone[3:5]) * 60
    return offset if zone[0] == "+" else -offset


def _time_value(text: str, day: str, month: str, year: str, hour: str, minute: str, second: str,
                fraction: str | None, sign: str, zone_h: str, zone_m: str) -> float | str:
    mon = MONTHS.get(month.lower())
    if mon is None:
        return f"bad time: month {month!r} is not a month name (Jan, Feb, ... Dec) in {show(text)}"
    y, d, hh, mm, ss = int(year), int(day), int(hour), int(minute), int(second)
    if y < 1:
        return f"bad time: year {year} is out of range (0001 to 9999) in {show(text)}"
    if not 1 <= d <= calendar.monthrange(y, mon)[1]:
        return f"bad time: day {d} is out of range for {_MONTH_NAMES[mon - 1]} {y} in {show(text)}"
    if not valid_time_of_day(hh, mm, ss):
        return f"bad time: {hour}:{minute}:{second} is not a time of day (00:00:00 to 23:59:59) in {show(text)}"
    zh, zm = int(zone_h), int(zone_m)
    if zh > 23 or zm > 59:
        return f"bad time: zone {sign}{zone_h}{zone_m} is not an offset (-2359 to +2359) in {show(text)}"
    offset = zh * 3600 + zm * 60
    seconds = utc_seconds(y, mon, d, hh, mm, ss, None, offset if sign == "+" else -offset)
    return seconds + float(fraction) if fraction else seconds


def _headers(referer: str | None, agent: str | None) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    if referer and referer != "-":
        pairs.append(("Referer", _unescape(referer) if "\\" in referer else referer))
    if agent and agent != "-":
        pairs.append(("User-Agent", _unescape(agent) if "\\" in agent else agent))
    return tuple(pairs)


def _unescape(text: str) -> str:
    """Undo Apache's and nginx's escaping in a quoted field; `\\xHH` bytes are read as UTF-8."""
    if "\\x" not in text:
        return _ESCAPE.sub(lambda m: _SIMPLE_ESCAPES.get(m[1], m[0]), text)
    out = bytearray()
    last = 0
    for m in _ESCAPE.finditer(text):
        out += text[last:m.start()].encode("utf-8", "surrogateescape")
        code = m[1]
        if len(code) == 3:
            out.append(int(code[1:], 16))
        else:
            out += _SIMPLE_ESCAPES.get(code, m[0]).encode("utf-8", "surrogateescape")
        last = m.end()
    out += text[last:].encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "backslashreplace")


def split_request(request: str) -> tuple[str, str, str | None] | str:
    """`GET /a?b=1 HTTP/1.1` as (method, target, host of an absolute-form target), or the reason
    there is nothing to replay. The protocol is optional (HTTP/0.9); the method is upper-cased."""
    parts = request.split()
    if not parts or parts == ["-"]:
        return EMPTY_REQUEST
    if len(parts) >= 3 and parts[-1][:5].upper() == "HTTP/":
        target = " ".join(parts[1:-1])
    elif len(parts) == 2 and parts[1][:5].upper() != "HTTP/":
        target = parts[1]
    elif len(parts) > 2:
        target = " ".join(parts[1:])
    else:
        return NOT_A_REQUEST
    if TOKEN.fullmatch(parts[0]) is None:
        return NOT_A_REQUEST
    method = parts[0].upper()
    found = request_target(method, target)
    if isinstance(found, str):
        return found
    return (method, *found)


def request_target(method: str, target: str) -> tuple[str, str | None] | str:
    """The target as sent to an origin server ("/" first) and the host an absolute-form target
    names, or the reason a request cannot be replayed (CONNECT, `OPTIONS *`)."""
    if method == "CONNECT":
        return CONNECT_REQUEST
    if target == "*":
        return ASTERISK_REQUEST
    if target[:1] == "/":
        return target, None
    m = _ABSOLUTE.match(target)
    if m is None:
        return "/" + target, None
    host = m[1].rpartition("@")[2] or None
    path = m[2]
    return (path if path[:1] == "/" else "/" + path), host


def _slow(text: str, where: str, cache: Memo, unit: str) -> Parsed:
    """A line the fast expression did not take: variants, or a bad line and why."""
    line = text.strip().lstrip("\ufeff").strip()
    if not line:
        return bad_line("line is empty", where, text)
    tokens = _tokens(line)
    if isinstance(tokens, str):
        return bad_line(tokens, where, text)
    at = next((k for k, (kind, _) in enumerate(tokens) if kind == "["), -1)
    if at < 0:
        if len(tokens) < 4:
            return bad_line(f"too few fields: expected {LINE_SHAPE}, found {len(tokens)} field(s)", where, text)
        return bad_line(f"bad time: expected {TIME_SHAPE} time, found {show(_shown(tokens[3]))}",
                        where, text)
    before, after = tokens[:at], tokens[at + 1:]
    if len(before) < 3:
        found = " ".join(_shown(t) for t in before)
        return bad_line(f"bad client: expected 'client ident user' before the time, found {len(before)} "
                        f"field(s){' ' + show(found) if found else ''}", where, text)
    when = cache[tokens[at][1]]
    if type(when) is str:
        return bad_line(when, where, text)
    addresses = _addresses(before[:-2])
    if isinstance(addresses, str):
        return bad_line(addresses, where, text)
    client, vhost = addresses

    if not after or after[0][0] != '"':
        found = show(_shown(after[0])) if after else "end of line"
        return bad_line(f"bad request: expected a quoted request line after the time, found {found}", where, text)
    if len(after) < 2:
        return bad_line("bad status: expected a status after the request line, found end of line", where, text)
    status = _count(after[1], 3)
    if isinstance(status, str):
        return bad_line(f"bad status: {status} is not a number (expected a 3-digit HTTP status or '-')", where, text)
    if len(after) < 3:
        return bad_line("bad bytes: expected the response size after the status, found end of line", where, text)
    size = _count(after[2], 20)
    if isinstance(size, str):
        return bad_line(f"bad bytes: {size} is not a number (expected the response size in bytes or '-')", where, text)
    referer = agent = None
    k = 3
    if len(after) >= 5 and after[3][0] == '"' and after[4][0] == '"':
        referer, agent, k = after[3][1], after[4][1], 5
    took = None
    if len(after) > k and after[k][0] == "w" and (after[k][1] == "-" or _NUMBER.match(after[k][1])):
        took = None if after[k][1] == "-" else duration_ms(after[k][1], unit, "us")

    request = after[0][1]
    split = split_request(_unescape(request) if "\\" in request else request)
    if isinstance(split, str):
        return Skipped(split, where)
    method, target, host = split
    return LogRecord(when, method, target, where, status, took, size, client, host or vhost,
                     _headers(referer, agent), utc_offset=zone_offset(tokens[at][1]))


def _tokens(line: str) -> list[tuple[str, str]] | str:
    """Fields as (kind, text): kind '"' quoted (text without quotes, escapes kept), '[' bracketed,
    'w' bare. A quote closes a field only before a space or the end of the line, so the raw quotes
    of old Apache versions inside a field stay in it."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return out
        c = line[i]
        if c == '"':
            j = i + 1
            while True:
                if j >= n:
                    return (f"unterminated quoted field: the '\"' at column {i + 1} is never closed "
                            f"(expected '\"' before a space or the end of the line)")
                ch = line[j]
                if ch == "\\":
                    j += 2
                    continue
                if ch == '"' and (j + 1 >= n or line[j + 1] in " \t"):
                    break
                j += 1
            out.append(('"', line[i + 1:j]))
            i = j + 1
            continue
        if c == "[":
            j = line.find("]", i + 1)
            if j >= 0 and (j + 1 >= n or line[j + 1] in " \t"):
                out.append(("[", line[i + 1:j]))
                i = j + 1
                continue
        j = i
        while j < n and line[j] not in " \t":
            j += 1
        out.append(("w", line[i:j]))
        i = j


def _addresses(tokens: list[tuple[str, str]]) -> tuple[str | None, str | None] | str:
    """(client, vhost) from the fields before `ident user`: an optional vhost, an optional
    X-Forwarded-For list (bare or quoted, comma separated), then the client."""
    vhost = None
    if len(tokens) > 1:
        kind, first = tokens[0]
        if kind == "w" and first != "-" and "," not in first and not _is_ip(first):
            if _VHOST.match(first) is None:
                return (f"bad client: expected a virtual host or forwarded-for addresses before the client, "
                        f"found {show(first)}")
            vhost = _default_port_dropped(first)
            tokens = tokens[1:]
    items = [item for _, text in tokens for item in text.replace(",", " ").split()]
    if not items:
        return "bad client: expected a client address or host name, found an empty field"
    for item in items[:-1]:
        if item != "-" and item.lower() != "unknown" and not _is_address(item):
            return f"bad client: {show(item)} in the forwarded-for list is not an address"
    client = items[-1]
    return (None if client == "-" else client), vhost


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_address(text: str) -> bool:
    return _is_ip(text) or _ADDRESS_PORT.match(text) is not None


def _default_port_dropped(vhost: str) -> str:
    for port in (":80", ":443"):
        if vhost.endswith(port):
            return vhost[:-len(port)]
    return vhost


def _count(token: tuple[str, str], digits: int) -> int | None | str:
    """The value of a status or byte count field, or the field shown for a message."""
    kind, text = token
    if kind == "w":
        try:
            return optional_count(text, digits)
        except ValueError:
            pass
    return show(_shown(token))


def _shown(token: tuple[str, str]) -> str:
    kind, text = token
    return f'"{text}"' if kind == '"' else f"[{text}]" if kind == "[" else text

